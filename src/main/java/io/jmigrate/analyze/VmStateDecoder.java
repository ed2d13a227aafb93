package io.jmigrate.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.analyze.VmDesc.BoolField;
import io.jmigrate.analyze.VmDesc.BytesField;
import io.jmigrate.analyze.VmDesc.CapabilityField;
import io.jmigrate.analyze.VmDesc.Entry;
import io.jmigrate.analyze.VmDesc.IntField;
import io.jmigrate.analyze.VmDesc.NullPtrField;
import io.jmigrate.analyze.VmDesc.StructField;
import io.jmigrate.analyze.VmDesc.VmsdStruct;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;

/**
 * Decodes VMState bytes with a {@link VmsdStruct} from the vmdesc and renders them exactly as
 * QEMU's {@code scripts/analyze-migration.py -d state} does (PROTOCOL.md §7):
 *
 * <ul>
 *   <li>integers: {@code "0x%0{2*size}x"}; a negative signed value is followed by its decimal
 *       value, e.g. {@code "0xffffffff (-1)"};</li>
 *   <li>bool: JSON true/false;</li>
 *   <li>buffers and every type without a reader: the bytes as lowercase hex pairs separated by
 *       spaces ({@code "00 01 ff"});</li>
 *   <li>nullptr: the string {@code "nullptr"};</li>
 *   <li>struct: an object; a field name seen again (array_len copies, split arrays) turns the
 *       value into a list of all occurrences;</li>
 *   <li>subsections, after the fields: byte 0x05, u8 length + name, be32 version, then the
 *       subsection's own fields; the object gets a key with the subsection's name.</li>
 * </ul>
 *
 * Not thread safe; one decoder reads one stream.
 */
public final class VmStateDecoder {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private final QemuFileReader r;
    private final long streamLength;

    /**
     * @param streamLength total length of the stream if known (lengths from the vmdesc are then
     *                     checked against what is left before anything is allocated), else -1
     */
    public VmStateDecoder(QemuFileReader reader, long streamLength) {
        this.r = reader;
        this.streamLength = streamLength;
    }

    /** Reads {@code size} bytes after checking that they exist. */
    private byte[] bytes(int size, String what) {
        if (streamLength >= 0 && size > streamLength - r.position()) {
            throw r.fail(Category.PROTOCOL, what + ": the vmdesc gives a size of " + size + " byte(s) but only "
                    + Math.max(0, streamLength - r.position()) + " remain before the end of the stream");
        }
        return r.readBytes(size, what);
    }

    /**
     * Reads one VMSD body.
     *
     * @param where names the section for messages, e.g. "section 'timer' (id 3)"
     */
    public ObjectNode decode(VmsdStruct s, String where) {
        ObjectNode out = NODES.objectNode();
        for (Entry e : s.fields()) {
            for (int i = 0; i < e.repeat(); i++) {
                String name = e.field().name();
                JsonNode v = readField(e.field(), where, e.repeat() == 1 ? name : name + "#" + i);
                JsonNode prev = out.get(name);
                if (prev == null) {
                    out.set(name, v);
                } else if (prev instanceof ArrayNode a) {
                    a.add(v);
                } else {
                    ArrayNode a = NODES.arrayNode();
                    a.add(prev);
                    a.add(v);
                    out.set(name, a);
                }
            }
        }
        for (VmsdStruct sub : s.subsections()) {
            long at = r.position();
            int b = r.readU8("subsection marker of " + sub.vmsdName());
            if (b != SectionType.SUBSECTION.wire) {
                throw r.fail(Category.PROTOCOL, at, String.format("%s: expected subsection '%s' (byte 0x05) as the "
                        + "vmdesc lists it, got byte 0x%02x", where, sub.vmsdName(), b));
            }
            long nameAt = r.position();
            String name = r.readCountedString("subsection name");
            if (!name.equals(sub.vmsdName())) {
                throw r.fail(Category.PROTOCOL, nameAt, where + ": subsection '" + printable(name)
                        + "' found where the vmdesc lists '" + sub.vmsdName() + "'");
            }
            r.readBe32("subsection version of " + name);
            out.set(name, decode(sub, where + " subsection '" + name + "'"));
        }
        return out;
    }

    private JsonNode readField(VmDesc.Field f, String where, String name) {
        return switch (f) {
            case IntField i -> NODES.textNode(readInt(i, where, name));
            case BoolField b -> {
                byte[] d = bytes(b.size(), what(where, name));
                yield NODES.booleanNode(d[0] != 0);
            }
            case BytesField b -> NODES.textNode(hex(bytes(b.size(), what(where, name))));
            case NullPtrField n -> {
                long at = r.position();
                byte[] d = bytes(n.size(), what(where, name));
                if (d.length != 1 || d[0] != '0') {
                    throw r.fail(Category.PROTOCOL, at, what(where, name) + ": expected the nullptr marker byte 0x30 ('0'), got "
                            + (d.length == 0 ? "no bytes" : "'" + hex(d) + "'"));
                }
                yield NODES.textNode("nullptr");
            }
            case CapabilityField c -> NODES.textNode(r.readCountedString(what(where, name)));
            case StructField s -> decode(s.struct(), where + " struct " + name);
        };
    }

    private String readInt(IntField f, String where, String name) {
        int size = f.size();
        long u = switch (size) {
            case 1 -> r.readU8(what(where, name));
            case 2 -> r.readBe16(what(where, name));
            case 4 -> r.readBe32Unsigned(what(where, name));
            case 8 -> r.readBe64(what(where, name));
            default -> {
                byte[] d = bytes(size, what(where, name));
                long v = 0;
                for (byte x : d) {
                    v = (v << 8) | (x & 0xff);
                }
                yield v;
            }
        };
        StringBuilder sb = new StringBuilder(2 + 2 * size + 24).append("0x");
        String h = Long.toHexString(u);
        sb.repeat('0', 2 * size - h.length()).append(h);
        if (f.signed()) {
            int shift = 64 - 8 * size;
            long s = (u << shift) >> shift;
            if (s < 0) {
                sb.append(" (").append(s).append(')');
            }
        }
        return sb.toString();
    }

    private static String what(String where, String name) {
        return where + " field " + name;
    }

    /** Bytes as "00 01 ff". */
    public static String hex(byte[] d) {
        if (d.length == 0) {
            return "";
        }
        char[] out = new char[d.length * 3 - 1];
        for (int i = 0; i < d.length; i++) {
            int j = i * 3;
            out[j] = HEX[(d[i] >> 4) & 0xf];
            out[j + 1] = HEX[d[i] & 0xf];
            if (j + 2 < out.length) {
                out[j + 2] = ' ';
            }
        }
        return new String(out);
    }

    static String printable(String s) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c >= 0x20 && c < 0x7f) {
                sb.append(c);
            } else {
                sb.append(String.format("\\x%02x", (int) c));
            }
        }
        return sb.toString();
    }
}
