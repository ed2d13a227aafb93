package io.jmigrate.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The results of a {@link ThroughputBench} run: per engine and mode the median and range of
 * total time and GB/s, and for every mode where jmigrate has numbers, jmigrate/QEMU ratios of
 * the median GB/s against each QEMU measured in the same run (above 1: jmigrate is faster).
 */
public final class ThroughputReport {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final ThroughputConfig config;
    private final List<ThroughputBench.Row> rows;

    ThroughputReport(ThroughputConfig config, List<ThroughputBench.Row> rows) {
        this.config = config;
        this.rows = List.copyOf(rows);
    }

    public List<ThroughputBench.Row> rows() {
        return rows;
    }

    /** Whether any run failed (as opposed to a mode an engine does not support). */
    public boolean anyFailed() {
        return rows.stream().anyMatch(r -> r.failure != null);
    }

    /**
     * A jmigrate/QEMU comparison for one mode.
     *
     * @param ratio median GB/s of jmigrate over median GB/s of QEMU
     * @param low   jmigrate's slowest run over QEMU's fastest
     * @param high  jmigrate's fastest run over QEMU's slowest
     */
    public record Ratio(ThroughputConfig.Mode mode, String qemu, double ratio, double low, double high,
                        String engine) {
        public Ratio(ThroughputConfig.Mode mode, String qemu, double ratio, double low, double high) {
            this(mode, qemu, ratio, low, high, "jmigrate");
        }

        public int channels() {
            return mode.channels();
        }
    }

    public List<Ratio> ratios() {
        List<Ratio> out = new ArrayList<>();
        for (ThroughputBench.Row j : rows) {
            if (!j.isJmigrate() || j.runs.isEmpty() || j.failure != null) {
                continue;
            }
            Stats js = gbps(j);
            for (ThroughputBench.Row q : rows) {
                // QEMU rows, and the plain jmigrate row for an A/B variant of jmigrate
                boolean baseline = !q.isJmigrate() || (q.engine.label().equals("jmigrate")
                        && !j.engine.label().equals("jmigrate"));
                if (!baseline || !q.mode.equals(j.mode) || q.runs.isEmpty() || q.failure != null) {
                    continue;
                }
                Stats qs = gbps(q);
                out.add(new Ratio(j.mode, q.label, js.median() / qs.median(), js.min() / qs.max(),
                        js.max() / qs.min(), j.label));
            }
        }
        return out;
    }

    private Stats gbps(ThroughputBench.Row r) {
        return Stats.of(r.runs.stream().map(x -> x.gbps(config.ramBytes())).toList());
    }

    private static Stats millis(ThroughputBench.Row r) {
        return Stats.of(r.runs.stream().map(x -> (double) x.totalTimeMs()).toList());
    }

    /** CPU seconds per GiB of guest RAM on one side (median), or NaN when not measured. */
    private double cpuPerGib(ThroughputBench.Row r, boolean source) {
        List<Double> v = r.runs.stream().map(x -> source ? x.srcCpuSeconds() : x.dstCpuSeconds())
                .filter(c -> c >= 0).map(c -> c / (config.ramBytes() / (double) (1L << 30))).toList();
        return v.isEmpty() ? Double.NaN : Stats.of(v).median();
    }

    /** The destination's peak RSS over guest RAM (median), or NaN. */
    private double rssRatio(ThroughputBench.Row r) {
        List<Double> v = r.runs.stream().filter(x -> x.dstPeakRss() >= 0)
                .map(x -> x.dstPeakRss() / (double) config.ramBytes()).toList();
        return v.isEmpty() ? Double.NaN : Stats.of(v).median();
    }

    private static String num(double v, String fmt) {
        return Double.isNaN(v) ? "-" : String.format(Locale.ROOT, fmt, v);
    }


