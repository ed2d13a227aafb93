package io.jmigrate.vmstate;

/**
 * How a QEMU release describes an array it cannot compress (one with an exists-test, or of
 * structs with subsections or tests) in the vmdesc JSON: one field object per element, and
 * these differ only in which elements carry an {@code "index"} key. Everything else in the vmdesc
 * is the same in 7.2, 10.0 and 11.1 (checked against the streams in the test data).
 *
 * <pre>
 * array "drives" of 2 structs that cannot be compressed:
 *   QEMU_7_2   {"name": "drives", "index": 0, ...}, {"name": "drives", "index": 1, ...}
 *   QEMU_10_0  {"name": "drives", "index": 0, ...}, {"name": "drives", ...}
 *   QEMU_11_1  {"name": "drives", ...},             {"name": "drives", ...}
 * </pre>
 */
public enum VmdescStyle {
    /** Every element has its index (QEMU 7.2). */
    QEMU_7_2,
    /** Every element but the last has its index: QEMU passes "elements left" as the array size (QEMU 10.0). */
    QEMU_10_0,
    /** No element has an index (QEMU 11.1). */
    QEMU_11_1;

    /** What jmigrate writes unless told otherwise. */
    public static final VmdescStyle DEFAULT = QEMU_10_0;

    /** True if element {@code i} of an uncompressed array of {@code n} carries "index". */
    boolean indexed(int i, long n) {
        return switch (this) {
            case QEMU_7_2 -> n > 1;
            case QEMU_10_0 -> n - i > 1;
            case QEMU_11_1 -> false;
        };
    }
}
