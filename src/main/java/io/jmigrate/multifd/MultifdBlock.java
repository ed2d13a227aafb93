package io.jmigrate.multifd;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * One RAMBlock as the multifd channels see it: its idstr, the guest memory as a
 * {@link MemorySegment} (used_length = the segment's size) and, on the destination, the
 * "received" bitmap that decides whether a zero page must be cleared (PROTOCOL.md §2.6: a zero
 * page is memset only if that page was received before).
 *
 * <p>Thread safe: several receive threads may write pages of the same block concurrently (they
 * never write the same page in one round); the bitmap uses atomic bit operations.
 */
public final class MultifdBlock {
    private final String idstr;
    private final byte[] nameBytes;
    private final MemorySegment memory;
    private final int pageSize;
    private final AtomicLongArray received;
    /** Whole-block view for building per-slot ByteBuffer views without per-page allocation. */
    private final ByteBuffer view;

    public MultifdBlock(String idstr, MemorySegment memory, int pageSize) {
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
        long pages = memory.byteSize() / pageSize;
        this.received = new AtomicLongArray((int) ((pages + 63) / 64));
        this.view = memory.byteSize() <= Integer.MAX_VALUE && memory.isNative() ? memory.asByteBuffer() : null;
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

    /** Marks the page at {@code offset} received; returns whether it had been received before. */
    public boolean markReceived(long offset) {
        long page = offset / pageSize;
        int word = (int) (page >>> 6);
        long bit = 1L << (page & 63);
        long prev = received.getAndUpdate(word, w -> w | bit);
        return (prev & bit) != 0;
    }

    public boolean isReceived(long offset) {
        long page = offset / pageSize;
        return (received.get((int) (page >>> 6)) & (1L << (page & 63))) != 0;
    }

    /** A fresh whole-block view, or null when the block cannot be one ByteBuffer (over 2 GiB, heap). */
    ByteBuffer newView() {
        return view == null ? null : view.duplicate();
    }

    @Override
    public String toString() {
        return "RAMBlock " + idstr + " (" + memory.byteSize() + " bytes)";
    }
}
