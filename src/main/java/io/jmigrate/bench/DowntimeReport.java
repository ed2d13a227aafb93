package io.jmigrate.bench;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.style.Styler;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;

/**
 * The downtime benchmark's results in the three forms it writes: a Markdown report (header,
 * QEMU's table shape with our figures, the channel sweep, every cell against its lower bound),
 * CSV (one row per cell, and one per run), and a PNG chart (25th-percentile downtime per cell
 * next to its lower bound).
 *
 * <p>The two tables follow the experiment QEMU published for multifd device state: VFs 1, 2 and
 * 4, each without and with it, at 6 channels; and 6, 8 and 15 channels at 4 VFs with it. Cells
 * that were not run are left out.
 */
public final class DowntimeReport {
    static {
        Headless.ensure();
    }

    /** QEMU's published 25th percentiles (ms), for reference in the Markdown: VFs → [without, with]. */
    static final Map<Integer, long[]> QEMU_PUBLISHED = Map.of(1, new long[] {487, 366}, 2, new long[] {859, 556},
            4, new long[] {1900, 1095});

    private final ReportHeader header;
    private final List<DowntimeCell> cells;
    private final int tableChannels;

    /**
     * @param tableChannels the channel count of the VF table (6 as QEMU's)
     */
    public DowntimeReport(ReportHeader header, List<DowntimeCell> cells, int tableChannels) {
        this.header = header;
        this.cells = List.copyOf(cells);
        this.tableChannels = tableChannels;
    }

    public List<DowntimeCell> cells() {
        return cells;
    }

    public ReportHeader header() {
        return header;
    }

    public boolean anyFailed() {
        return cells.stream().anyMatch(c -> c.failure() != null || (c.hasRuns() && !c.allDigestsMatch()));
    }

    Optional<DowntimeCell> cell(int vfs, boolean on, int channels) {
        return cells.stream().filter(c -> c.vfs() == vfs && c.multifdDeviceState() == on && c.channels() == channels
                && c.hasRuns()).findFirst();
    }

    /** VF counts of the VF table, largest first (as QEMU's table). */
    List<Integer> tableVfs() {
        TreeSet<Integer> v = new TreeSet<>();
        cells.stream().filter(c -> c.channels() == tableChannels).forEach(c -> v.add(c.vfs()));
        return new ArrayList<>(v.descendingSet());
    }

    /** The largest VF count, whose channel sweep the second table shows. */
    int sweepVfs() {
        return cells.stream().mapToInt(DowntimeCell::vfs).max().orElse(0);
    }

    List<DowntimeCell> sweep() {
        int v = sweepVfs();
        return cells.stream().filter(c -> c.vfs() == v && c.multifdDeviceState() && c.hasRuns())
                .sorted(java.util.Comparator.comparingInt(DowntimeCell::channels)).toList();
    }

