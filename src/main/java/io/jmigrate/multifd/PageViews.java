package io.jmigrate.multifd;

import io.jmigrate.memory.SegmentWindows;

import java.nio.ByteBuffer;

/**
 * Reusable ByteBuffer views of guest pages for one channel thread's gathering writes and
 * scattering reads: for the block it last served, slot {@code i} has one view per 1 GiB window
 * ({@link SegmentWindows}), made when the thread first meets the block, so steady state
 * allocates nothing per page whatever the block size.
 *
 * <p>Crossing from one window into the next takes no branch: the page's window indexes the
 * views. (A branch that only a guest above 1 GiB takes would be one that short runs, such as
 * the VM's JIT warm-up, never take, and the JIT would throw its compiled code away at the first
 * crossing, in the middle of a migration.)
 * Not thread safe: one per channel thread.
 */
final class PageViews {
    private final int slots;
    private final boolean forIo;
    /** {@code views[window][slot]}, over {@link #owner}'s windows. */
    private ByteBuffer[][] views;
    private MultifdBlock owner;

    /**
     * @param forIo the views only go to system calls (no compression): use the blocks'
     *              {@link SegmentWindows#forIo} windows, so no NIO call allocates per page
     */
    PageViews(int slots, boolean forIo) {
        this.slots = slots;
        this.forIo = forIo;
    }

    /**
     * The views of the pages at {@code offs[0..n)} of {@code block}, in that order, into
     * {@code out} from index 0; returns how many it put. For compression, one view per page (the
     * codecs take pages one at a time). For system calls ({@code forIo}), one view per run of
     * pages that follow each other in the block and lie in one window: the bytes are the same,
     * but a gathering write or scattering read of a 512 KiB packet of contiguous pages then
     * passes one buffer instead of 128, and NIO walks each buffer twice per call, as the kernel
     * does each iovec (a scattering read that returns early is called again with the rest).
     */
    int fill(MultifdBlock block, long[] offs, int n, ByteBuffer[] out) {
        if (owner != block) {
            bind(block);
        }
        return forIo ? runs(block.pageSize(), offs, n, out) : pages(block.pageSize(), offs, n, out);
    }

    private int pages(int ps, long[] offs, int n, ByteBuffer[] out) {
        for (int i = 0; i < n; i++) {
            out[i] = position(i, offs[i], ps);
        }
        return n;
    }

    /**
     * One branch per page, whose two outcomes every packet takes (its first page starts a run):
     * so the JIT never compiles a workload's first scattered page as an uncommon trap.
     */
    private int runs(int ps, long[] offs, int n, ByteBuffer[] out) {
        int k = -1;
        long prev = Long.MIN_VALUE; // no page before the first: it starts a run
        for (int i = 0; i < n; i++) {
            long off = offs[i];
            // not the page right after prev, or in another window: a new run
            if (((off - prev - ps) | ((off ^ prev) >>> SegmentWindows.SHIFT)) != 0) {
                k++;
                out[k] = position(k, off, ps);
            } else {
                ByteBuffer b = out[k];
                b.limit(b.limit() + ps);
            }
            prev = off;
        }
        return k + 1;
    }

    /** Slot {@code i} positioned on the page at {@code offset}. */
    private ByteBuffer position(int i, long offset, int ps) {
        ByteBuffer b = views[SegmentWindows.index(offset)][i];
        int pos = SegmentWindows.offsetInWindow(offset);
        b.limit(pos + ps).position(pos);
        return b;
    }

    private void bind(MultifdBlock block) {
        SegmentWindows windows = block.windows(forIo);
        ByteBuffer[][] v = new ByteBuffer[windows.count()][slots];
        for (int w = 0; w < v.length; w++) {
            for (int i = 0; i < slots; i++) {
                v[w][i] = windows.windowAt(w).duplicate();
            }
        }
        views = v;
        owner = block;
    }
}
