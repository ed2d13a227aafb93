package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.it.QemuProcess.Flavor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Real QEMU and jmigrate as each other's migration peer, for a {@code -M none -nodefaults}
 * guest (PROTOCOL.md Appendix A): QEMU → jmigrate and jmigrate → QEMU, without multifd and
 * with 2 and 4 channels, against Debian's QEMU (7.2) and, with JMIGRATE_QEMU10, QEMU 10.
 * The guest's RAM is a file of known bytes; after the migration the other side's RAM must be
 * byte-identical. Runs in the {@code interop} profile: {@code mvn -B verify -Pinterop}.
 */
@Tag("interop")
@Timeout(180)
class QemuInteropIT {
    static final int MIB = 64;

    @TempDir
    Path dir;
    /** QEMU's sockets and logs: under /dev/shm, which a QEMU 10 chroot sees too (its /tmp is its own). */
    Path shmDir;
    final List<Path> shm = new ArrayList<>();
    final List<AutoCloseable> procs = new ArrayList<>();

    static Stream<Arguments> matrix() {
        List<Arguments> out = new ArrayList<>();
        for (Flavor f : Flavor.available()) {
            for (int ch : new int[] {0, 2, 4}) {
                // the 2-channel case migrates a running guest, the others a paused one
                out.add(Arguments.of(f, ch, ch == 2));
            }
        }
        return out.stream();
    }

