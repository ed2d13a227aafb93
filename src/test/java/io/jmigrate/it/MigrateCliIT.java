package io.jmigrate.it;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** {@code jmigrate migrate}, {@code jmigrate info migrate} and {@code jmigrate qmp} as the README runs them. */
@Timeout(180)
class MigrateCliIT {
    @TempDir
    Path dir;

    @Test
    void migrateCommandShowsProgressAndSummaryThenInfoMigrate() throws Exception {
        String wl = "dirty-rate=30,pattern=increment";
        String sock = "unix:" + dir.resolve("mig.sock");
        try (VmProcess src = VmProcess.start(dir, "src", "-m", "64M", "--workload", wl, "--machine", "jm-9.2");
             VmProcess dst = VmProcess.start(dir, "dst", "-m", "64M", "--workload", wl, "--machine", "jm-9.2",
                     "--incoming", "defer")) {
            Path out = dir.resolve("migrate.out");
            int rc = VmProcess.run(out, "migrate", "--src", "unix:" + src.qmpPath, "--dst", "unix:" + dst.qmpPath,
                    "--uri", sock, "--set-parameter", "max-bandwidth=67108864", "--set-parameter", "downtime-limit=300",
                    "--capability", "return-path");
            String text = Files.readString(out);
            assertThat(rc).as(text).isZero();
            assertThat(text).contains("RAM sent", "Mbps", "expected downtime", "Migration completed: total time",
                    "downtime", "(equal)", "run state running");
            assertThat(src.exec("query-migrate-capabilities").toString()).contains(
                    "{\"capability\":\"return-path\",\"state\":true}");

            Path info = dir.resolve("info.out");
            assertThat(VmProcess.run(info, "info", "migrate", "unix:" + src.qmpPath)).isZero();
            assertThat(Files.readString(info)).contains("Migration status: completed", "total ram: 65536 kbytes",
                    "downtime:", "dirty sync count:", "max-bandwidth: 67108864");

            Path q = dir.resolve("qmp.out");
            assertThat(VmProcess.run(q, "qmp", "unix:" + dst.qmpPath, "query-status")).isZero();
            assertThat(Files.readString(q)).contains("\"running\"");
            assertThat(VmProcess.run(q, "qmp", "unix:" + dst.qmpPath, "migrate", "{\"uri\": 5}")).isEqualTo(1);
            assertThat(Files.readString(q)).contains("GenericError", "expected: string");
        }
    }

    @Test
    void jitWarmUpRunsInTheBackgroundAndTheVmMigratesAfterIt() throws Exception {
        try (VmProcess src = VmProcess.start(dir, "src", "-m", "64M", "--jit-warm-up", "on");
             VmProcess dst = VmProcess.start(dir, "dst", "-m", "64M", "--jit-warm-up", "on", "--incoming", "defer")) {
            for (VmProcess v : java.util.List.of(src, dst)) {
                String st;
                while ((st = v.exec("x-jmigrate-query-jit-warm-up").path("status").asText())
                        .equals("running")) {
                    Thread.sleep(50);
                }
                var info = v.exec("x-jmigrate-query-jit-warm-up");
                assertThat(st).as(info.toString()).isEqualTo("done");
                assertThat(info.path("rounds").asInt()).as(info.toString()).isBetween(8, 32);
                assertThat(info.has("hot-methods-compiled")).as(info.toString()).isTrue();
            }
            Path out = dir.resolve("migrate.out");
            int rc = VmProcess.run(out, "migrate", "--src", "unix:" + src.qmpPath, "--dst", "unix:" + dst.qmpPath,
                    "--uri", "unix:" + dir.resolve("mig.sock"), "--capability", "multifd");
            assertThat(rc).as(Files.readString(out)).isZero();
            assertThat(Files.readString(out)).contains("(equal)");
        }
        Path bad = dir.resolve("bad.out");
        assertThat(VmProcess.run(bad, "vm", "--qmp", "unix:" + dir.resolve("bad.qmp"), "--jit-warm-up", "maybe"))
                .isNotZero();
        assertThat(Files.readString(bad)).contains("--jit-warm-up must be on or off, not 'maybe'");
    }
}
