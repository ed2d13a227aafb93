package io.jmigrate.memory;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * One bit per guest page, in 64-bit words changed atomically: vCPU threads set bits while they
 * write, the migration thread collects and clears them ({@link #syncInto}), as KVM's dirty log
 * and QEMU's {@code migration_bitmap_sync} do. Setting a bit that is already set costs one plain
 * read and no atomic operation, so a vCPU re-dirtying a hot page does not contend.
 */
public final class DirtyBitmap {
    private static final VarHandle WORDS = MethodHandles.arrayElementVarHandle(long[].class);

    private final long pages;
    private final long[] words;

    public DirtyBitmap(long pages) {
        if (pages < 0 || (pages + 63) / 64 > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("bad page count " + pages);
        }
        this.pages = pages;
        this.words = new long[(int) ((pages + 63) / 64)];
    }

    public long pages() {
        return pages;
    }

    /** Marks {@code page} dirty (any thread). */
    public void set(long page) {
        int w = (int) (page >>> 6);
        long bit = 1L << (page & 63);
        if (((long) WORDS.getOpaque(words, w) & bit) == 0) {
            WORDS.getAndBitwiseOr(words, w, bit);
        }
    }

    /** Marks every page dirty (the first pass sends everything). */
    public void setAll() {
        for (int w = 0; w < words.length; w++) {
            long mask = w == words.length - 1 && (pages & 63) != 0 ? (1L << (pages & 63)) - 1 : -1L;
            WORDS.getAndBitwiseOr(words, w, mask);
        }
    }

    public boolean get(long page) {
        return (((long) WORDS.getVolatile(words, (int) (page >>> 6))) & (1L << (page & 63))) != 0;
    }

    /**
     * Moves every set bit into {@code dest} (OR) and clears it here, word by word with an atomic
     * swap, so no write that races with the sync is lost: it is either collected now or left set
     * for the next sync. Returns the number of bits newly set in {@code dest}.
     */
    public long syncInto(long[] dest) {
        if (dest.length < words.length) {
            throw new IllegalArgumentException("destination bitmap too small");
        }
        long added = 0;
        for (int w = 0; w < words.length; w++) {
            if ((long) WORDS.getOpaque(words, w) == 0) {
                continue;
            }
            long bits = (long) WORDS.getAndSet(words, w, 0L);
            added += Long.bitCount(bits & ~dest[w]);
            dest[w] |= bits;
        }
        return added;
    }

    /** Number of set bits (approximate while writers run). */
    public long count() {
        long n = 0;
        for (int w = 0; w < words.length; w++) {
            n += Long.bitCount((long) WORDS.getOpaque(words, w));
        }
        return n;
    }

    /** Words needed for a plain bitmap of the same size. */
    public int wordCount() {
        return words.length;
    }
}
