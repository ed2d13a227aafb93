package io.jmigrate.multifd;

import io.jmigrate.memory.SegmentWindows;

import java.nio.ByteBuffer;

/**
 * Reusable ByteBuffer views of guest pages for one channel thread's gathering writes and
 * scattering reads: slot {@code i} keeps a view of the 1 GiB window of the block it last
 * pointed into ({@link SegmentWindows}), so steady state allocates nothing per page whatever the
 * block size (a view is re-made only when the block or the window changes).
 * Not thread safe: one per channel thread.
 */
final class PageViews {
    private final ByteBuffer[] views;
    private final MultifdBlock[] owners;
    private final int[] ownerWindows;
    private final boolean forIo;

    /**
     * @param forIo the views only go to system calls (no compression): use the blocks'
     *              {@link SegmentWindows#forIo} windows, so no NIO call allocates per page
     */
    PageViews(int slots, boolean forIo) {
        this.forIo = forIo;
        views = new ByteBuffer[slots];
        owners = new MultifdBlock[slots];
        ownerWindows = new int[slots];
    }

    /** Slot {@code i} positioned on the page at {@code offset} of {@code block}. */
    ByteBuffer page(int i, MultifdBlock block, long offset) {
        int w = SegmentWindows.index(offset);
        ByteBuffer b = views[i];
        if (owners[i] != block || ownerWindows[i] != w || b == null) {
            b = block.windows(forIo).windowAt(w).duplicate();
            views[i] = b;
            owners[i] = block;
            ownerWindows[i] = w;
        }
        int pos = SegmentWindows.offsetInWindow(offset);
        b.limit(pos + block.pageSize()).position(pos);
        return b;
    }
}
