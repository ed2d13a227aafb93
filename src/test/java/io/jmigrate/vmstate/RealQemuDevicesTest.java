package io.jmigrate.vmstate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.stream.QemuFileReader;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The interpreter against every VMSD device of real QEMU {@code pc} streams: a description is
 * rebuilt from each device's vmdesc entry (types, sizes, arrays, nested structs, subsections),
 * the FULL section body is loaded with it (ending exactly at the 0x7e footer), saved again
 * (byte-identical), and the vmdesc our save produces equals QEMU's entry as a JSON tree.
 */
class RealQemuDevicesTest {

    /** Builds a description from a vmdesc object {vmsd_name, version, fields, subsections}. */
    static VmStateDescription fromVmdesc(JsonNode o) {
        String name = o.get("vmsd_name").asText();
        int version = o.get("version").asInt();
        VmStateDescription.Builder b = VmStateDescription.builder(name, version);
        List<JsonNode> fields = new ArrayList<>();
        o.get("fields").forEach(fields::add);
        for (int i = 0; i < fields.size(); i++) {
            JsonNode f = fields.get(i);
            String fname = f.get("name").asText();
            FieldKind.Element kind = kind(f);
            if (f.has("array_len")) {
                b.field(new VmStateField(fname, new FieldKind.Array(kind, f.get("array_len").asInt())));
            } else if (i + 1 < fields.size() && fields.get(i + 1).path("name").asText().equals(fname)) {
                // An array QEMU could not compress: one entry per element, all but the last with
                // "index" (7.2, 10.0), or none with it (11.1).
                int n = 1;
                while (i + n < fields.size() && fields.get(i + n).path("name").asText().equals(fname)) {
                    n++;
                }
                i += n - 1;
                b.field(new VmStateField(fname, new FieldKind.Array(kind, n)).when((v, ver) -> true));
            } else {
                b.field(new VmStateField(fname, kind));
            }
        }
        if (o.has("subsections")) {
            for (JsonNode s : o.get("subsections")) {
                b.subsection(fromVmdesc(s));
            }
        }
        return b.build();
    }

    static FieldKind.Element kind(JsonNode f) {
        String type = f.get("type").asText();
        int size = f.get("size").asInt();
        return switch (type) {
            case "int8" -> FieldKind.INT8;
            case "int16" -> FieldKind.INT16;
            case "int32" -> FieldKind.INT32;
            case "int64" -> FieldKind.INT64;
            case "uint8" -> FieldKind.UINT8;
            case "uint16" -> FieldKind.UINT16;
            case "uint32" -> FieldKind.UINT32;
            case "uint64" -> FieldKind.UINT64;
            case "bool" -> FieldKind.BOOL;
            case "int32 le", "int32 equal" -> FieldKind.INT32.named(type);
            case "uint8 equal" -> FieldKind.UINT8.named(type);
            case "timer" -> FieldKind.INT64.named(type);
            case "buffer", "pci config", "pci irq state" -> new FieldKind.Buffer(size, type);
            case "unused_buffer" -> new FieldKind.Unused(size);
            case "struct" -> new FieldKind.Struct(fromVmdesc(f.get("struct")));
            default -> throw new UnsupportedOperationException(type);
        };
    }

    @ParameterizedTest
    @ValueSource(strings = {"7.2", "10.0", "11.1"})
    void everyVmsdDeviceOfThePcStreamRoundTripsByteForByte(String qemu) {
        byte[] s = QemuTestStreams.stream(qemu, "stream-zero-ram.bin.gz");
        JsonNode vmdesc = Vmdesc.parse(QemuTestStreams.vmdescJson(s));
        int checked = 0;
        List<String> skipped = new ArrayList<>();
        for (JsonNode dev : QemuTestStreams.vmsdDevices(vmdesc)) {
            String idstr = dev.get("name").asText();
            int instance = dev.get("instance_id").asInt();
            VmStateDescription d;
            try {
                d = fromVmdesc(dev);
            } catch (UnsupportedOperationException e) {
                skipped.add(idstr + " (" + e.getMessage() + ")");
                continue;
            }
            var sec = QemuTestStreams.fullSection(s, idstr, instance, d.versionId());
            int limit = QemuTestStreams.vmdescOffset(s);
            QemuFileReader r = QemuFileReader.of(Arrays.copyOfRange(s, sec.bodyStart(), limit), idstr);
            VmStateValues values = VmState.load(r, d, d.versionId());
            int end = sec.bodyStart() + (int) r.position();
            assertThat(s[end]).as("%s: load ends at the 0x7e footer", idstr).isEqualTo((byte) 0x7e);
            assertThat(ByteBuffer.wrap(s, end + 1, 4).getInt()).as("%s footer id", idstr).isEqualTo(sec.sectionId());

            ByteArrayOutputStream out = new ByteArrayOutputStream();
            var w = new io.jmigrate.stream.QemuFileWriter(out, "out");
            ObjectNode desc = JsonNodeFactory.instance.objectNode();
            desc.put("name", idstr);
            desc.put("instance_id", instance);
            VmdescStyle style = switch (qemu) {
                case "7.2" -> VmdescStyle.QEMU_7_2;
                case "10.0" -> VmdescStyle.QEMU_10_0;
                default -> VmdescStyle.QEMU_11_1;
            };
            VmState.save(w, d, values, d.versionId(), desc, style);
            w.flush();
            assertThat(out.toByteArray()).as("%s re-saved", idstr).isEqualTo(Arrays.copyOfRange(s, sec.bodyStart(), end));
            assertThat((JsonNode) desc).as("%s vmdesc", idstr).isEqualTo(dev);
            checked++;
        }
        assertThat(skipped).as("only the cpu (with its 'tmp' field) is skipped").hasSizeLessThanOrEqualTo(1);
        assertThat(checked).isGreaterThanOrEqualTo(30);
    }

    @ParameterizedTest
    @ValueSource(strings = {"10.0"})
    void loadedValuesMatchQemusAnalyzer(String qemu) {
        byte[] s = QemuTestStreams.stream(qemu, "stream-zero-ram.bin.gz");
        JsonNode vmdesc = Vmdesc.parse(QemuTestStreams.vmdescJson(s));
        VmStateDescription fwCfg = fromVmdesc(QemuTestStreams.device(vmdesc, "fw_cfg", 0));
        var sec = QemuTestStreams.fullSection(s, "fw_cfg", 0, 2);
        VmStateValues v = VmState.load(QemuFileReader.of(sec.body(s), "fw_cfg"), fwCfg, 2);
        // analyze-state: "fw_cfg/acpi_mr": {"table_mr_size": "0x0000000000020000", "linker_mr_size":
        // "0x0000000000001000", "rsdp_mr_size": "0x0000000000000014"}
        VmStateValues acpi = v.subsection("fw_cfg/acpi_mr");
        assertThat(acpi.getLong("table_mr_size")).isEqualTo(0x20000);
        assertThat(acpi.getLong("linker_mr_size")).isEqualTo(0x1000);
        assertThat(acpi.getLong("rsdp_mr_size")).isEqualTo(0x14);
        assertThat(v.subsection("fw_cfg/dma").getLong("dma_addr")).isZero();
    }
}
