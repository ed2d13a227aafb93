package io.jmigrate.vmstate;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.StreamException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ConfigurationSectionTest {
    static final UUID U = UUID.fromString("12345678-9abc-def0-1122-334455667788");

    static byte[] write(ConfigurationSection c) {
        return VmStateTest.bytes(c::write);
    }

    static ConfigurationSection read(byte[] b) {
        QemuFileReader r = QemuFileReader.of(b, "test");
        ConfigurationSection c = ConfigurationSection.read(r);
        assertThat(r.atEof()).isTrue();
        return c;
    }

    static String hex(String ascii) {
        return HexFormat.of().formatHex(ascii.getBytes());
    }

    @ParameterizedTest
    @ValueSource(strings = {"7.2", "10.0"})
    void machineNoneIsByteIdenticalToQemusAndReadsBack(String qemu) {
        byte[] s = QemuTestStreams.stream(qemu, "none-stream.bin.gz");
        assertThat(s[8]).as("QEMU_VM_CONFIGURATION").isEqualTo((byte) 0x07);
        byte[] body = Arrays.copyOfRange(s, 9, 17);
        assertThat(write(ConfigurationSection.of("none"))).isEqualTo(body);
        QemuFileReader r = QemuFileReader.of(Arrays.copyOfRange(s, 9, s.length), "none-stream");
        assertThat(ConfigurationSection.read(r)).isEqualTo(ConfigurationSection.of("none"));
        assertThat(r.position()).as("stops before the first section").isEqualTo(8);
    }

    @Test
    void vmdescEqualsQemu10Configuration() {
        byte[] s = QemuTestStreams.stream("10.0", "none-stream.bin.gz");
        JsonNode real = Vmdesc.parse(QemuTestStreams.vmdescJson(s)).get("configuration");
        Vmdesc vd = new Vmdesc(4096);
        VmStateTest.bytes(w -> ConfigurationSection.of("none").write(w, vd));
        assertThat((JsonNode) vd.toTree().get("configuration")).isEqualTo(real);
        // and for a longer name: the pc stream's "pc-i440fx-10.0"
        byte[] pc = QemuTestStreams.stream("10.0", "stream-zero-ram.bin.gz");
        JsonNode realPc = Vmdesc.parse(QemuTestStreams.vmdescJson(pc)).get("configuration");
        Vmdesc vd2 = new Vmdesc(4096);
        byte[] body = VmStateTest.bytes(w -> ConfigurationSection.of("pc-i440fx-10.0").write(w, vd2));
        assertThat((JsonNode) vd2.toTree().get("configuration")).isEqualTo(realPc);
        assertThat(body).isEqualTo(Arrays.copyOfRange(pc, 9, 9 + body.length));
    }

    @Test
    void eachSubsectionRoundTripsWithItsWireForm() {
        ConfigurationSection bits = ConfigurationSection.of("virt").withTargetPageBits(16);
        assertThat(HexFormat.of().formatHex(write(bits))).isEqualTo("00000004" + hex("virt")
                + "05" + "1e" + hex("configuration/target-page-bits") + "00000001" + "00000010");
        assertThat(read(write(bits))).isEqualTo(bits);

        ConfigurationSection caps = ConfigurationSection.of("none").withCapabilities(List.of("x-ignore-shared",
                "mapped-ram"));
        assertThat(HexFormat.of().formatHex(write(caps))).isEqualTo("00000004" + hex("none")
                + "05" + "1a" + hex("configuration/capabilities") + "00000001" + "00000002"
                + "0f" + hex("x-ignore-shared") + "0a" + hex("mapped-ram"));
        assertThat(read(write(caps))).isEqualTo(caps);

        ConfigurationSection uuid = ConfigurationSection.of("none").withUuid(U);
        assertThat(HexFormat.of().formatHex(write(uuid))).isEqualTo("00000004" + hex("none")
                + "05" + "12" + hex("configuration/uuid") + "00000001" + "123456789abcdef01122334455667788");
        assertThat(read(write(uuid))).isEqualTo(uuid);

        ConfigurationSection all = ConfigurationSection.of("pc-q35-10.0").withTargetPageBits(14)
                .withCapabilities(List.of("mapped-ram")).withUuid(U);
        assertThat(read(write(all))).isEqualTo(all);
    }

    @Test
    void vmdescOfSubsections() {
        Vmdesc vd = new Vmdesc(4096);
        VmStateTest.bytes(w -> ConfigurationSection.of("none").withCapabilities(List.of("mapped-ram")).withUuid(U)
                .write(w, vd));
        assertThat(Vmdesc.toQemuJson(vd.toTree().get("configuration"))).isEqualTo(
                "{\"vmsd_name\": \"configuration\", \"version\": 1, \"fields\": [{\"name\": \"len\", \"type\": "
                        + "\"uint32\", \"size\": 4}, {\"name\": \"name\", \"type\": \"buffer\", \"size\": 4}], "
                        + "\"subsections\": [{\"vmsd_name\": \"configuration/capabilities\", \"version\": 1, "
                        + "\"fields\": [{\"name\": \"caps_count\", \"type\": \"uint32\", \"size\": 4}, {\"name\": "
                        + "\"capabilities\", \"type\": \"capability\", \"size\": 11}]}, {\"vmsd_name\": "
                        + "\"configuration/uuid\", \"version\": 1, \"fields\": [{\"name\": \"uuid.data\", "
                        + "\"array_len\": 16, \"type\": \"uint8\", \"size\": 1}]}]}");
    }

    @Test
    void machineTypeMismatchIsAClearError() {
        ConfigurationSection local = ConfigurationSection.of("none");
        assertThatThrownBy(() -> local.checkReceived(ConfigurationSection.of("pc")))
                .isInstanceOf(MigrationException.class)
                .hasMessageContaining("Machine type received is 'pc' and local is 'none'")
                .extracting(e -> ((MigrationException) e).category()).isEqualTo(Category.MISMATCH);
        local.checkReceived(ConfigurationSection.of("none"));
    }

    @Test
    void pageBitsCapabilitiesAndUuidAreValidated() {
        ConfigurationSection local = ConfigurationSection.of("none");
        local.checkReceived(ConfigurationSection.of("none").withTargetPageBits(12));
        assertThatThrownBy(() -> local.checkReceived(ConfigurationSection.of("none").withTargetPageBits(16)))
                .hasMessageContaining("Received TARGET_PAGE_BITS is 16 but local is 12");
        assertThatThrownBy(() -> local.checkReceived(ConfigurationSection.of("none")
                .withCapabilities(List.of("x-ignore-shared"))))
                .hasMessageContaining("Capability x-ignore-shared is off, but received capability is on");
        ConfigurationSection withCaps = local.withCapabilities(List.of("mapped-ram"));
        assertThatThrownBy(() -> withCaps.checkReceived(ConfigurationSection.of("none")))
                .hasMessageContaining("Capability mapped-ram is on, but received capability is off");
        ConfigurationSection withUuid = local.withUuid(U);
        withUuid.checkReceived(ConfigurationSection.of("none"));
        withUuid.checkReceived(ConfigurationSection.of("none").withUuid(U));
        local.checkReceived(ConfigurationSection.of("none").withUuid(U));
        UUID other = new UUID(1, 2);
        assertThatThrownBy(() -> withUuid.checkReceived(ConfigurationSection.of("none").withUuid(other)))
                .hasMessageContaining("UUID received is " + other + " and local is " + U);
    }

    @Test
    void rejectsOverlongNameBeforeAllocating() {
        byte[] b = HexFormat.of().parseHex("7fffffff" + hex("none"));
        assertThatThrownBy(() -> read(b))
                .isInstanceOf(StreamException.class)
                .hasMessageContaining("at byte offset 4")
                .hasMessageContaining("field 'name' of vmsd 'configuration'")
                .hasMessageContaining("maximum of 4096");
    }

    @Test
    void rejectsTruncatedNameAndHugeCapabilityCount() {
        assertThatThrownBy(() -> read(HexFormat.of().parseHex("00000004" + hex("no"))))
                .hasMessageContaining("at byte offset 4").hasMessageContaining("field 'name'");
        byte[] caps = HexFormat.of().parseHex("00000004" + hex("none") + "05" + "1a" + hex("configuration/capabilities")
                + "00000001" + "00010000");
        assertThatThrownBy(() -> read(caps))
                .hasMessageContaining("element count 65536 of field 'capabilities'")
                .hasMessageContaining("maximum of 256");
    }

    @Test
    void rejectsUnknownConfigurationSubsection() {
        byte[] b = HexFormat.of().parseHex("00000004" + hex("none") + "05" + "11" + hex("configuration/zzz")
                + "00000001");
        assertThatThrownBy(() -> read(b))
                .hasMessageContaining("at byte offset 8")
                .hasMessageContaining("unknown subsection 'configuration/zzz' of vmsd 'configuration'");
    }
}
