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
 *
 * <p>{@link #forIo} makes windows for system calls (gathering writes, scattering reads). NIO
 * acquires and releases the memory session of every buffer that a {@code MemorySegment} backs,
 * around every call, and allocates a releaser per such buffer (40 bytes per page in a gathering
 * write of many pages). So where the JVM lets us ({@code --add-opens java.base/java.nio}, which
 * the jar's manifest and the launcher give), these windows are plain direct buffers over the
 * block's addresses, as JNI's {@code NewDirectByteBuffer} makes, with no session; elsewhere they
 * fall back to ordinary windows ({@link #sessionFree()} says which). Session-free windows are
 * valid only while the block's memory is mapped: the migration threads that use them are joined
 * before their VM unmaps it (a system call on memory unmapped under it fails with EFAULT).
 */
public final class SegmentWindows {
    /** log2 of the window size. */
    public static final int SHIFT = 30;
    public static final long SIZE = 1L << SHIFT;
    private static final long MASK = SIZE - 1;

    private final ByteBuffer[] windows;

    /** Windows over {@code segment}, bound to its arena (safe for any use). */
    public SegmentWindows(MemorySegment segment) {
        long size = segment.byteSize();
        int n = (int) ((size + MASK) >>> SHIFT);
        windows = new ByteBuffer[n];
        for (int i = 0; i < n; i++) {
            long start = (long) i << SHIFT;
            windows[i] = segment.asSlice(start, Math.min(SIZE, size - start)).asByteBuffer();
        }
    }

    /**
     * Windows for system calls over a native {@code segment}, in the global scope (see the class
     * comment); a heap segment gets ordinary windows.
     */
    public static SegmentWindows forIo(MemorySegment segment) {
        if (!segment.isNative() || RAW == null) {
            return new SegmentWindows(segment);
        }
        return new SegmentWindows(segment.address(), segment.byteSize());
    }

    /** Whether {@link #forIo} windows are session-free (no allocation per buffer in NIO calls). */
    public static boolean sessionFree() {
        return RAW != null;
    }

    /** {@code java.nio.DirectByteBuffer(long address, long capacity)}, JNI's constructor, or null. */
    private static final java.lang.reflect.Constructor<?> RAW = rawConstructor();

    private static java.lang.reflect.Constructor<?> rawConstructor() {
        try {
            var c = Class.forName("java.nio.DirectByteBuffer").getDeclaredConstructor(long.class, long.class);
            c.setAccessible(true);
            return c;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null; // not opened to us: ordinary windows
        }
    }

    private SegmentWindows(long address, long size) {
        int n = (int) ((size + MASK) >>> SHIFT);
        windows = new ByteBuffer[n];
        for (int i = 0; i < n; i++) {
            long start = (long) i << SHIFT;
            try {
                windows[i] = (ByteBuffer) RAW.newInstance(address + start, Math.min(SIZE, size - start));
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot make a direct buffer view of guest memory", e);
            }
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
