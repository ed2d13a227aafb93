package io.jmigrate.memory;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/**
 * {@link ByteBuffer} views of a guest-memory segment of any size, made once: the segment is cut
 * into 1 GiB windows (a {@code ByteBuffer} addresses at most 2 GiB), and a page at byte
 * {@code offset} lies wholly inside window {@code offset >>> 30} at {@code offset & (1 GiB - 1)},
 * because pages are powers of two no larger than a window. Gathering writes and scattering reads
 * of pages then need no slice and no new buffer per page, whatever the block size.
 *
 * <p>The window buffers are shared: callers never move their position or limit, they
 * {@link ByteBuffer#duplicate() duplicate} a window once and reuse that view.
 */
public final class SegmentWindows {
    /** log2 of the window size. */
    public static final int SHIFT = 30;
    public static final long SIZE = 1L << SHIFT;
    private static final long MASK = SIZE - 1;

    private final ByteBuffer[] windows;

    public SegmentWindows(MemorySegment segment) {
        long size = segment.byteSize();
        int n = (int) ((size + MASK) >>> SHIFT);
        windows = new ByteBuffer[n];
        for (int i = 0; i < n; i++) {
            long start = (long) i << SHIFT;
            windows[i] = segment.asSlice(start, Math.min(SIZE, size - start)).asByteBuffer();
        }
    }

    /** Number of windows. */
    public int count() {
        return windows.length;
    }

    /** The window holding byte {@code offset} (shared: do not move its position). */
    public ByteBuffer window(long offset) {
        return windows[index(offset)];
    }

    /** Window {@code i} (shared: do not move its position). */
    public ByteBuffer windowAt(int i) {
        return windows[i];
    }

    /** Index of the window holding byte {@code offset}. */
    public static int index(long offset) {
        return (int) (offset >>> SHIFT);
    }

    /** Position of byte {@code offset} inside its window. */
    public static int offsetInWindow(long offset) {
        return (int) (offset & MASK);
    }
}
