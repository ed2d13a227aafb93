package io.jmigrate.bench;

import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class DowntimeReportTest {
    static final double GIB = 1L << 30;

    @Test
    void percentilesInterpolateBetweenClosestRanks() {
        Percentiles p = Percentiles.of(List.of(40, 10, 30, 20, 50));
        assertThat(p).isEqualTo(new Percentiles(5, 20, 30, 10, 50));
        Percentiles q = Percentiles.of(List.of(1.0, 2.0, 3.0, 4.0));
        assertThat(q.p25()).isCloseTo(1.75, within(1e-12));
        assertThat(q.median()).isCloseTo(2.5, within(1e-12));
        assertThat(Percentiles.of(List.of(7)).p25()).isEqualTo(7.0);
    }

    @Test
    void lowerBoundTakesTheSlowestOfReadWriteAndLinkShare() {
        // 256 MiB device, read 1 GiB/s, write 0.5 GiB/s, link 4 GiB/s shared by 4 devices (1 GiB/s each)
        LowerBound b = new LowerBound(256L << 20, GIB, GIB / 2, 4 * GIB, 4, 20, 8L << 20);
        assertThat(b.limitedBy()).isEqualTo("write");
        assertThat(b.deviceMs()).isCloseTo(500, within(1e-9));
        assertThat(b.ramMs()).isCloseTo(8.0 / 4096 * 1000, within(1e-9));
        assertThat(b.totalMs()).isCloseTo(500 + 20 + 1.953125, within(1e-9));
        assertThat(b.explain()).isEqualTo("522.0 ms = 500.0 device (write) + 20.0 fixed + 2.0 RAM");
        // at 8 devices the link share (0.5 GiB/s) ties with write; with 16 the link limits
        assertThat(new LowerBound(256L << 20, GIB, GIB / 2, 4 * GIB, 16, 0, 0).limitedBy()).isEqualTo("link");
        assertThat(new LowerBound(0, GIB, GIB, GIB, 0, 12, 0).totalMs()).isEqualTo(12.0);
    }

    static DowntimeCell cell(int vfs, boolean on, int ch, long... downtimes) {
        List<DowntimeRun> runs = new ArrayList<>();
        for (int i = 0; i < downtimes.length; i++) {
            runs.add(new DowntimeRun(i + 1, i % 2 == 0 ? "a→b" : "b→a", downtimes[i], 5000 + downtimes[i], 1L << 20,
                    (long) vfs << 28, 2L << 30, true));
        }
        return new DowntimeCell(vfs, on, ch, runs, 256L << 20, GIB, GIB, 2 * GIB, 30, null);
    }

    static DowntimeReport sample() {
        Map<String, String> params = new LinkedHashMap<>();
        params.put("parameters", "1 GiB RAM, dirty-rate=64, VF state 256 MiB, read 1 GiB/s, write 1 GiB/s");
        params.put("link", "loopback");
        ReportHeader h = ReportHeader.of("jmigrate bench downtime", Map.of(), params);
        List<DowntimeCell> cells = List.of(
                cell(1, false, 6, 400, 420, 410), cell(1, true, 6, 300, 310, 320),
                cell(2, false, 6, 700, 720, 710), cell(2, true, 6, 390, 400, 410),
                cell(4, false, 6, 1400, 1500, 1450), cell(4, true, 6, 600, 640, 620),
                cell(4, true, 8, 610, 650, 630), cell(4, true, 15, 650, 660, 700),
                new DowntimeCell(4, true, 32, List.of(), 256L << 20, GIB, GIB, 2 * GIB, 30, "refused 32 channels"));
        return new DowntimeReport(h, cells, 6);
    }

    @Test
    void markdownHasQemusTableShapeTheSweepAndEveryCell() {
        DowntimeReport r = sample();
        String md = r.markdown();
        assertThat(md).contains("# jmigrate bench downtime", "| machine | ", "| link | loopback |",
                "## Downtime by device count, 6 channels", "| | 4 VFs | 2 VFs | 1 VF |",
                "| without | 1425 ms [1450; 1400-1500]", "| with | 610 ms [620; 600-640]",
                "## Channels at 4 VFs, multifd device state on", "| 15 | 655 ms |",
                "FAILED: refused 32 channels", "QEMU published (without, with) | 1900, 1095 ms (0.58)");
        // 4 VFs with/without = 610/1425 (25th percentiles of 3 values interpolate)
        assertThat(r.onOff(4)).hasValueSatisfying(v -> assertThat(v).isCloseTo(610.0 / 1425, within(1e-9)));
        assertThat(md).contains("| with/without | " + String.format("%.2f", 610.0 / 1425));
        // bound: 256 MiB at min(1 GiB/s, 2 GiB/s / 4) = 0.5 GiB/s → 500 ms, + 30 fixed + 1 MiB / 2 GiB/s
        assertThat(md).contains("530.5 ms = 500.0 device (link) + 30.0 fixed + 0.5 RAM");
        assertThat(r.anyFailed()).isTrue();
    }

    @Test
    void csvHasAHeaderCommentAndOneRowPerCellOrRun() {
        DowntimeReport r = sample();
        List<String> cells = r.csv().lines().filter(l -> !l.startsWith("#")).toList();
        assertThat(cells).hasSize(1 + 9);
        assertThat(cells.getFirst()).startsWith("vfs,multifd_device_state,channels,runs,downtime_p25_ms");
        assertThat(cells.get(6)).startsWith("4,on,6,3,610.0,620.0,600.0,640.0,");
        assertThat(cells.get(9)).isEqualTo("4,on,32,0,,,,,,,,,,,,,,\"refused 32 channels\"");
        assertThat(r.csv()).startsWith("# jmigrate bench downtime\n# date: ");
        List<String> runs = r.runsCsv().lines().filter(l -> !l.startsWith("#")).toList();
        assertThat(runs).hasSize(1 + 8 * 3);
        assertThat(runs.get(1)).startsWith("1,off,6,1,a→b,400,5400,1048576,");
    }

    @Test
    void writesAllFourFilesAndTheChartIsAPng() throws Exception {
        Path dir = TimelineChartTest.OUT.resolve("downtime-sample");
        List<Path> files = sample().write(dir);
        assertThat(files).extracting(p -> p.getFileName().toString())
                .containsExactly("downtime.md", "downtime.csv", "downtime-runs.csv", "downtime.png");
        for (Path f : files) {
            assertThat(Files.size(f)).isPositive();
        }
        BufferedImage img = ImageIO.read(dir.resolve("downtime.png").toFile());
        assertThat(img.getWidth()).isEqualTo(800 + 640);
    }
}
