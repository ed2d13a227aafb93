package io.jmigrate.bench;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code jmigrate bench downtime --runs 3 --vfs 1,2 --channels 6 --timeline} end to end, as a
 * process: the smoke size of the downtime benchmark. It checks that every file is written and
 * well-formed and that every switchover's digests matched, never a timing. It takes a few
 * minutes, so it runs in its own profile ({@code mvn -B verify -Pdowntime}, which .ci/run runs).
 */
@Tag("downtime")
class BenchDowntimeIT {
    @Test
    void smokeRunWritesMarkdownCsvPngAndTimelines() throws Exception {
        Path out = Path.of("target", "bench-downtime-it").toAbsolutePath();
        BenchCommandRunner.deleteTree(out);
        Path log = Files.createDirectories(Path.of("target")).resolve("bench-downtime-it.log");
        ProcessBuilder pb = new ProcessBuilder("bin/jmigrate", "bench", "downtime", "--runs", "3", "--vfs", "1,2",
                "--channels", "6", "--timeline", "--out", out.toString())
                .redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("JMIGRATE_NO_BUILD", "1");
        Process p = pb.start();
        if (!p.waitFor(30, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError("bench downtime did not finish within 30 min: " + tail(log));
        }
        assertThat(p.exitValue()).as(tail(log)).isZero();

        String md = Files.readString(out.resolve("downtime.md"));
        assertThat(md).contains("# jmigrate bench downtime", "| machine | ", "| parameters | ",
                "## Downtime by device count, 6 channels", "| | 2 VFs | 1 VF |", "| with/without | ",
                "| lower bound | ", "## Channels at 2 VFs, multifd device state on", "## Every cell")
                .doesNotContain("FAILED", "MISMATCH");
        List<String> csv = Files.readAllLines(out.resolve("downtime.csv")).stream().filter(l -> !l.startsWith("#"))
                .toList();
        // header plus 4 cells: 1 and 2 VFs, off and on, at 6 channels (the sweep's one cell is among them)
        assertThat(csv).hasSize(5);
        for (String row : csv.subList(1, csv.size())) {
            assertThat(row.split(",", -1)[3]).as(row).isEqualTo("3");
            assertThat(row).as(row).contains(",true,");
        }
        List<String> runs = Files.readAllLines(out.resolve("downtime-runs.csv")).stream()
                .filter(l -> !l.startsWith("#")).toList();
        assertThat(runs).hasSize(1 + 4 * 3);
        assertThat(ImageIO.read(out.resolve("downtime.png").toFile()).getWidth()).isPositive();
        try (Stream<Path> s = Files.list(out.resolve("timelines"))) {
            List<Path> pngs = s.filter(f -> f.toString().endsWith(".png")).sorted().toList();
            // one per switchover of the 4 cells, plus the last empty switchover's
            assertThat(pngs).hasSize(4 * 3 + 1);
            assertThat(pngs).filteredOn(f -> f.getFileName().toString().startsWith("timeline-empty-")).hasSize(1);
            assertThat(ImageIO.read(pngs.getLast().toFile()).getHeight()).isPositive();
        }
    }

    static String tail(Path log) throws java.io.IOException {
        List<String> l = Files.readAllLines(log);
        return String.join("\n", l.subList(Math.max(0, l.size() - 40), l.size()));
    }

    /** Small helpers shared with nothing else. */
    static final class BenchCommandRunner {
        static void deleteTree(Path p) throws java.io.IOException {
            if (!Files.exists(p)) {
                return;
            }
            try (Stream<Path> s = Files.walk(p)) {
                for (Path f : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.delete(f);
                }
            }
        }
    }
}