    @BeforeEach
    void needQemu() throws IOException {
        Assumptions.assumeTrue(!Flavor.available().isEmpty(), "qemu-system-x86_64 is not installed");
        shmDir = Files.createTempDirectory(Path.of("/dev/shm"), "jm-interop-");
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
        for (Path p : shm) {
            Files.deleteIfExists(p);
        }
        if (shmDir != null) {
            try (Stream<Path> files = Files.list(shmDir)) {
                for (Path p : files.toList()) {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(shmDir);
        }
    }

    /** A RAM image in /dev/shm: random pages, a counting pattern, and zero pages. */
    Path ramImage(boolean filled) throws IOException {
        Path p = Path.of("/dev/shm", "jm-interop-" + UUID.randomUUID() + ".ram");
        shm.add(p);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ch.truncate((long) MIB << 20);
            if (filled) {
                Random rnd = new Random(20261126);
                byte[] page = new byte[4096];
                for (long off = 0; off < (long) MIB << 20; off += 4096) {
                    long pageNo = off / 4096;
                    if (pageNo % 3 == 2) {
                        continue; // zero page
                    }
                    if (pageNo % 3 == 0) {
                        rnd.nextBytes(page);
                    } else {
                        ByteBuffer.wrap(page).asLongBuffer().put(0, off ^ 0xA5A5A5A5A5A5A5A5L);
                    }
                    ch.write(ByteBuffer.wrap(page), off);
                }
            }
            ch.write(ByteBuffer.allocate(0));
        }
        return p;
    }

    static String sha256(Path p) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (FileChannel ch = FileChannel.open(p)) {
            ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
            while (ch.read(buf.clear()) > 0) {
                md.update(buf.flip());
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** jmigrate's RAM digest of a one-block guest: SHA-256 over idstr, be64 length, then the bytes (RamDigest). */
    static String jmigrateDigest(Path ramFile) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        md.update("ram".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        md.update(ByteBuffer.allocate(8).putLong(0, Files.size(ramFile)));
        try (FileChannel ch = FileChannel.open(ramFile)) {
            ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
            while (ch.read(buf.clear()) > 0) {
                md.update(buf.flip());
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    static Map<String, Object> caps(boolean multifd) {
        List<Map<String, Object>> l = new ArrayList<>();
        l.add(Map.of("capability", "events", "state", true));
        if (multifd) {
            l.add(Map.of("capability", "multifd", "state", true));
        }
        return Map.of("capabilities", l);
    }

    /** The compat settings a jmigrate VM needs to talk to this QEMU. */
    static List<String> jmigrateGlobals(Flavor flavor) {
        if (flavor.legacy()) {
            return List.of("--global", "migration.send-switchover-start=off",
                    "--global", "migration.multifd-flush-after-each-section=on");
        }
        return List.of();
    }

    VmProcess jmigrate(String name, String... args) throws Exception {
        VmProcess vm = VmProcess.start(dir, name, args);
        procs.add(vm);
        return vm;
    }

    QemuProcess qemu(Flavor flavor, String name, String machine, Path ram, String incoming, String... extra)
            throws Exception {
        QemuProcess q = QemuProcess.start(flavor, shmDir, name, machine, MIB, ram, incoming, extra);
        procs.add(q);
        return q;
    }

    @ParameterizedTest(name = "{0} -> jmigrate, multifd channels {1}, running {2}")
    @MethodSource("matrix")
    void qemuToJmigrate(Flavor flavor, int channels, boolean running) throws Exception {
        Path srcRam = ramImage(true);
        int port = freePort();
        List<String> args = new ArrayList<>(List.of("--machine", "none", "-m", MIB + "M", "--incoming", "defer"));
        args.addAll(jmigrateGlobals(flavor));
        VmProcess dst = jmigrate("jm-dst", args.toArray(String[]::new));
        dst.exec("migrate-set-capabilities", caps(channels > 0));
        if (channels > 0) {
            dst.exec("migrate-set-parameters", Map.of("multifd-channels", channels));
        }
        dst.exec("migrate-incoming", Map.of("uri", "tcp:127.0.0.1:" + port));

        QemuProcess src = qemu(flavor, "qemu-src", "none", srcRam, null);
        src.exec("migrate-set-capabilities", caps(channels > 0));
        Map<String, Object> params = new java.util.HashMap<>(Map.of("max-bandwidth", 10_000_000_000L));
        if (channels > 0) {
            params.put("multifd-channels", channels);
        }
        src.exec("migrate-set-parameters", params);
        if (running) {
            src.exec("cont", null);
        }
        src.exec("migrate", Map.of("uri", "tcp:127.0.0.1:" + port));

        JsonNode s = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(120));
        JsonNode d = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
        assertThat(s.path("status").asText()).as("QEMU source: %s", s).isEqualTo("completed");
        assertThat(d.path("status").asText()).as("jmigrate destination: %s\n%s", d, Files.readString(dst.log))
                .isEqualTo("completed");
        assertThat(dst.exec("x-jmigrate-query-digest").path("incoming").asText()).isEqualTo(jmigrateDigest(srcRam));
        // the destination follows the source's run state (globalstate)
        assertThat(dst.status()).isEqualTo(running ? "running" : "prelaunch");
        if (channels > 0) {
            assertThat(s.path("ram").path("multifd-bytes").asLong()).isPositive();
        }
    }

    @ParameterizedTest(name = "jmigrate -> {0}, multifd channels {1}, running {2}")
    @MethodSource("matrix")
    void jmigrateToQemu(Flavor flavor, int channels, boolean running) throws Exception {
        Path srcRam = ramImage(true);
        Path dstRam = ramImage(false);
        int port = freePort();

        QemuProcess dst = qemu(flavor, "qemu-dst", "none", dstRam, "defer");
        dst.exec("migrate-set-capabilities", caps(channels > 0));
        if (channels > 0) {
            dst.exec("migrate-set-parameters", Map.of("multifd-channels", channels));
        }
        dst.exec("migrate-incoming", Map.of("uri", "tcp:127.0.0.1:" + port));

        List<String> args = new ArrayList<>(List.of("--machine", "none", "-m", MIB + "M",
                "--memory-backend", "file=" + srcRam + ",share=on"));
        if (!running) {
            args.add("-S");
        }
        args.addAll(jmigrateGlobals(flavor));
        VmProcess src = jmigrate("jm-src", args.toArray(String[]::new));
        src.exec("migrate-set-capabilities", caps(channels > 0));
        Map<String, Object> params = new java.util.HashMap<>(Map.of("max-bandwidth", 10_000_000_000L));
        if (channels > 0) {
            params.put("multifd-channels", channels);
            if (flavor.legacy()) {
                // QEMU 7.2's packets have no zero_pages field: zero pages go on the main channel, as 7.2 sends them
                params.put("zero-page-detection", "legacy");
            }
        }
        src.exec("migrate-set-parameters", params);
        src.exec("migrate", Map.of("uri", "tcp:127.0.0.1:" + port));

        JsonNode s = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(120));
        JsonNode d = dst.awaitMigration(st -> st.equals("completed") || st.equals("failed"), Duration.ofSeconds(60));
        assertThat(s.path("status").asText()).as("jmigrate source: %s\n%s", s, Files.readString(src.log))
                .isEqualTo("completed");
        assertThat(d.path("status").asText()).as("QEMU destination: %s\n%s", d, dst.logText()).isEqualTo("completed");
        assertThat(dst.exec("query-status", null).path("status").asText()).isEqualTo(running ? "running" : "prelaunch");
        assertThat(sha256(dstRam)).isEqualTo(sha256(srcRam));
    }
}
