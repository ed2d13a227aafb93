package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.it.QemuProcess.Flavor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A QEMU source whose guest does not match the jmigrate destination: jmigrate fails the load
 * with an error naming the section and the field, and the QEMU source is left intact (its
 * migration failed, the guest is still there with its RAM unchanged).
 */
@Tag("interop")
@Timeout(180)
class QemuMismatchIT {
    @TempDir
    Path dir;
    Path shmDir;
    final List<AutoCloseable> procs = new ArrayList<>();

    @BeforeEach
    void needQemu() throws Exception {
        Assumptions.assumeTrue(QemuProcess.hostBinary() != null, "qemu-system-x86_64 is not installed");
        shmDir = Files.createTempDirectory(Path.of("/dev/shm"), "jm-mismatch-");
    }

    @AfterEach
    void cleanUp() throws Exception {
        for (AutoCloseable c : procs.reversed()) {
            try {
                c.close();
            } catch (Exception ignored) {
                // best effort
            }
        }
        try (Stream<Path> files = Files.list(shmDir)) {
            for (Path p : files.toList()) {
                Files.deleteIfExists(p);
            }
        }
        Files.deleteIfExists(shmDir);
    }

    Path ram(int mib) throws Exception {
        Path p = shmDir.resolve("src.ram");
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(1), ((long) mib << 20) - 1);
            ch.write(ByteBuffer.wrap("jmigrate mismatch test".getBytes()), 4096);
        }
        return p;
    }

    /**
     * Migrates a QEMU 7.2 guest ({@code machine}, {@code srcMib}, {@code extra} QEMU arguments)
     * into {@code jmigrate vm --machine none -m dstMib}; returns the destination's error-desc.
     */
    String migrateExpectingFailure(String machine, int srcMib, int dstMib, String... extra) throws Exception {
        return migrateExpectingFailure(machine, srcMib, dstMib, 0, 0, extra);
    }

    /** As above, with multifd when {@code srcChannels > 0} (QEMU) / {@code dstChannels > 0} (jmigrate). */
    String migrateExpectingFailure(String machine, int srcMib, int dstMib, int srcChannels, int dstChannels,
                                   String... extra) throws Exception {
        Path srcRam = ram(srcMib);
        byte[] before = Files.readAllBytes(srcRam);
        int port = QemuInteropIT.freePort();
        VmProcess dst = VmProcess.start(dir, "jm-dst", "--machine", "none", "-m", dstMib + "M",
                "--incoming", "defer");
        procs.add(dst);
        // with a return path the source learns that the destination refused (as with QEMU on both ends)
        List<Map<String, Object>> capList = new ArrayList<>(List.of(Map.of("capability", "events", "state", true),
                Map.of("capability", "return-path", "state", true)));
        if (srcChannels > 0) {
            capList.add(Map.of("capability", "multifd", "state", true));
        }
        Map<String, Object> caps = Map.of("capabilities", capList);
        dst.exec("migrate-set-capabilities", caps);
        if (dstChannels > 0) {
            dst.exec("migrate-set-parameters", Map.of("multifd-channels", dstChannels, "x-multifd-timeout", 5000));
        }
        dst.exec("migrate-incoming", Map.of("uri", "tcp:127.0.0.1:" + port));
        QemuProcess src = QemuProcess.start(Flavor.HOST, shmDir, "qemu-src", machine, srcMib, srcRam, null, extra);
        procs.add(src);
        src.exec("migrate-set-capabilities", caps);
        if (srcChannels > 0) {
            src.exec("migrate-set-parameters", Map.of("multifd-channels", srcChannels));
        }
        src.exec("migrate", Map.of("uri", "tcp:127.0.0.1:" + port));

        JsonNode d = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
        assertThat(d.path("status").asText()).isEqualTo("failed");
        JsonNode s = src.awaitMigration(st -> st.equals("failed") || st.equals("completed"), Duration.ofSeconds(60));
        assertThat(s.path("status").asText()).as("QEMU source after the destination refused: %s", s)
                .isEqualTo("failed");
        // the source is intact: still answering, RAM unchanged, and it can go on (QEMU leaves a guest whose
        // failure was only reported at the very end, by the return path, in postmigrate; cont resumes it)
        assertThat(src.exec("query-status", null).path("status").asText()).isIn("prelaunch", "paused", "postmigrate");
        assertThat(Files.readAllBytes(srcRam)).isEqualTo(before);
        src.exec("cont", null);
        assertThat(src.exec("query-status", null).path("status").asText()).isEqualTo("running");
        // the destination never ran the half-loaded guest
        assertThat(dst.status()).isEqualTo("inmigrate");
        String err = d.path("error-desc").asText();
        System.out.println("jmigrate destination error (" + machine + "): " + err);
        return err;
    }

    @Test
    void wrongRamSize() throws Exception {
        String err = migrateExpectingFailure("none", 64, 32);
        assertThat(err).contains("ram").contains("67108864").contains("33554432");
    }

    @Test
    void unknownSectionFromAGuestWithMoreDevices() throws Exception {
        // -M none plus one vCPU: QEMU then also migrates the CPU's sections, which jmigrate's none lacks
        String err = migrateExpectingFailure("none", 64, 64, "-device", "qemu64-x86_64-cpu,apic-id=0");
        assertThat(err).containsIgnoringCase("unknown").containsAnyOf("cpu", "apic");
    }

    @Test
    void moreChannelsOnTheSource() throws Exception {
        String err = migrateExpectingFailure("none", 64, 64, 4, 2);
        assertThat(err).containsPattern("channel id [23] is out of range").contains("expects 2 channel");
    }

    @Test
    void fewerChannelsOnTheSource() throws Exception {
        String err = migrateExpectingFailure("none", 64, 64, 2, 4);
        assertThat(err).contains("channel").contains("multifd channel(s) 2, 3 did not connect within 5 s (expected 4 channel(s))");
    }

    @Test
    void otherMachineType() throws Exception {
        String err = migrateExpectingFailure("pc", 64, 64);
        assertThat(err).contains("configuration").contains("pc-i440fx").contains("none");
    }
}
