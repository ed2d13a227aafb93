package io.jmigrate.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The zero-page check of the senders and of the loader's clears (QEMU's {@code buffer_is_zero}). */
public final class ZeroPages {
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED;

    private ZeroPages() {
    }

    /**
     * Whether the {@code size} bytes of {@code seg} at {@code offset} are all zero; {@code zero} is
     * a segment of at least {@code size} zero bytes. A page that is not zero almost always has a
     * non-zero byte among its first 8, so one load decides it, without the set-up of a
     * {@link MemorySegment#mismatch} call (bounds, sessions, the vectorized loop's entry), which
     * costs more than the load; only pages that start with 8 zero bytes get the whole check.
     */
    public static boolean isZero(MemorySegment seg, long offset, int size, MemorySegment zero) {
        return seg.get(LONG, offset) == 0 && MemorySegment.mismatch(seg, offset, offset + size, zero, 0, size) < 0;
    }
}