    /** on/off of the 25th percentiles at {@code vfs} VFs, if both cells ran. */
    public Optional<Double> onOff(int vfs) {
        Optional<DowntimeCell> off = cell(vfs, false, tableChannels);
        Optional<DowntimeCell> on = cell(vfs, true, tableChannels);
        if (off.isEmpty() || on.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(on.get().downtime().p25() / off.get().downtime().p25());
    }

    private static String ms(double v) {
        return String.format(Locale.ROOT, "%.0f", v);
    }

    private static String ratio(double v) {
        return String.format(Locale.ROOT, "%.2f", v);
    }

    private static String vfLabel(int v) {
        return v + (v == 1 ? " VF" : " VFs");
    }

    /** The whole report as Markdown. */
    public String markdown() {
        StringBuilder sb = new StringBuilder();
        sb.append("# ").append(header.title()).append("\n\n");
        sb.append(header.markdown()).append('\n');
        List<Integer> vfs = tableVfs();
        if (!vfs.isEmpty()) {
            sb.append("## Downtime by device count, ").append(tableChannels).append(" channels\n\n");
            sb.append("25th percentile of downtime in ms, [median; min-max] below it; lower bound and ratios as "
                    + "explained in the README (Benchmarks, downtime).\n\n");
            sb.append("|");
            for (int v : vfs) {
                sb.append(" | ").append(vfLabel(v));
            }
            sb.append(" |\n|---");
            vfs.forEach(v -> sb.append("|---"));
            sb.append("|\n");
            for (boolean on : new boolean[] {false, true}) {
                sb.append(on ? "| with" : "| without");
                for (int v : vfs) {
                    sb.append(" | ").append(cell(v, on, tableChannels).map(c -> {
                        Percentiles d = c.downtime();
                        return ms(d.p25()) + " ms [" + ms(d.median()) + "; " + ms(d.min()) + "-" + ms(d.max()) + "]";
                    }).orElse("-"));
                }
                sb.append(" |\n");
            }
            sb.append("| with/without");
            for (int v : vfs) {
                sb.append(" | ").append(onOff(v).map(DowntimeReport::ratio).orElse("-"));
            }
            sb.append(" |\n| lower bound");
            for (int v : vfs) {
                Optional<DowntimeCell> any = cell(v, true, tableChannels).or(() -> cell(v, false, tableChannels));
                sb.append(" | ").append(any.map(c -> ms(c.bounds().median()) + " ms").orElse("-"));
            }
            sb.append(" |\n");
            for (boolean on : new boolean[] {false, true}) {
                sb.append(on ? "| with / bound" : "| without / bound");
                for (int v : vfs) {
                    sb.append(" | ").append(cell(v, on, tableChannels).map(c -> ratio(c.overBound())).orElse("-"));
                }
                sb.append(" |\n");
            }
            sb.append("| QEMU published (without, with)");
            for (int v : vfs) {
                long[] q = QEMU_PUBLISHED.get(v);
                sb.append(" | ").append(q == null ? "-" : q[0] + ", " + q[1] + " ms (" + ratio(q[1] / (double) q[0])
                        + ")");
            }
            sb.append(" |\n\n");
        }
        List<DowntimeCell> sweep = sweep();
        if (!sweep.isEmpty()) {
            sb.append("## Channels at ").append(vfLabel(sweepVfs())).append(", multifd device state on\n\n");
            sb.append("| channels | downtime p25 | median | min-max | total time median | lower bound | p25 / bound |\n");
            sb.append("|---|---|---|---|---|---|---|\n");
            for (DowntimeCell c : sweep) {
                Percentiles d = c.downtime();
                sb.append("| ").append(c.channels()).append(" | ").append(ms(d.p25())).append(" ms | ")
                        .append(ms(d.median())).append(" ms | ").append(ms(d.min())).append('-').append(ms(d.max()))
                        .append(" ms | ").append(ms(c.totalTime().median())).append(" ms | ")
                        .append(ms(c.bounds().median())).append(" ms | ").append(ratio(c.overBound())).append(" |\n");
            }
            sb.append('\n');
        }
        sb.append("## Every cell\n\n");
        sb.append("| VFs | multifd device state | channels | runs | downtime p25 | median | min | max | total time "
                + "median | GB/s median | lower bound (typical run) | p25 / bound | digests |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (DowntimeCell c : cells) {
            sb.append("| ").append(c.vfs()).append(" | ").append(c.multifdDeviceState() ? "on" : "off").append(" | ")
                    .append(c.channels()).append(" | ").append(c.runs().size()).append(" | ");
            if (!c.hasRuns()) {
                sb.append("- | - | - | - | - | - | - | - | ").append(c.failure() == null ? "not run" : "FAILED: "
                        + c.failure().replace("|", "\\|").replace("\n", " ")).append(" |\n");
                continue;
            }
            Percentiles d = c.downtime();
            sb.append(ms(d.p25())).append(" | ").append(ms(d.median())).append(" | ").append(ms(d.min()))
                    .append(" | ").append(ms(d.max())).append(" | ").append(ms(c.totalTime().median())).append(" | ")
                    .append(String.format(Locale.ROOT, "%.3f", c.gbps().median())).append(" | ")
                    .append(c.typicalBound().explain()).append(" | ").append(ratio(c.overBound())).append(" | ")
                    .append(c.allDigestsMatch() ? "all match" : "MISMATCH")
                    .append(c.failure() != null ? "; FAILED after " + c.runs().size() + " runs: "
                            + c.failure().replace("|", "\\|").replace("\n", " ") : "").append(" |\n");
        }
        return sb.toString();
    }

    /** One row per cell. */
    public String csv() {
        StringBuilder sb = new StringBuilder(header.csvComments());
        sb.append("vfs,multifd_device_state,channels,runs,downtime_p25_ms,downtime_median_ms,downtime_min_ms,"
                + "downtime_max_ms,total_time_median_ms,gbps_median,lower_bound_ms,bound_device_ms,bound_fixed_ms,"
                + "bound_ram_ms,bound_limited_by,p25_over_bound,digests_match,failure\n");
        for (DowntimeCell c : cells) {
            sb.append(c.vfs()).append(',').append(c.multifdDeviceState() ? "on" : "off").append(',')
                    .append(c.channels()).append(',').append(c.runs().size()).append(',');
            if (c.hasRuns()) {
                Percentiles d = c.downtime();
                LowerBound b = c.typicalBound();
                sb.append(String.format(Locale.ROOT, "%.1f,%.1f,%.1f,%.1f,%.1f,%.4f,%.1f,%.1f,%.1f,%.1f,%s,%.4f,%s,",
                        d.p25(), d.median(), d.min(), d.max(), c.totalTime().median(), c.gbps().median(),
                        c.bounds().median(), b.deviceMs(), b.emptySwitchoverMs(), b.ramMs(), b.limitedBy(),
                        c.overBound(), c.allDigestsMatch()));
            } else {
                sb.append(",,,,,,,,,,,,,");
            }
            sb.append(c.failure() == null ? "" : csvQuote(c.failure())).append('\n');
        }
        return sb.toString();
    }

    /** One row per run. */
    public String runsCsv() {
        StringBuilder sb = new StringBuilder(header.csvComments());
        sb.append("vfs,multifd_device_state,channels,run,direction,downtime_ms,total_time_ms,final_dirty_bytes,"
                + "device_state_bytes,transferred_bytes,lower_bound_ms,digests_match\n");
        for (DowntimeCell c : cells) {
            for (DowntimeRun r : c.runs()) {
                sb.append(String.format(Locale.ROOT, "%d,%s,%d,%d,%s,%d,%d,%d,%d,%d,%.1f,%s%n", c.vfs(),
                        c.multifdDeviceState() ? "on" : "off", c.channels(), r.index(), r.direction(), r.downtimeMs(),
                        r.totalTimeMs(), r.finalDirtyBytes(), r.deviceStateBytes(), r.transferredBytes(),
                        c.bound(r).totalMs(), r.digestsMatch()));
            }
        }
        return sb.toString();
    }

    private static String csvQuote(String s) {
        return "\"" + s.replace("\"", "\"\"").replace('\n', ' ') + "\"";
    }

    /** The chart: VF table on the left, channel sweep on the right, the header above. */
    public BufferedImage chart() {
        List<BufferedImage> parts = new ArrayList<>();
        List<Integer> vfs = new ArrayList<>(tableVfs());
        java.util.Collections.reverse(vfs);
        if (!vfs.isEmpty()) {
            CategoryChart c = new CategoryChartBuilder().width(800).height(480)
                    .title("Downtime by device count, " + tableChannels + " channels (25th percentile)")
                    .xAxisTitle("devices").yAxisTitle("downtime (ms)").build();
            style(c);
            List<String> x = vfs.stream().map(DowntimeReport::vfLabel).toList();
            addSeries(c, "without multifd device state", x, vfs.stream()
                    .map(v -> cell(v, false, tableChannels).map(k -> k.downtime().p25()).orElse(0.0)).toList());
            addSeries(c, "with multifd device state", x, vfs.stream()
                    .map(v -> cell(v, true, tableChannels).map(k -> k.downtime().p25()).orElse(0.0)).toList());
            addSeries(c, "lower bound", x, vfs.stream().map(v -> cell(v, true, tableChannels)
                    .or(() -> cell(v, false, tableChannels)).map(k -> k.bounds().median()).orElse(0.0)).toList());
            parts.add(BitmapEncoder.getBufferedImage(c));
        }
        List<DowntimeCell> sweep = sweep();
        if (!sweep.isEmpty()) {
            CategoryChart c = new CategoryChartBuilder().width(640).height(480)
                    .title("Channels at " + vfLabel(sweepVfs()) + ", with multifd device state")
                    .xAxisTitle("multifd channels").yAxisTitle("downtime (ms)").build();
            style(c);
            c.getStyler().setSeriesColors(new Color[] {new Color(0xff7f0e), new Color(0x7f7f7f)});
            List<String> x = sweep.stream().map(k -> Integer.toString(k.channels())).toList();
            addSeries(c, "with multifd device state", x, sweep.stream().map(k -> k.downtime().p25()).toList());
            addSeries(c, "lower bound", x, sweep.stream().map(k -> k.bounds().median()).toList());
            parts.add(BitmapEncoder.getBufferedImage(c));
        }
        int w = Math.max(900, parts.stream().mapToInt(BufferedImage::getWidth).sum());
        int h = parts.stream().mapToInt(BufferedImage::getHeight).max().orElse(0);
        List<String> lines = new ArrayList<>();
        lines.add(header.title());
        for (String k : List.of("date", "machine", "jmigrate", "java", "parameters", "link", "devices", "runs")) {
            if (!header.get(k).isEmpty()) {
                lines.add(k + ": " + header.get(k));
            }
        }
        int top = 16 + lines.size() * 18;
        BufferedImage img = new BufferedImage(w, top + h + 8, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, img.getWidth(), img.getHeight());
            int y = 22;
            for (int i = 0; i < lines.size(); i++) {
                g.setColor(i == 0 ? Color.BLACK : new Color(0x333333));
                g.setFont(new Font(Font.SANS_SERIF, i == 0 ? Font.BOLD : Font.PLAIN, i == 0 ? 16 : 12));
                g.drawString(lines.get(i), 12, y);
                y += 18;
            }
            int x = 0;
            for (BufferedImage p : parts) {
                g.drawImage(p, x, top, null);
                x += p.getWidth();
            }
        } finally {
            g.dispose();
        }
        return img;
    }

