package io.jmigrate.bench;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

class ThroughputReportTest {
    static final long GIB = 1L << 30;

    static ThroughputConfig config(int runs) {
        return new ThroughputConfig(GIB, List.of(2), true, runs, 3, 1, 1_000_000_000L, Path.of("/tmp/x"),
                Duration.ofSeconds(60));
    }

    static ThroughputBench.Row row(Engine e, int ch, long... millis) {
        ThroughputBench.Row r = new ThroughputBench.Row(e, ch);
        for (long m : millis) {
            r.runs.add(new RunResult(m, 1, 1, GIB, 0));
        }
        return r;
    }

    @Test
    void medianAndRangeAreExactOrderStatistics() {
        assertThat(Stats.of(List.of(5.0, 1.0, 3.0))).isEqualTo(new Stats(3, 3.0, 1.0, 5.0));
        assertThat(Stats.of(List.of(4.0, 1.0, 3.0, 10.0))).isEqualTo(new Stats(4, 3.5, 1.0, 10.0));
    }

    @Test
    void configRefusesFewerThanThreeRunsAndBadSizes() {
        assertThatThrownBy(() -> config(2)).isInstanceOf(MigrationException.class)
                .hasMessageContaining("--runs 2 is below the minimum of 3");
        assertThatThrownBy(() -> new ThroughputConfig(GIB + 4096, List.of(1), true, 3, 3, 1, 1, Path.of("/tmp"),
                Duration.ofSeconds(1))).hasMessageContaining("multiple of 1 MiB");
        assertThatThrownBy(() -> new ThroughputConfig(GIB, List.of(0), true, 3, 3, 1, 1, Path.of("/tmp"),
                Duration.ofSeconds(1))).hasMessageContaining("channel count 0 is outside 1..255");
        assertThat(config(3).modes()).containsExactly(ThroughputConfig.Mode.precopy(),
                new ThroughputConfig.Mode(2, "none"));
        ThroughputConfig withComp = new ThroughputConfig(GIB, List.of(2, 4), false, 3, 3, 1, 1, Path.of("/tmp"),
                Duration.ofSeconds(1), List.of("zlib", "zstd"), 4);
        assertThat(withComp.modes()).extracting(ThroughputConfig.Mode::label)
                .containsExactly("multifd", "multifd", "zlib", "zstd");
        assertThat(withComp.modes().get(3)).isEqualTo(new ThroughputConfig.Mode(4, "zstd"));
        assertThatThrownBy(() -> new ThroughputConfig(GIB, List.of(2), false, 3, 3, 1, 1, Path.of("/tmp"),
                Duration.ofSeconds(1), List.of("lz4"), 2)).hasMessageContaining("compression 'lz4'");
    }

    @Test
    void ratiosCompareMediansPerModeAndKeepUnsupportedRowsOut() {
        Engine j = new Engine.Jmigrate(List.of("java"));
        Engine q = new Engine.Qemu("qemu", List.of("qemu-system-x86_64"));
        ThroughputBench.Row jPre = row(j, 0, 1000, 2000, 1500);
        ThroughputBench.Row qPre = row(q, 0, 500, 600, 700);
        qPre.label = "qemu-7.2.22";
        ThroughputBench.Row jMfd = row(j, 2);
        jMfd.unsupported = "jmigrate refused capability multifd";
        ThroughputBench.Row qMfd = row(q, 2, 250, 260, 270);
        qMfd.label = "qemu-7.2.22";
        ThroughputReport rep = new ThroughputReport(config(3), List.of(jPre, qPre, jMfd, qMfd));

        List<ThroughputReport.Ratio> ratios = rep.ratios();
        assertThat(ratios).hasSize(1);
        ThroughputReport.Ratio r = ratios.getFirst();
        assertThat(r.channels()).isZero();
        assertThat(r.qemu()).isEqualTo("qemu-7.2.22");
        assertThat(r.ratio()).isCloseTo(600.0 / 1500.0, within(1e-9));   // GB/s ratio = inverse time ratio
        assertThat(r.low()).isCloseTo(500.0 / 2000.0, within(1e-9));
        assertThat(r.high()).isCloseTo(700.0 / 1000.0, within(1e-9));
        assertThat(rep.anyFailed()).isFalse();

        String table = rep.table();
        assertThat(table).contains("1024 MiB", "1500 [1000-2000]", "0.716 [0.537-1.074]",
                "not supported: jmigrate refused capability multifd", "precopy    -  jmigrate       qemu-7.2.22    0.40 [0.25-0.70]");

        JsonNode json = rep.toJson();
        assertThat(json.path("config").path("valid").asBoolean()).isTrue();
        assertThat(json.path("results")).hasSize(4);
        assertThat(json.path("results").get(0).path("total-time-ms").path("median").asDouble()).isEqualTo(1500.0);
        assertThat(json.path("results").get(2).path("status").asText()).isEqualTo("unsupported");
        assertThat(json.path("ratios").get(0).path("ratio").asDouble()).isEqualTo(0.4);
    }

    @Test
    void compressedRowsAreTheirOwnModeInTableJsonAndRatios() {
        Engine j = new Engine.Jmigrate(List.of("java"));
        Engine q = new Engine.Qemu("qemu", List.of("qemu-system-x86_64"));
        ThroughputConfig cfg = new ThroughputConfig(GIB, List.of(4), false, 3, 3, 1, 1, Path.of("/tmp"),
                Duration.ofSeconds(1), List.of("zstd"), 4);
        ThroughputBench.Row jm = row(j, 4, 1000, 1000, 1000);
        ThroughputBench.Row jz = new ThroughputBench.Row(j, new ThroughputConfig.Mode(4, "zstd"));
        ThroughputBench.Row qz = new ThroughputBench.Row(q, new ThroughputConfig.Mode(4, "zstd"));
        for (long m : new long[] {2000, 2000, 2000}) {
            jz.runs.add(new RunResult(m, 1, 1, GIB, GIB));
            qz.runs.add(new RunResult(m * 2, 1, 1, GIB, GIB));
        }
        ThroughputReport rep = new ThroughputReport(cfg, List.of(jm, jz, qz));
        assertThat(rep.ratios()).singleElement().satisfies(r -> {
            assertThat(r.mode()).isEqualTo(new ThroughputConfig.Mode(4, "zstd"));
            assertThat(r.ratio()).isCloseTo(2.0, within(1e-9));
        });
        assertThat(rep.table()).contains("jmigrate       zstd       4  2000 [2000-2000]",
                "zstd       4  jmigrate       qemu           2.00");
        JsonNode json = rep.toJson();
        assertThat(json.path("results").get(1).path("compression").asText()).isEqualTo("zstd");
        assertThat(json.path("results").get(1).path("mode").asText()).isEqualTo("multifd");
        assertThat(json.path("results").get(0).path("compression").asText()).isEqualTo("none");
        assertThat(json.path("config").path("compression-channels").asInt()).isEqualTo(4);
    }

    @Test
    void failedRowMakesTheReportFail() {
        Engine j = new Engine.Jmigrate(List.of("java"));
        ThroughputBench.Row r = row(j, 0, 1000);
        r.failure = "jmigrate migration failed: boom";
        ThroughputReport rep = new ThroughputReport(config(3), List.of(r));
        assertThat(rep.anyFailed()).isTrue();
        assertThat(rep.table()).contains("FAILED after 1 run(s): jmigrate migration failed: boom");
        assertThat(rep.toJson().path("results").get(0).path("status").asText()).isEqualTo("failed");
    }
}
