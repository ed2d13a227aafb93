package io.jmigrate.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code bin/jmigrate bench throughput} end to end as a process, at smoke size (64 MiB, one
 * run, precopy, multifd with 1 channel, and multifd with zstd). Checks that the report is well-formed, never
 * timings: with the host's QEMU installed its rows and the ratio must be there too.
 */
class BenchThroughputIT {
    record Run(int exit, String out, String err) {
    }

    static Run run(Path dir, String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add("bin/jmigrate");
        cmd.addAll(List.of(args));
        Path out = dir.resolve("out.txt");
        Path err = dir.resolve("err.txt");
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(Path.of("").toAbsolutePath().toFile())
                .redirectOutput(out.toFile()).redirectError(err.toFile());
        // run the jar this build made: the launcher must not start a nested build under the running tests
        pb.environment().put("JMIGRATE_NO_BUILD", "1");
        Process p = pb.start();
        if (!p.waitFor(240, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("bench did not finish within 240 s: " + Files.readString(err));
        }
        return new Run(p.exitValue(), Files.readString(out), Files.readString(err));
    }

    @Test
    void smokeRunWritesAWellFormedReport(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("bench.json");
        Path work = Path.of("/dev/shm", "jmigrate-bench-it-" + ProcessHandle.current().pid());
        Run r = run(dir, "bench", "throughput", "--ram", "64M", "--channels", "1", "--runs", "1",
                "--compression", "zstd", "--x-test-allow-fewer-runs", "--json", json.toString(), "--work-dir", work.toString());
        assertThat(r.exit()).as(r.out() + r.err()).isZero();
        assertThat(work).doesNotExist();
        assertThat(r.out()).contains("64 MiB of incompressible RAM", "below the minimum of 3",
                "total time ms: median [range]");

        JsonNode rep = new ObjectMapper().readTree(json.toFile());
        assertThat(rep.path("config").path("ram-bytes").asLong()).isEqualTo(64L << 20);
        assertThat(rep.path("config").path("runs").asInt()).isEqualTo(1);
        assertThat(rep.path("config").path("valid").asBoolean()).isFalse();
        boolean qemu = Engine.Qemu.host() != null;
        JsonNode results = rep.path("results");
        assertThat(results).hasSize(qemu ? 6 : 3);
        for (JsonNode row : results) {
            String status = row.path("status").asText();
            if (!row.path("engine").asText().equals("jmigrate") && status.equals("unsupported")
                    && row.path("compression").asText().equals("zstd")) {
                continue; // a QEMU built without zstd refuses multifd-compression zstd
            }
            if (row.path("engine").asText().equals("jmigrate") && row.path("mode").asText().equals("multifd")) {
                assertThat(status).as(row.toString()).isIn("ok", "unsupported");
                if (status.equals("unsupported")) {
                    assertThat(row.path("message").asText()).contains("multifd");
                    assertThat(row.path("runs")).isEmpty();
                    continue;
                }
            }
            assertThat(status).as(row.toString()).isEqualTo("ok");
            assertThat(row.path("runs")).hasSize(1);
            JsonNode one = row.path("runs").get(0);
            assertThat(one.path("total-time-ms").asLong()).isPositive();
            assertThat(one.path("transferred-bytes").asLong()).isGreaterThanOrEqualTo(64L << 20);
            assertThat(one.path("gbps").asDouble()).isPositive();
            assertThat(row.path("total-time-ms").path("median").asDouble())
                    .isEqualTo(one.path("total-time-ms").asDouble());
            if (row.path("mode").asText().equals("multifd")) {
                assertThat(one.path("multifd-bytes").asLong()).isGreaterThanOrEqualTo(64L << 20);
            }
        }
        if (qemu) {
            assertThat(results.get(1).path("engine").asText()).startsWith("qemu-");
            assertThat(rep.path("ratios")).isNotEmpty();
            assertThat(rep.path("ratios").get(0).path("ratio").asDouble()).isPositive();
            assertThat(r.out()).contains("jmigrate/QEMU speed ratio");
        }
    }

    @Test
    void fewerThanThreeRunsIsRefused(@TempDir Path dir) throws Exception {
        Run r = run(dir, "bench", "throughput", "--ram", "64M", "--runs", "2", "--no-qemu");
        assertThat(r.exit()).isNotZero();
        assertThat(r.err()).contains("--runs 2 is below the minimum of 3");
    }
}
