package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 3's acceptance tests with real VM processes (separate JVMs from target/jmigrate.jar),
 * driven over QMP as a user would.
 */
@Timeout(300)
class LiveMigrationIT {
    @TempDir
    Path dir;

    /** Completed migration: digests equal; the destination's workload checker passes and it moves on. */
    private static void assertMigrated(VmProcess src, VmProcess dst) throws Exception {
        JsonNode info = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(90));
        assertThat(info.path("status").asText()).as(info.toString()).isEqualTo("completed");
        assertThat(info.path("downtime").asLong()).isGreaterThanOrEqualTo(0);
        assertThat(info.path("ram").path("dirty-sync-count").asLong()).isGreaterThanOrEqualTo(2);
        JsonNode dinfo = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(30));
        assertThat(dinfo.path("status").asText()).as(dinfo.toString()).isEqualTo("completed");
        assertThat(src.status()).isEqualTo("postmigrate");
        assertThat(dst.status()).isEqualTo("running");
        String out = src.exec("x-jmigrate-query-digest").path("outgoing").asText();
        String in = dst.exec("x-jmigrate-query-digest").path("incoming").asText();
        assertThat(out).hasSize(64).isEqualTo(in);
        JsonNode w1 = dst.exec("x-jmigrate-query-workload");
        assertThat(w1.path("resume-check-ok").asBoolean()).as(w1.toString()).isTrue();
        assertThat(w1.path("ok").asBoolean()).as(w1.toString()).isTrue();
        JsonNode w2 = dst.awaitPagesTouched(w1.path("pages-touched").asLong() + 1);
        assertThat(w2.path("ok").asBoolean()).as(w2.toString()).isTrue();
        assertThat(w2.path("pages-touched").asLong()).isGreaterThan(w1.path("pages-touched").asLong());
    }

    @Test
    void liveMigrationOverTcpThenUnixWithWorkload() throws Exception {
        String wl = "dirty-rate=50,pattern=increment";
        try (VmProcess a = VmProcess.start(dir, "a", "-m", "256M", "--workload", wl);
             VmProcess b = VmProcess.start(dir, "b", "-m", "256M", "--workload", wl, "--incoming",
                     "tcp:127.0.0.1:0")) {
            // port 0: the VM binds a free port and logs it (a port probed here could be taken meanwhile)
            String uri = b.awaitLog("waiting for an incoming migration on (\\S+)", Duration.ofSeconds(30));
            assertThat(uri).startsWith("tcp:127.0.0.1:").doesNotEndWith(":0");
            a.exec("migrate", Map.of("uri", uri));
            JsonNode pass = a.qmp.awaitEvent(e -> e.path("event").asText().equals("MIGRATION_PASS"),
                    Duration.ofSeconds(30));
            assertThat(pass).isNotNull();
            assertMigrated(a, b);
            // and on over unix, from the VM that just arrived
            String sock = "unix:" + dir.resolve("mig-c.sock");
            try (VmProcess c = VmProcess.start(dir, "c", "-m", "256M", "--workload", wl, "--incoming", "defer")) {
                c.exec("migrate-incoming", Map.of("uri", sock));
                b.exec("migrate", Map.of("uri", sock));
                assertMigrated(b, c);
            }
        }
    }

    @Test
    void nonConvergingThenCancelledThenConvergingWithRaisedDowntimeLimit() throws Exception {
        String wl = "dirty-rate=50,pattern=increment";
        try (VmProcess src = VmProcess.start(dir, "src", "-m", "64M", "--workload", wl);
             VmProcess d1 = VmProcess.start(dir, "d1", "-m", "64M", "--workload", wl, "--incoming", "defer")) {
            // every page written first: a guest whose vCPU was not yet scheduled leaves RAM zero and
            // the migration converges at once; so the first pass holds 64 MiB (4 s at 16 MiB/s)
            src.awaitPagesTouched(64 << 8);
            String sock1 = "unix:" + dir.resolve("m1.sock");
            d1.exec("migrate-incoming", Map.of("uri", sock1));
            src.exec("migrate-set-parameters", Map.of("max-bandwidth", 16 << 20, "downtime-limit", 20));
            src.exec("migrate", Map.of("uri", sock1));
            for (int i = 0; i < 3; i++) {
                assertThat(src.qmp.awaitEvent(e -> e.path("event").asText().equals("MIGRATION_PASS"),
                        Duration.ofSeconds(30))).as("MIGRATION_PASS #" + (i + 1)).isNotNull();
            }
            JsonNode info = src.exec("query-migrate");
            assertThat(info.path("status").asText()).isEqualTo("active");
            assertThat(info.path("expected-downtime").asLong()).isGreaterThan(20);
            src.exec("migrate_cancel");
            JsonNode done = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(30));
            assertThat(done.path("status").asText()).isEqualTo("cancelled");
            assertThat(src.status()).isEqualTo("running");
            assertThat(src.exec("x-jmigrate-query-workload").path("ok").asBoolean()).isTrue();

            try (VmProcess d2 = VmProcess.start(dir, "d2", "-m", "64M", "--workload", wl, "--incoming", "defer")) {
                String sock2 = "unix:" + dir.resolve("m2.sock");
                d2.exec("migrate-incoming", Map.of("uri", sock2));
                src.exec("migrate-set-parameters", Map.of("downtime-limit", 60_000));
                src.exec("migrate", Map.of("uri", sock2));
                assertMigrated(src, d2);
            }
        }
    }

    @Test
    void killedDestinationFailsTheSourceWhichKeepsRunningAndMigratesAgain() throws Exception {
        String wl = "dirty-rate=20,pattern=increment";
        try (VmProcess src = VmProcess.start(dir, "src", "-m", "64M", "--workload", wl);
             VmProcess d1 = VmProcess.start(dir, "d1", "-m", "64M", "--workload", wl, "--incoming",
                     "unix:" + dir.resolve("k1.sock"))) {
            // 8 MiB of written pages first: with RAM still zero (vCPU not yet scheduled) the first
            // pass is 8192 cheap zero pages and the migration completes before 4 MiB are sent
            src.awaitPagesTouched(8 << 8);
            src.exec("migrate-set-parameters", Map.of("max-bandwidth", 8 << 20));
            src.exec("migrate", Map.of("uri", "unix:" + dir.resolve("k1.sock")));
            src.awaitMigration(s -> s.equals("active"), Duration.ofSeconds(10));
            src.awaitTransferred(4 << 20); // killed in the middle of the stream (64 MiB at 8 MiB/s)
            d1.kill();
            JsonNode failed = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(30));
            assertThat(failed.path("status").asText()).isEqualTo("failed");
            // the cause this side sees: the destination hung up (not just "write failed")
            assertThat(failed.path("error-desc").asText()).startsWith("the destination closed the main channel (")
                    .contains("write failed");
            assertThat(src.status()).isEqualTo("running");
            assertThat(src.exec("x-jmigrate-query-workload").path("ok").asBoolean()).isTrue();

            try (VmProcess d2 = VmProcess.start(dir, "d2", "-m", "64M", "--workload", wl, "--incoming",
                    "unix:" + dir.resolve("k2.sock"))) {
                src.exec("migrate-set-parameters", Map.of("max-bandwidth", 1L << 30));
                src.exec("migrate-set-capabilities", Map.of("capabilities",
                        List.of(Map.of("capability", "return-path", "state", true))));
                src.exec("migrate", Map.of("uri", "unix:" + dir.resolve("k2.sock")));
                assertMigrated(src, d2);
            }
        }
    }

    @Test
    void fileSaveOfPausedVmIsReadByAnalyzeAndRestored() throws Exception {
        Path file = dir.resolve("saved.mig");
        String digest;
        try (VmProcess src = VmProcess.start(dir, "src", "-m", "64M", "--machine", "none", "--workload",
                "dirty-rate=100,pattern=increment")) {
            src.awaitPagesTouched(1);
            src.exec("stop");
            assertThat(src.status()).isEqualTo("paused");
            src.exec("migrate", Map.of("uri", "file:" + file));
            JsonNode info = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
            assertThat(info.path("status").asText()).as(info.toString()).isEqualTo("completed");
            assertThat(src.status()).isEqualTo("postmigrate");
            digest = src.exec("x-jmigrate-query-digest").path("outgoing").asText();
        }
        Path out = dir.resolve("analyze.out");
        int rc = VmProcess.run(out, "analyze", file.toString());
        String text = Files.readString(out);
        assertThat(rc).as(text).isZero();
        assertThat(text).contains("globalstate", "timer", "ram");
        try (VmProcess dst = VmProcess.start(dir, "dst", "-m", "64M", "--machine", "none", "--incoming",
                "file:" + file)) {
            JsonNode info = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
            assertThat(info.path("status").asText()).as(info.toString()).isEqualTo("completed");
            assertThat(dst.exec("x-jmigrate-query-digest").path("incoming").asText()).isEqualTo(digest);
            assertThat(dst.status()).isEqualTo("paused");
        }
    }
}
