package io.jmigrate.vmstate;

/**
 * What one VMState field looks like on the wire, and the vmdesc {@code "type"} string QEMU
 * writes for it (PROTOCOL.md §1.7). A sealed family: the interpreter ({@link VmState}) switches
 * over it without a default branch, so a new kind does not compile until it is handled.
 *
 * <pre>
 * kind           wire bytes                              value (in {@link VmStateValues})  vmdesc type
 * Int            1/2/4/8, big-endian (or little-endian)  Long (sign- or zero-extended)       "uint32", "int64", ...
 * Bool           1 (0 = false, anything else = true)     Boolean                             "bool"
 * Buffer         exactly size bytes                      byte[size]                          "buffer"
 * VBuffer        value of an earlier Int field, bytes    byte[n]                             "buffer"
 * Unused         size bytes, zeros on save, skipped      (none)                              "unused_buffer"
 * CountedString  u8 length N, N bytes                    String (ISO-8859-1)                 e.g. "capability"
 * Array          count x element                         List of element values              element's type
 * VArray         (value of an earlier Int field) x elem  List of element values              element's type
 * Struct         the nested description's fields         VmStateValues                       "struct"
 * </pre>
 */
public sealed interface FieldKind {

    /** The vmdesc {@code "type"} string (for arrays, the element's). */
    String type();

    /** Kinds that may be array elements (anything but arrays and VBuffer). */
    sealed interface Element extends FieldKind permits Int, Bool, Buffer, Unused, CountedString, Struct {
    }

    /**
     * An integer of {@code size} bytes (1, 2, 4 or 8).
     *
     * @param size         bytes on the wire
     * @param signed       sign-extend on load (int8..int64) or zero-extend (uint8..uint64)
     * @param littleEndian true only for QEMU's few little-endian fields; the stream is big-endian
     * @param type         vmdesc type string ("uint32", "int64", "int32 le", "timer", ...)
     */
    record Int(int size, boolean signed, boolean littleEndian, String type) implements Element {
        public Int {
            if (size != 1 && size != 2 && size != 4 && size != 8) {
                throw new IllegalArgumentException("integer size must be 1, 2, 4 or 8, got " + size);
            }
            requireType(type);
        }

        /** The same integer layout under another vmdesc type name (e.g. "int32 equal", "timer"). */
        public Int named(String newType) {
            return new Int(size, signed, littleEndian, newType);
        }

        /** Lowest value accepted on save. */
        public long min() {
            return signed ? (size == 8 ? Long.MIN_VALUE : -(1L << (size * 8 - 1))) : (size == 8 ? Long.MIN_VALUE : 0);
        }

        /** Highest value accepted on save (for uint64, every long is accepted as 64 raw bits). */
        public long max() {
            return size == 8 ? Long.MAX_VALUE : signed ? (1L << (size * 8 - 1)) - 1 : (1L << (size * 8)) - 1;
        }
    }

    record Bool() implements Element {
        @Override
        public String type() {
            return "bool";
        }
    }

    /** A fixed-size byte buffer ({@code VMSTATE_BUFFER}); the type may be renamed ("pci config"). */
    record Buffer(int size, String type) implements Element {
        public Buffer {
            if (size < 0) {
                throw new IllegalArgumentException("buffer size must be >= 0, got " + size);
            }
            requireType(type);
        }
    }

    /**
     * A buffer whose length is the value of an earlier integer field of the same description
     * ({@code VMSTATE_VBUFFER_ALLOC_UINT32}); on load the length is checked against {@code maxSize}
     * and the stream's limit before anything is allocated.
     */
    record VBuffer(String lengthField, int maxSize) implements FieldKind {
        public VBuffer {
            requireType(lengthField);
            if (maxSize < 0) {
                throw new IllegalArgumentException("maxSize must be >= 0");
            }
        }

        @Override
        public String type() {
            return "buffer";
        }
    }

    /** {@code VMSTATE_UNUSED}: zeros on save, skipped on load, no value. */
    record Unused(int size) implements Element {
        public Unused {
            if (size <= 0) {
                throw new IllegalArgumentException("unused size must be > 0, got " + size);
            }
        }

        @Override
        public String type() {
            return "unused_buffer";
        }
    }

    /** A u8-length-prefixed string (e.g. the configuration's "capability" entries). */
    record CountedString(String type) implements Element {
        public CountedString {
            requireType(type);
        }
    }

    /** A fixed number of elements. */
    record Array(Element element, int count) implements FieldKind {
        public Array {
            if (element == null) {
                throw new IllegalArgumentException("array element kind is null");
            }
            if (count < 0) {
                throw new IllegalArgumentException("array count must be >= 0, got " + count);
            }
        }

        @Override
        public String type() {
            return element.type();
        }
    }

    /**
     * A number of elements given by an earlier integer field of the same description; on load
     * the count is checked against {@code maxCount} before the list is built.
     */
    record VArray(Element element, String countField, int maxCount) implements FieldKind {
        public VArray {
            if (element == null) {
                throw new IllegalArgumentException("array element kind is null");
            }
            requireType(countField);
            if (maxCount < 0) {
                throw new IllegalArgumentException("maxCount must be >= 0");
            }
        }

        @Override
        public String type() {
            return element.type();
        }
    }

    /** A nested description ({@code VMSTATE_STRUCT}), with its own version and subsections. */
    record Struct(VmStateDescription vmsd) implements Element {
        public Struct {
            if (vmsd == null) {
                throw new IllegalArgumentException("struct description is null");
            }
        }

        @Override
        public String type() {
            return "struct";
        }
    }

    Int INT8 = new Int(1, true, false, "int8");
    Int INT16 = new Int(2, true, false, "int16");
    Int INT32 = new Int(4, true, false, "int32");
    Int INT64 = new Int(8, true, false, "int64");
    Int UINT8 = new Int(1, false, false, "uint8");
    Int UINT16 = new Int(2, false, false, "uint16");
    Int UINT32 = new Int(4, false, false, "uint32");
    Int UINT64 = new Int(8, false, false, "uint64");
    Bool BOOL = new Bool();

    private static void requireType(String s) {
        if (s == null || s.isEmpty()) {
            throw new IllegalArgumentException("name must not be empty");
        }
    }
}