    private static void style(CategoryChart c) {
        Styler s = c.getStyler();
        s.setLegendPosition(Styler.LegendPosition.OutsideS);
        s.setLegendLayout(Styler.LegendLayout.Horizontal);
        s.setChartBackgroundColor(Color.WHITE);
        s.setPlotBackgroundColor(Color.WHITE);
        s.setSeriesColors(new Color[] {new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x7f7f7f)});
        c.getStyler().setLabelsVisible(true);
        c.getStyler().setLabelsFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
        c.getStyler().setLabelsFontColorAutomaticEnabled(false);
        c.getStyler().setLabelsFontColor(Color.BLACK);
        c.getStyler().setLabelsPosition(0.9);
        c.getStyler().setDecimalPattern("#");
        c.getStyler().setYAxisMin(0.0);
        c.getStyler().setAvailableSpaceFill(0.8);
    }

    private static void addSeries(CategoryChart c, String name, List<String> x, List<Double> y) {
        c.addSeries(name, x, y);
    }

    /**
     * Writes {@code downtime.md}, {@code downtime.csv}, {@code downtime-runs.csv} and
     * {@code downtime.png} into {@code dir}; returns their paths.
     */
    public List<Path> write(Path dir) {
        try {
            Files.createDirectories(dir);
            Path md = dir.resolve("downtime.md");
            Path csv = dir.resolve("downtime.csv");
            Path runs = dir.resolve("downtime-runs.csv");
            Path png = dir.resolve("downtime.png");
            Files.writeString(md, markdown());
            Files.writeString(csv, csv());
            Files.writeString(runs, runsCsv());
            if (!ImageIO.write(chart(), "png", png.toFile())) {
                throw new MigrationException(Category.INTERNAL, "no PNG writer in this JDK");
            }
            return List.of(md, csv, runs, png);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot write the downtime report into " + dir + ": "
                    + e.getMessage(), e);
        }
    }
}
