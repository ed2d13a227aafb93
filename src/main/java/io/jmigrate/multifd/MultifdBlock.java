package io.jmigrate.multifd;

import io.jmigrate.memory.SegmentWindows;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * One RAMBlock as the multifd channels see it: its idstr, the guest memory as a
 * {@link MemorySegment} (used_length = the segment's size) and, on the destination, the
 * "received" bitmap that decides whether a zero page must be cleared (PROTOCOL.md §2.6: a zero
 * page is memset only if that page was received before).
 *
 * <p>Thread safe: several receive threads may write pages of the same block concurrently (they
 * never write the same page in one round); the bitmap is a {@code long[]} changed with VarHandle
 * bitwise operations, one per 64-page word of a packet rather than one per page
 * ({@link #markReceived(long[], int, int)}).
 */
public final class MultifdBlock {
    private final String idstr;
    private final byte[] nameBytes;
    private final MemorySegment memory;
    private final int pageSize;
    private static final VarHandle WORDS = MethodHandles.arrayElementVarHandle(long[].class);

    private final int pageShift;
    private final long[] received;
    /** Source of the clears of re-sent zero pages (a heap page: no native memory per block). */
    private final MemorySegment zeroPage;
    /** ByteBuffer windows of the whole block, for per-slot views without per-page allocation. */
    private final SegmentWindows windows;
    /** The same for system calls only (no session acquire, so no allocation per buffer). */
    private final SegmentWindows ioWindows;

    /** The block's memory as a file at offset 0, for sendfile, or null. */
    private final java.nio.channels.FileChannel file;

    public MultifdBlock(String idstr, MemorySegment memory, int pageSize) {
        this(idstr, memory, pageSize, null);
    }

    /**
     * @param file a file whose contents are {@code memory} (a shared mapping of it from offset 0),
     *             from which a sender may {@code transferTo} normal pages; or null
     */
    public MultifdBlock(String idstr, MemorySegment memory, int pageSize, java.nio.channels.FileChannel file) {
        this.file = file;
        byte[] name = idstr.getBytes(StandardCharsets.ISO_8859_1);
        if (name.length == 0 || name.length > 255) {
            throw new IllegalArgumentException("RAMBlock idstr must be 1..255 bytes: '" + idstr + "'");
        }
        if (pageSize <= 0 || Integer.bitCount(pageSize) != 1) {
            throw new IllegalArgumentException("page size must be a power of two: " + pageSize);
        }
        if (memory.byteSize() % pageSize != 0 || memory.byteSize() == 0) {
            throw new IllegalArgumentException("block " + idstr + " length " + memory.byteSize()
                    + " is not a positive multiple of the page size " + pageSize);
        }
        this.idstr = idstr;
        this.nameBytes = name;
        this.memory = memory;
        this.pageSize = pageSize;
        this.pageShift = Integer.numberOfTrailingZeros(pageSize);
        long pages = memory.byteSize() >>> pageShift;
        if ((pages + 63) / 64 > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("block " + idstr + " of " + memory.byteSize() + " bytes is too large");
        }
        this.received = new long[(int) ((pages + 63) / 64)];
        this.windows = new SegmentWindows(memory);
        this.ioWindows = SegmentWindows.forIo(memory);
        this.zeroPage = MemorySegment.ofArray(new byte[pageSize]);
    }

    public String idstr() {
        return idstr;
    }

    byte[] nameBytes() {
        return nameBytes;
    }

    public MemorySegment memory() {
        return memory;
    }

    public long usedLength() {
        return memory.byteSize();
    }

    public int pageSize() {
        return pageSize;
    }

    /** The file behind the memory (shared mapping from offset 0), or null. */
    public java.nio.channels.FileChannel file() {
        return file;
    }

    /** Marks the page at {@code offset} received; returns whether it had been received before. */
    public boolean markReceived(long offset) {
        long page = offset >>> pageShift;
        long bit = 1L << (page & 63);
        long prev = (long) WORDS.getAndBitwiseOr(received, (int) (page >>> 6), bit);
        return (prev & bit) != 0;
    }

    /**
     * Marks the pages at {@code offsets[from..to)} received, with one atomic OR per run of
     * offsets that fall into the same 64-page word (a packet's pages are mostly ascending and
     * contiguous, so a 128-page packet costs a few atomic operations, not 128).
     */
    public void markReceived(long[] offsets, int from, int to) {
        int i = from;
        while (i < to) {
            long page = offsets[i] >>> pageShift;
            int word = (int) (page >>> 6);
            long bits = 1L << (page & 63);
            i++;
            while (i < to) {
                long p = offsets[i] >>> pageShift;
                if ((int) (p >>> 6) != word) {
                    break;
                }
                bits |= 1L << (p & 63);
                i++;
            }
            WORDS.getAndBitwiseOr(received, word, bits);
        }
    }

    /**
     * Zero pages of a packet ({@code offsets[from..to)}): each is marked received, and a page that
     * had been received before is cleared (PROTOCOL.md §2.6); one atomic OR per 64-page word.
     */
    public void receiveZeroPages(long[] offsets, int from, int to) {
        int i = from;
        while (i < to) {
            int start = i;
            int word = (int) ((offsets[i] >>> pageShift) >>> 6);
            long bits = 0;
            while (i < to && (int) ((offsets[i] >>> pageShift) >>> 6) == word) {
                bits |= 1L << ((offsets[i] >>> pageShift) & 63);
                i++;
            }
            long prev = (long) WORDS.getAndBitwiseOr(received, word, bits);
            if ((prev & bits) != 0) {
                for (int j = start; j < i; j++) {
                    if ((prev & (1L << ((offsets[j] >>> pageShift) & 63))) != 0) {
                        MemorySegment.copy(zeroPage, 0, memory, offsets[j], pageSize);
                    }
                }
            }
        }
    }

    public boolean isReceived(long offset) {
        long page = offset >>> pageShift;
        return ((long) WORDS.getVolatile(received, (int) (page >>> 6)) & (1L << (page & 63))) != 0;
    }

    /** The block's ByteBuffer windows (shared: duplicate one before moving its position). */
    SegmentWindows windows(boolean forIo) {
        return forIo ? ioWindows : windows;
    }

    @Override
    public String toString() {
        return "RAMBlock " + idstr + " (" + memory.byteSize() + " bytes)";
    }
}
