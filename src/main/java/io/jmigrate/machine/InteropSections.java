package io.jmigrate.machine;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.savevm.StreamConfiguration;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

import java.nio.charset.StandardCharsets;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The configuration section and the {@code timer} and {@code globalstate} devices of
 * PROTOCOL.md §1.5 and Appendix A, hand-coded until the declarative VMSDs of the vmstate layer
 * replace them. Byte layouts (QEMU 10.0):
 *
 * <pre>
 * configuration v1: be32 len | len bytes machine name       (no subsections: 4 KiB pages)
 * timer v2:         be64 cpu_ticks_offset | 8 unused bytes | be64 cpu_clock_offset
 * globalstate v1:   be32 size (strlen+1) | 32 bytes runstate, NUL padded |
 *                   u8 has_vm_was_suspended | u8 vm_was_suspended | 66 unused bytes
 * </pre>
 */
final class InteropSections {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final int RUNSTATE_LEN = 32;

    private InteropSections() {
    }

    private static ObjectNode field(String name, String type, int size) {
        ObjectNode f = JSON.createObjectNode();
        f.put("name", name).put("type", type).put("size", size);
        return f;
    }

    /** The configuration section: the machine type name, checked by the destination. */
    static StreamConfiguration configuration(String machine) {
        byte[] name = machine.getBytes(StandardCharsets.ISO_8859_1);
        return new StreamConfiguration() {
            @Override
            public void save(QemuFileWriter w) {
                w.putBe32(name.length).putBytes(name);
            }

            @Override
            public void load(QemuFileReader r) {
                long at = r.position();
                long len = r.readBe32Unsigned("configuration name length");
                r.checkLength(len, 255, "configuration machine name");
                String got = new String(r.readBytes(len, "configuration machine name"), StandardCharsets.ISO_8859_1);
                if (!got.equals(machine)) {
                    throw r.fail(Category.MISMATCH, at, "Machine type received is '" + got + "' and local is '"
                            + machine + "'");
                }
                while (r.peekU8() == SectionType.SUBSECTION.wire) {
                    long subAt = r.position();
                    r.readU8("subsection marker");
                    String sub = r.readCountedString("configuration subsection name");
                    int version = r.readBe32("subsection version");
                    switch (sub) {
                        case "configuration/target-page-bits" -> {
                            int bits = r.readBe32("target_page_bits");
                            if (bits != 12) {
                                throw r.fail(Category.MISMATCH, subAt, "target page bits " + bits
                                        + " received, local is 12");
                            }
                        }
                        default -> throw r.fail(Category.MISMATCH, subAt, "configuration subsection '" + sub
                                + "' version " + version + " is not supported by this destination");
                    }
                }
            }

            @Override
            public ObjectNode vmdesc() {
                ObjectNode o = JSON.createObjectNode();
                o.put("vmsd_name", "configuration").put("version", 1);
                ArrayNode fields = o.putArray("fields");
                fields.add(field("len", "uint32", 4));
                fields.add(field("name", "buffer", name.length));
                return o;
            }
        };
    }

    /** {@code timer} v2: the guest clock offsets. */
    static SaveVmHandlers timer(Supplier<long[]> save, Consumer<long[]> load) {
        return new SaveVmHandlers() {
            @Override
            public boolean isIterable() {
                return false;
            }

            @Override
            public void saveState(QemuFileWriter w) {
                long[] v = save.get();
                w.putBe64(v[0]).putBe64(0).putBe64(v[1]);
            }

            @Override
            public void loadState(QemuFileReader r, SectionType type, int versionId) {
                long ticks = r.readBe64("timer cpu_ticks_offset");
                r.skip(8, "timer unused");
                long clock = r.readBe64("timer cpu_clock_offset");
                load.accept(new long[] {ticks, clock});
            }

            @Override
            public ObjectNode vmdesc() {
                ObjectNode o = JSON.createObjectNode();
                o.put("vmsd_name", "timer").put("version", 2);
                ArrayNode f = o.putArray("fields");
                f.add(field("cpu_ticks_offset", "int64", 8));
                f.add(field("unused", "unused_buffer", 8));
                f.add(field("cpu_clock_offset", "int64", 8));
                return o;
            }
        };
    }

    /** {@code globalstate} v1: the source's run state, which the destination follows. */
    static SaveVmHandlers globalState(Supplier<String> save, Consumer<String> load) {
        return new SaveVmHandlers() {
            @Override
            public boolean isIterable() {
                return false;
            }

            @Override
            public void saveState(QemuFileWriter w) {
                byte[] s = save.get().getBytes(StandardCharsets.ISO_8859_1);
                byte[] buf = new byte[RUNSTATE_LEN];
                System.arraycopy(s, 0, buf, 0, Math.min(s.length, RUNSTATE_LEN - 1));
                w.putBe32(s.length + 1).putBytes(buf).putU8(0).putU8(0).putBytes(new byte[66]);
            }

            @Override
            public void loadState(QemuFileReader r, SectionType type, int versionId) {
                long at = r.position();
                long size = r.readBe32Unsigned("globalstate size");
                byte[] buf = r.readBytes(RUNSTATE_LEN, "globalstate runstate");
                r.readU8("globalstate has_vm_was_suspended");
                r.readU8("globalstate vm_was_suspended");
                r.skip(66, "globalstate unused");
                if (size < 1 || size > RUNSTATE_LEN) {
                    throw r.fail(Category.PROTOCOL, at, "globalstate size " + size + " must be 1.." + RUNSTATE_LEN);
                }
                String state = new String(buf, 0, (int) size - 1, StandardCharsets.ISO_8859_1);
                load.accept(state);
            }

            @Override
            public ObjectNode vmdesc() {
                ObjectNode o = JSON.createObjectNode();
                o.put("vmsd_name", "globalstate").put("version", 1);
                ArrayNode f = o.putArray("fields");
                f.add(field("size", "uint32", 4));
                f.add(field("runstate", "buffer", RUNSTATE_LEN));
                f.add(field("has_vm_was_suspended", "uint8", 1));
                f.add(field("vm_was_suspended", "uint8", 1));
                f.add(field("unused", "buffer", 66));
                return o;
            }
        };
    }
}
