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

    /** Slot {@code i} positioned on the page at {@code offset} of {@code block}. */
    ByteBuffer page(int i, MultifdBlock block, long offset) {
        if (owner != block) {
            bind(block);
        }
        ByteBuffer b = views[SegmentWindows.index(offset)][i];
        int pos = SegmentWindows.offsetInWindow(offset);
        b.limit(pos + block.pageSize()).position(pos);
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