    /** The human-readable table. */
    public String table() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "jmigrate bench throughput: %d MiB of incompressible RAM (seed %d), "
                        + "paused -M none guests, TCP loopback, %d run(s) each, %d CPUs%n", config.ramBytes() >> 20,
                config.seed(), config.runs(), Runtime.getRuntime().availableProcessors()));
        if (config.runs() < ThroughputConfig.MIN_RUNS) {
            sb.append(String.format("WARNING: %d run(s) is below the minimum of %d: not a valid benchmark report%n",
                    config.runs(), ThroughputConfig.MIN_RUNS));
        }
        sb.append(String.format(Locale.ROOT, "source RAM: memory-backend-file,share=on over the image in the work "
                + "directory; destination RAM: %s%n", Engine.destinationBackend(config.dstPrealloc())));
        sb.append(String.format(Locale.ROOT, "%n%-14s %-8s %3s  %-28s  %-26s  %-9s %-9s %s%n", "engine", "mode", "ch",
                "total time ms: median [range]", "GB/s: median [range]", "CPU s/GiB", "", "dst peak RSS"));
        sb.append(String.format(Locale.ROOT, "%-14s %-8s %3s  %-28s  %-26s  %-9s %-9s %s%n", "", "", "", "", "",
                "source", "dest", "/ guest RAM"));
        for (ThroughputBench.Row r : rows) {
            String ch = r.channels == 0 ? "-" : Integer.toString(r.channels);
            String head = String.format(Locale.ROOT, "%-14s %-8s %3s  ", r.label, r.mode.label(), ch);
            if (r.unsupported != null) {
                sb.append(head).append("not supported: ").append(r.unsupported).append('\n');
                continue;
            }
            if (r.failure != null) {
                sb.append(head).append("FAILED after ").append(r.runs.size()).append(" run(s): ").append(r.failure)
                        .append('\n');
                continue;
            }
            Stats t = millis(r);
            Stats g = gbps(r);
            sb.append(head).append(String.format(Locale.ROOT, "%-28s  %-26s  %-9s %-9s %s%n",
                    String.format(Locale.ROOT, "%.0f [%.0f-%.0f]", t.median(), t.min(), t.max()),
                    String.format(Locale.ROOT, "%.3f [%.3f-%.3f]", g.median(), g.min(), g.max()),
                    num(cpuPerGib(r, true), "%.2f"), num(cpuPerGib(r, false), "%.2f"), num(rssRatio(r), "%.2f")));
        }
        List<Ratio> ratios = ratios();
        if (!ratios.isEmpty()) {
            sb.append(String.format(Locale.ROOT, "%njmigrate/QEMU speed ratio (median GB/s over median GB/s; "
                    + ">1 = jmigrate faster; range = worst-best pairing of runs)%n"));
            sb.append(String.format(Locale.ROOT, "%-8s %3s  %-14s %-14s %s%n", "mode", "ch", "engine", "vs",
                    "ratio [range]"));
            for (Ratio q : ratios) {
                sb.append(String.format(Locale.ROOT, "%-8s %3s  %-14s %-14s %.2f [%.2f-%.2f]%n", q.mode().label(),
                        q.channels() == 0 ? "-" : Integer.toString(q.channels()), q.engine(), q.qemu(), q.ratio(),
                        q.low(), q.high()));
            }
        } else if (rows.stream().noneMatch(r -> !r.isJmigrate())) {
            sb.append(String.format("%nno QEMU was run (qemu-system-x86_64 not found, or --no-qemu): no ratios%n"));
        }
        return sb.toString();
    }

    /** The report as JSON (what {@code --json FILE} writes). */
    public ObjectNode toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("benchmark", "throughput");
        ObjectNode m = root.putObject("machine");
        m.put("cpus", Runtime.getRuntime().availableProcessors());
        m.put("os", System.getProperty("os.name") + " " + System.getProperty("os.version"));
        m.put("java", Runtime.version().toString());
        ObjectNode c = root.putObject("config");
        c.put("ram-bytes", config.ramBytes());
        c.put("seed", config.seed());
        c.put("runs", config.runs());
        c.put("valid", config.runs() >= ThroughputConfig.MIN_RUNS);
        c.put("max-bandwidth", config.maxBandwidth());
        c.put("transport", "tcp loopback");
        c.put("source-memory", "memory-backend-file,share=on");
        c.put("destination-memory", Engine.destinationBackend(config.dstPrealloc()));
        ArrayNode chs = c.putArray("channels");
        config.channels().forEach(chs::add);
        c.put("precopy", config.precopy());
        ArrayNode comps = c.putArray("compressions");
        config.compressions().forEach(comps::add);
        if (!config.compressions().isEmpty()) {
            c.put("compression-channels", config.compressionChannels());
        }
        ArrayNode results = root.putArray("results");
        for (ThroughputBench.Row r : rows) {
            ObjectNode o = results.addObject();
            o.put("engine", r.label);
            o.put("mode", r.channels == 0 ? "precopy" : "multifd");
            o.put("channels", r.channels);
            o.put("compression", r.mode.compression());
            o.put("tls", r.mode.tls());
            o.put("status", r.unsupported != null ? "unsupported" : r.failure != null ? "failed" : "ok");
            if (r.unsupported != null) {
                o.put("message", r.unsupported);
            }
            if (r.failure != null) {
                o.put("message", r.failure);
            }
            ArrayNode runs = o.putArray("runs");
            for (RunResult x : r.runs) {
                ObjectNode ro = runs.addObject();
                ro.put("total-time-ms", x.totalTimeMs());
                ro.put("setup-time-ms", x.setupTimeMs());
                ro.put("downtime-ms", x.downtimeMs());
                ro.put("transferred-bytes", x.transferred());
                ro.put("multifd-bytes", x.multifdBytes());
                ro.put("gbps", round(x.gbps(config.ramBytes())));
                ro.put("src-cpu-seconds", round(x.srcCpuSeconds()));
                ro.put("dst-cpu-seconds", round(x.dstCpuSeconds()));
                ro.put("dst-peak-rss-bytes", x.dstPeakRss());
            }
            if (!r.runs.isEmpty() && r.failure == null) {
                Stats t = millis(r);
                Stats g = gbps(r);
                ObjectNode tt = o.putObject("total-time-ms");
                tt.put("median", t.median());
                tt.put("min", t.min());
                tt.put("max", t.max());
                ObjectNode gg = o.putObject("gbps");
                gg.put("median", round(g.median()));
                gg.put("min", round(g.min()));
                gg.put("max", round(g.max()));
                if (!Double.isNaN(cpuPerGib(r, true))) {
                    o.put("src-cpu-seconds-per-gib", round(cpuPerGib(r, true)));
                }
                if (!Double.isNaN(cpuPerGib(r, false))) {
                    o.put("dst-cpu-seconds-per-gib", round(cpuPerGib(r, false)));
                }
                if (!Double.isNaN(rssRatio(r))) {
                    o.put("dst-peak-rss-over-ram", round(rssRatio(r)));
                }
            }
        }
        ArrayNode rs = root.putArray("ratios");
        for (Ratio q : ratios()) {
            ObjectNode o = rs.addObject();
            o.put("mode", q.channels() == 0 ? "precopy" : "multifd");
            o.put("channels", q.channels());
            o.put("compression", q.mode().compression());
            o.put("engine", q.engine());
            o.put("vs", q.qemu());
            o.put("ratio", round(q.ratio()));
            o.put("low", round(q.low()));
            o.put("high", round(q.high()));
        }
        return root;
    }

    private static double round(double v) {
        return Math.round(v * 1e4) / 1e4;
    }

    public void writeJson(Path file) {
        try {
            JSON.writeValue(file.toFile(), toJson());
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
