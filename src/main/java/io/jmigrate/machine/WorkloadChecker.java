package io.jmigrate.machine;

import io.jmigrate.memory.RamBlock;

/**
 * Checks the shape the {@code increment} workload leaves in guest RAM, as QEMU's a-b test guest
 * checker does. Each vCPU sweeps its slice of pages in order and increments byte 0 of every
 * page, so at any stop the slice reads {@code [v+1, …, v+1, v, …, v]} (mod 256): a prefix one
 * ahead of the rest, split at the vCPU's cursor. A page that missed a write (a page lost in
 * migration) breaks that shape and is reported by number.
 */
public final class WorkloadChecker {
    private WorkloadChecker() {
    }

    /**
     * Result of checking one slice.
     *
     * @param ok     whether the slice has the workload's shape
     * @param cursor the page index (absolute in the block) where the next sweep step will write
     * @param value  the value of the pages at and after the cursor (before the cursor: value+1)
     * @param error  what was wrong, or null
     */
    public record Result(boolean ok, long cursor, int value, String error) {
    }

    /** Checks pages {@code [from, to)} of {@code block}. */
    public static Result check(RamBlock block, long from, long to) {
        int first = block.readByte(from << block.pageShift()) & 0xff;
        long p = from + 1;
        while (p < to && (block.readByte(p << block.pageShift()) & 0xff) == first) {
            p++;
        }
        if (p == to) {
            return new Result(true, from, first, null);
        }
        long cursor = p;
        int low = block.readByte(p << block.pageShift()) & 0xff;
        if (((low + 1) & 0xff) != first) {
            return new Result(false, cursor, low, "page " + p + " of block " + block.idstr() + " holds " + low
                    + " after pages holding " + first + ": expected " + ((first - 1) & 0xff)
                    + " (one sweep behind) — a write was lost or the pattern was broken");
        }
        for (; p < to; p++) {
            int v = block.readByte(p << block.pageShift()) & 0xff;
            if (v != low) {
                return new Result(false, cursor, low, "page " + p + " of block " + block.idstr() + " holds " + v
                        + ", expected " + low + " (pages " + cursor + ".." + (to - 1)
                        + " must be one sweep behind pages " + from + ".." + (cursor - 1) + ")");
            }
        }
        return new Result(true, cursor, low, null);
    }
}
