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

    static VmStateDescription fromVmdesc(JsonNode o) {
        return VmdescDescriptions.fromVmdesc(o);
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
            } catch (io.jmigrate.common.MigrationException e) {
                skipped.add(idstr + " (" + e.getMessage() + ")");
                assertThat(e.getMessage()).contains("type 'tmp'");
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
        assertThat(skipped).as("only the cpu (with its 'tmp' field) is skipped").hasSize(1)
                .allMatch(m -> m.startsWith("cpu (vmdesc: field 'tmp'"));
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
