package io.jmigrate.machine;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.machine.GlobalStateVmsd.Layout;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.vmstate.ConfigurationSection;
import io.jmigrate.vmstate.QemuTestStreams;
import io.jmigrate.vmstate.VmState;
import io.jmigrate.vmstate.VmStateValues;
import io.jmigrate.vmstate.Vmdesc;
import io.jmigrate.vmstate.VmdescStyle;
import io.jmigrate.stream.QemuFileWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The {@code -M none} interop devices against QEMU 7.2 and 10.0's recorded none-stream: our
 * timer and globalstate bodies are byte-identical to QEMU's FULL section bodies, they load back
 * to the same values, and our vmdesc (configuration + timer + globalstate) is QEMU's.
 */
class NoneMachineVmsdTest {

    static byte[] bytes(Consumer<QemuFileWriter> body) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        QemuFileWriter w = new QemuFileWriter(out, "test");
        body.accept(w);
        w.flush();
        return out.toByteArray();
    }

    static Layout layout(String qemu) {
        return qemu.equals("7.2") ? Layout.QEMU_7_2 : Layout.QEMU_10_0;
    }

    @ParameterizedTest
    @ValueSource(strings = {"7.2", "10.0"})
    void timerBodyIsByteIdenticalAndLoadsBack(String qemu) {
        byte[] s = QemuTestStreams.stream(qemu, "none-stream.bin.gz");
        var sec = QemuTestStreams.fullSection(s, TimerVmsd.IDSTR, TimerVmsd.INSTANCE_ID, 2);
        // analyze-state: cpu_ticks_offset 0x0, unused 8 zero bytes, cpu_clock_offset 0x0
        VmStateValues ours = TimerVmsd.values(0, 0);
        assertThat(bytes(w -> VmState.save(w, TimerVmsd.VMSD, ours))).isEqualTo(sec.body(s));
        VmStateValues loaded = VmState.load(QemuFileReader.of(sec.body(s), "timer"), TimerVmsd.VMSD, 2);
        assertThat(loaded).isEqualTo(ours);
    }

    @ParameterizedTest
    @ValueSource(strings = {"7.2", "10.0"})
    void globalstateBodyIsByteIdenticalAndLoadsBack(String qemu) {
        byte[] s = QemuTestStreams.stream(qemu, "none-stream.bin.gz");
        var sec = QemuTestStreams.fullSection(s, GlobalStateVmsd.IDSTR, GlobalStateVmsd.INSTANCE_ID, 1);
        assertThat(sec.body(s)).hasSize(104);
        VmStateValues ours = GlobalStateVmsd.values(layout(qemu), "prelaunch");
        assertThat(bytes(w -> VmState.save(w, layout(qemu).vmsd(), ours))).isEqualTo(sec.body(s));
        VmStateValues loaded = VmState.load(QemuFileReader.of(sec.body(s), "globalstate"), layout(qemu).vmsd(), 1);
        assertThat(loaded).isEqualTo(ours);
        assertThat(loaded.getLong("size")).isEqualTo(10);
        assertThat(GlobalStateVmsd.runState(loaded)).isEqualTo("prelaunch");
        assertThat(GlobalStateVmsd.vmWasSuspended(loaded)).isFalse();
    }

    @ParameterizedTest
    @ValueSource(strings = {"7.2", "10.0"})
    void eitherLayoutReadsTheOthersBytes(String qemu) {
        byte[] s = QemuTestStreams.stream(qemu, "none-stream.bin.gz");
        byte[] body = QemuTestStreams.fullSection(s, "globalstate", 0, 1).body(s);
        Layout other = qemu.equals("7.2") ? Layout.QEMU_10_0 : Layout.QEMU_7_2;
        QemuFileReader r = QemuFileReader.of(body, "globalstate");
        VmStateValues v = VmState.load(r, other.vmsd(), 1);
        assertThat(r.atEof()).isTrue();
        assertThat(GlobalStateVmsd.runState(v)).isEqualTo("prelaunch");
    }

    @ParameterizedTest
    @ValueSource(strings = {"7.2", "10.0"})
    void vmdescIsQemusTextExactly(String qemu) {
        byte[] s = QemuTestStreams.stream(qemu, "none-stream.bin.gz");
        String realText = QemuTestStreams.vmdescJson(s);
        JsonNode real = Vmdesc.parse(realText);
        Vmdesc vd = new Vmdesc(4096, qemu.equals("7.2") ? VmdescStyle.QEMU_7_2 : VmdescStyle.QEMU_10_0);
        bytes(w -> {
            if (!qemu.equals("7.2")) {
                // QEMU 7.2 does not describe the configuration in its vmdesc
                ConfigurationSection.of("none").write(w, vd);
            }
            vd.saveDevice(w, TimerVmsd.IDSTR, TimerVmsd.INSTANCE_ID, TimerVmsd.VMSD, TimerVmsd.values(0, 0));
            vd.saveDevice(w, GlobalStateVmsd.IDSTR, GlobalStateVmsd.INSTANCE_ID, layout(qemu).vmsd(),
                    GlobalStateVmsd.values(layout(qemu), "prelaunch"));
        });
        assertThat((JsonNode) vd.toTree().get("devices").get(0))
                .isEqualTo(QemuTestStreams.device(real, "timer", 0));
        assertThat((JsonNode) vd.toTree().get("devices").get(1))
                .isEqualTo(QemuTestStreams.device(real, "globalstate", 0));
        assertThat((JsonNode) vd.toTree()).isEqualTo(real);
        assertThat(vd.toJson()).isEqualTo(realText);
    }

    @Test
    void runStateHelpers() {
        VmStateValues running = GlobalStateVmsd.values(Layout.QEMU_10_0, "running", true);
        assertThat(running.getLong("size")).isEqualTo(8);
        assertThat(GlobalStateVmsd.runState(running)).isEqualTo("running");
        assertThat(GlobalStateVmsd.vmWasSuspended(running)).isTrue();
        assertThat(GlobalStateVmsd.runState(GlobalStateVmsd.values(Layout.QEMU_7_2, "postmigrate")))
                .isEqualTo("postmigrate");
        assertThatThrownBy(() -> GlobalStateVmsd.values(Layout.QEMU_10_0, "jogging"))
                .hasMessageContaining("unknown run state 'jogging'");
    }

    @Test
    void rejectsBadRunStates() {
        VmStateValues bogus = GlobalStateVmsd.values(Layout.QEMU_10_0, "running");
        bogus.put("runstate", Arrays.copyOf("jogging".getBytes(), 32));
        assertThatThrownBy(() -> GlobalStateVmsd.runState(bogus))
                .isInstanceOf(MigrationException.class)
                .hasMessageContaining("globalstate: unknown run state 'jogging'");
        byte[] full = new byte[32];
        Arrays.fill(full, (byte) 'a');
        bogus.put("runstate", full);
        assertThatThrownBy(() -> GlobalStateVmsd.runState(bogus))
                .hasMessageContaining("not NUL-terminated within its 32 bytes");
    }

    @Test
    void timerVersion1HasNoClockOffsetAndVersion3IsRejected() {
        byte[] v1 = new byte[16];
        v1[7] = 5;
        VmStateValues v = VmState.load(QemuFileReader.of(v1, "timer"), TimerVmsd.VMSD, 1);
        assertThat(TimerVmsd.cpuTicksOffset(v)).isEqualTo(5);
        assertThat(TimerVmsd.cpuClockOffset(v)).isZero();
        assertThatThrownBy(() -> VmState.load(QemuFileReader.of(new byte[24], "timer"), TimerVmsd.VMSD, 3))
                .hasMessageContaining("vmsd 'timer': incoming version_id 3 is too new for local version_id 2");
    }
}
