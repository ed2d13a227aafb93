package io.jmigrate.multifd;

import java.nio.ByteBuffer;

/**
 * Reusable ByteBuffer views of guest pages for one channel thread's gathering writes and
 * scattering reads: slot {@code i} keeps a view of the block it last pointed into, so steady
 * state allocates nothing per page (a view is re-created only when the block changes).
 * Not thread safe: one per channel thread.
 */
final class PageViews {
    private final ByteBuffer[] views;
    private final MultifdBlock[] owners;

    PageViews(int slots) {
        views = new ByteBuffer[slots];
        owners = new MultifdBlock[slots];
    }

    /** Slot {@code i} positioned on the page at {@code offset} of {@code block}. */
    ByteBuffer page(int i, MultifdBlock block, long offset) {
        ByteBuffer b = views[i];
        if (owners[i] != block || b == null) {
            b = block.newView();
            if (b == null) {
                owners[i] = null;
                return block.memory().asSlice(offset, block.pageSize()).asByteBuffer();
            }
            views[i] = b;
            owners[i] = block;
        }
        b.clear();
        b.position((int) offset);
        b.limit((int) offset + block.pageSize());
        return b;
    }
}
