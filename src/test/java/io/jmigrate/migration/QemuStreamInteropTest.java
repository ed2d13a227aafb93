package io.jmigrate.migration;

import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.RunState;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.zip.GZIPInputStream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A jmigrate destination of machine type {@code none} loads the streams real QEMU 7.2 and 10.0
 * sources wrote for a {@code -M none -nodefaults -m 64M} guest, and ends with exactly the
 * guest's RAM image and QEMU's run state.
 */
@Timeout(60)
class QemuStreamInteropTest {
    /** sha256 of the 64 MiB pattern image the QEMU guests ran with (testdata README). */
    private static final String PATTERN_SHA256 = "49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf";

    @TempDir
    Path dir;

    private static Path testdata() {
        String p = System.getProperty("jmigrate.testdata");
        assertThat(p).as("system property jmigrate.testdata").isNotNull();
        return Path.of(p);
    }

    private Path gunzip(Path gz) throws Exception {
        Path out = dir.resolve(gz.getFileName().toString().replace(".gz", ""));
        try (InputStream in = new GZIPInputStream(Files.newInputStream(gz))) {
            Files.copy(in, out);
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(strings = {"qemu-7.2", "qemu-10.0"})
    void loadsQemuNoneMachineStream(String version) throws Exception {
        Path stream = gunzip(testdata().resolve(version).resolve("none-stream.bin.gz"));
        try (Vm vm = new Vm(new VmConfig("dst", null, 64 << 20, null, false, MachineType.NONE, false, null), true)) {
            MigrationManager mm = new MigrationManager(vm, (e, d) -> { });
            IncomingMigration in = mm.startIncoming("file:" + stream, false);
            assertThat(in.join(30_000)).isTrue();
            assertThat(in.state().get()).as(String.valueOf(in.error())).isEqualTo(MigrationStatus.COMPLETED);
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(vm.ramBlocks().getFirst().segment().asByteBuffer());
            assertThat(HexFormat.of().formatHex(md.digest())).isEqualTo(PATTERN_SHA256);
            assertThat(vm.runState()).isEqualTo(RunState.PRELAUNCH); // as the QEMU source was (-S)
            assertThat(in.vmdesc()).contains("\"globalstate\"");
        }
    }

    @Test
    void qemuStreamIsRejectedByAnotherMachineTypeWithQemusMessage() throws Exception {
        Path stream = gunzip(testdata().resolve("qemu-10.0").resolve("none-stream.bin.gz"));
        try (Vm vm = new Vm(new VmConfig("dst", null, 64 << 20, null, false, MachineType.DEFAULT, false, null), true)) {
            IncomingMigration in = new MigrationManager(vm, (e, d) -> { }).startIncoming("file:" + stream, false);
            assertThat(in.join(30_000)).isTrue();
            assertThat(in.state().get()).isEqualTo(MigrationStatus.FAILED);
            assertThat(in.error().getMessage()).contains("byte offset 9")
                    .contains("Machine type received is 'none' and local is 'jm-10.1'");
        }
    }

    @Test
    void sizeMismatchNamesBothSizes() throws Exception {
        Path stream = gunzip(testdata().resolve("qemu-10.0").resolve("none-stream.bin.gz"));
        try (Vm vm = new Vm(new VmConfig("dst", null, 32 << 20, null, false, MachineType.NONE, false, null), true)) {
            IncomingMigration in = new MigrationManager(vm, (e, d) -> { }).startIncoming("file:" + stream, false);
            assertThat(in.join(30_000)).isTrue();
            assertThat(in.state().get()).isEqualTo(MigrationStatus.FAILED);
            assertThat(in.error().getMessage()).contains("'ram' has 67108864 bytes but this VM's has 33554432");
        }
    }
}
