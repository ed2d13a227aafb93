package io.jmigrate.bench;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The downtime benchmark behind {@code jmigrate bench downtime} and {@code jmigrate demo}: QEMU's
 * multifd device-state experiment (N back-and-forth migrations per cell of VF count × multifd
 * device state off/on × channel count), measured from outside over QMP.
 *
 * <h2>How one cell runs</h2>
 * Two VM processes, "a" (running: RAM, the dirtying workload, N devices) and "b" (the same
 * devices, {@code --incoming defer}). Both get capabilities {@code multifd} and
 * {@code return-path} and {@code multifd-channels}; the source's {@code max-bandwidth} is set
 * far above what the link does. Then {@code migrate-incoming tcp:ADDR:0} (the real port is
 * read back from {@code socket-address}), {@code migrate}, and {@code query-migrate} every 50 ms
 * (the live progress) until the source completes and then the destination. The digests of RAM
 * and every device ({@code x-jmigrate-query-digest}) must match. Then the guest goes back: the
 * old source process quits and a fresh destination process takes its place (as with QEMU, a
 * process that sent its guest away does not receive one), while the guest itself keeps running
 * on the other side. With {@code --link}, "a" is always in the source namespace and "b" in the
 * destination's, and each listens on its own namespace's address.
 *
 * <h2>The fixed cost</h2>
 * Before the cells, a device-less pair with an idle guest migrates back and forth
 * {@code emptyRuns} times at the table's channel count: its 25th-percentile downtime is the
 * empty switchover of the lower bound, and (on loopback) its median RAM throughput is the link
 * rate of the model.
 */
public final class DowntimeBench {
    private static final long MAX_BANDWIDTH = 100_000_000_000L;
    private static final long POLL_MS = 50;
    /** RAM still dirty at which a guest with devices switches over. */
    static final long RAM_ALLOWANCE = 8L << 20;

    private final DowntimeConfig config;
    private final PrintStream log;
    private final boolean plainProgress;
    private LinkEmulation link;
    private int processCounter;
    /** The RAM image the empty pair's first source maps (incompressible, so it measures the link), or null. */
    private Path emptyImage;
    /** Keep each VM's JFR recording in the work directory (--keep) instead of deleting it once drawn. */
    private boolean keepRecordings;

    /**
     * @param log           progress and per-run lines
     * @param plainProgress where {@code log} is not a terminal, print plain progress lines every second
     *                      (the demo); otherwise only one line per switchover (the benchmark). On a
     *                      terminal a progress bar is redrawn either way.
     */
    public DowntimeBench(DowntimeConfig config, PrintStream log, boolean plainProgress) {
        this.config = config;
        this.log = log;
        this.plainProgress = plainProgress;
    }

    /**
     * With {@code true} the VMs' JFR recordings ({@code --timeline}) stay in the work directory
     * after their timelines are drawn, for a profile ({@code jfr print}, JDK Mission Control).
     */
    public DowntimeBench keepRecordings(boolean keep) {
        this.keepRecordings = keep;
        return this;
    }

    /** What a benchmark run produced. */
    public record Result(DowntimeReport report, List<Path> files, List<Path> timelines, double linkRate,
                         double emptySwitchoverMs) {
    }

    /** Runs every cell; a failed cell is recorded in the report, not thrown. */
    public Result run() {
        try {
            Files.createDirectories(config.workDir());
            Files.createDirectories(config.outDir());
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot create " + config.workDir() + " or " + config.outDir()
                    + ": " + e.getMessage(), e);
        }
        Map<String, String> versions = new LinkedHashMap<>();
        try {
            if (config.link() != null) {
                link = LinkEmulation.create(config.link());
                log.println("link: " + link);
            }
            // the fixed cost and the loopback link rate, from a device-less pair with an idle guest
            log.printf("empty switchover: %d back-and-forth migrations of %s RAM, no devices, idle guest, %d "
                    + "channels%n", config.emptyRuns(), TimelineChart.humanBytes(config.ramBytes()),
                    config.tableChannels());
            Path image = config.workDir().resolve("empty-guest-ram.img");
            RamImage.fill(image, config.ramBytes(), 1);
            emptyImage = image;
            CellRun empty = runCell(new DowntimeConfig.Cell(0, false, config.tableChannels()), config.emptyRuns(),
                    versions, config.timeline() ? Timelines.LAST : Timelines.NONE);
            emptyImage = null;
            try {
                Files.deleteIfExists(image);
            } catch (IOException ignored) {
                // removed with the work directory
            }
            if (empty.failure != null) {
                throw new MigrationException(Category.STATE, "the empty switchover failed: " + empty.failure);
            }
            double emptyMs = Percentiles.of(empty.runs.stream().map(DowntimeRun::downtimeMs).toList()).p25();
            double linkRate = config.link() != null ? config.link().bytesPerSecond()
                    : Percentiles.of(empty.runs.stream().map(r -> r.transferredBytes() * 1000.0
                    / Math.max(1, r.totalTimeMs())).toList()).median();
            log.printf(Locale.ROOT, "empty switchover p25 %.0f ms; link rate %.2f GB/s (%s)%n", emptyMs, linkRate / 1e9,
                    config.link() != null ? "emulated" : "measured: median RAM throughput of the empty runs");

            List<DowntimeCell> cells = new ArrayList<>();
            List<Path> timelines = new ArrayList<>(empty.timelines);
            for (DowntimeConfig.Cell c : config.cells()) {
                log.printf("cell %s: %d switchover(s)%n", c, config.runs());
                CellRun r = runCell(c, config.runs(), versions, config.timeline() ? Timelines.ALL : Timelines.NONE);
                double read = config.readRate() == 0 ? Double.POSITIVE_INFINITY : config.readRate();
                double write = config.writeRate() == 0 ? Double.POSITIVE_INFINITY : config.writeRate();
                cells.add(new DowntimeCell(c.vfs(), c.multifdDeviceState(), c.channels(), r.runs, config.stateBytes(),
                        read, write, linkRate, emptyMs, r.failure));
                timelines.addAll(r.timelines);
            }
            Map<String, String> params = new LinkedHashMap<>();
            params.put("parameters", config.describe());
            params.put("link", config.link() == null ? String.format(Locale.ROOT, "TCP loopback (model rate %.2f GB/s "
                    + "measured)", linkRate / 1e9) : config.link().describe() + " emulated (tc tbf"
                    + (config.link().delay().isZero() ? "" : " + netem") + " on a veth pair between two netns)");
            params.put("empty switchover", String.format(Locale.ROOT, "%.0f ms (p25 of %d)", emptyMs,
                    config.emptyRuns()));
            DowntimeReport report = new DowntimeReport(ReportHeader.of("jmigrate bench downtime", versions, params),
                    cells, config.tableChannels());
            List<Path> files = report.write(config.outDir());
            return new Result(report, files, timelines, linkRate, emptyMs);
        } finally {
            if (link != null) {
                link.close();
            }
        }
    }

    /** Which switchovers get a timeline picture. */
    public enum Timelines {
        NONE, LAST, ALL
    }

    /** The runs of one cell, or how far it got. */
    public static final class CellRun {
        final List<DowntimeRun> runs = new ArrayList<>();
        final List<Path> timelines = new ArrayList<>();
        String failure;

        public List<DowntimeRun> runs() {
            return List.copyOf(runs);
        }

        /** The timeline PNGs written, in run order. */
        public List<Path> timelines() {
            return List.copyOf(timelines);
        }

        /** Why the cell stopped early, or null. */
        public String failure() {
            return failure;
        }
    }

    /**
     * Runs one cell on its own (the demo's modes): {@code runs} back-and-forth switchovers, with
     * the link of the configuration if it has one.
     */
    public CellRun runOneCell(DowntimeConfig.Cell cell, int runs, Timelines timelines) {
        try {
            Files.createDirectories(config.workDir());
            Files.createDirectories(config.outDir());
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot create " + config.workDir() + " or " + config.outDir()
                    + ": " + e.getMessage(), e);
        }
        boolean ownLink = link == null && config.link() != null;
        if (ownLink) {
            link = LinkEmulation.create(config.link());
        }
        try {
            return runCell(cell, runs, new LinkedHashMap<>(), timelines);
        } finally {
            if (ownLink) {
                link.close();
                link = null;
            }
        }
    }

    /** One VM process and where it lives. */
    private record Vm(Peer peer, boolean inSourceNs, Path jfr) {
    }

    private CellRun runCell(DowntimeConfig.Cell cell, int runs, Map<String, String> versions, Timelines timelines) {
        boolean timeline = timelines != Timelines.NONE;
        CellRun out = new CellRun();
        List<SwitchoverRecord> records = new ArrayList<>();
        List<Path> jfrs = new ArrayList<>();
        Vm src = null;
        Vm dst = null;
        try {
            src = startVm(cell, true, false, timeline);
            dst = startVm(cell, false, true, timeline);
            versions.putIfAbsent("vm", "jmigrate vm, QMP greeting version " + src.peer.version());
            jfrs.add(src.jfr);
            jfrs.add(dst.jfr);
            for (int run = 1; run <= runs; run++) {
                String dir = src.inSourceNs ? "a→b" : "b→a";
                SwitchoverOutcome o = switchover(cell, src, dst, run, runs, dir);
                out.runs.add(o.run);
                records.add(o.record(src.jfr, dst.jfr));
                if (!o.run.digestsMatch()) {
                    out.failure = "run " + run + " (" + dir + "): " + o.mismatch;
                    break;
                }
                if (run < runs) {
                    // the guest now runs on dst; the old source quits and a fresh destination takes its place
                    Vm old = src;
                    src = dst;
                    dst = null;
                    old.peer.close();
                    dst = startVm(cell, old.inSourceNs, true, timeline);
                    jfrs.add(dst.jfr);
                }
            }
        } catch (MigrationException e) {
            out.failure = e.getMessage();
            log.println("FAILED: " + e.getMessage());
        } finally {
            for (Vm v : new Vm[] {src, dst}) {
                if (v != null) {
                    v.peer.close();
                }
            }
        }
        if (timeline) {
            String name = cell.vfs() == 0 ? "empty" : cell.vfs() + "vf-" + (cell.multifdDeviceState() ? "on" : "off");
            for (int i = timelines == Timelines.LAST ? Math.max(0, records.size() - 1) : 0; i < records.size(); i++) {
                Path png = config.outDir().resolve("timelines").resolve(String.format(Locale.ROOT,
                        "timeline-%s-%dch-run%02d.png", name, cell.channels(), i + 1));
                TimelineChart.writePng(records.get(i).timeline(), png);
                out.timelines.add(png);
            }
        }
        for (Path j : keepRecordings ? List.<Path>of() : jfrs) {
            if (j != null) {
                try {
                    Files.deleteIfExists(j);
                } catch (IOException ignored) {
                    // the work directory is removed at the end anyway
                }
            }
        }
        return out;
    }

    private Vm startVm(DowntimeConfig.Cell cell, boolean inSourceNs, boolean incoming, boolean jfr) {
        int n = ++processCounter;
        String name = (inSourceNs ? "a" : "b") + n;
        Path dir = config.workDir();
        Path sock = dir.resolve(name + ".qmp");
        Path recording = jfr ? dir.resolve(name + ".jfr") : null;
        List<String> jvm = new ArrayList<>(config.jvmArgs());
        if (recording != null) {
            jvm.add("-XX:StartFlightRecording=filename=" + recording + ",dumponexit=true");
        }
        List<String> cmd = new ArrayList<>(Engine.Jmigrate.current(jvm).launcher());
        cmd.addAll(List.of("vm", "--name", name, "-m", (config.ramBytes() >> 20) + "M", "--qmp", "unix:" + sock));
        if (cell.vfs() == 0 && !incoming && emptyImage != null) {
            // the empty pair's guest holds incompressible bytes, so its migrations measure the link
            cmd.addAll(List.of("--memory-backend", "file=" + emptyImage + ",share=on"));
        }
        if (config.dirtyRateMiB() > 0 && cell.vfs() > 0) {
            cmd.addAll(List.of("--workload", String.format(Locale.ROOT, "dirty-rate=%s,pattern=increment,vcpus=1",
                    stripZeros(config.dirtyRateMiB()))));
        }
        cmd.addAll(config.flavor().vmArguments(cell.vfs(), cell.multifdDeviceState(), config.stateBytes(),
                config.readRate(), config.writeRate()));
        if (incoming) {
            cmd.addAll(List.of("--incoming", "defer"));
        }
        if (link != null) {
            cmd = inSourceNs ? link.inSource(cmd) : link.inDestination(cmd);
        }
        Peer p = Peer.start("vm " + name + " (" + cell + ")", cmd, sock, dir.resolve(name + ".log"));
        return new Vm(p, inSourceNs, recording);
    }

    private static String stripZeros(double d) {
        return d == Math.rint(d) ? Long.toString((long) d) : Double.toString(d);
    }

    /** One switchover's measured figures and what it recorded. */
    private record SwitchoverOutcome(DowntimeRun run, String mismatch, JsonNode srcInfo, JsonNode dstInfo,
                                     String title, String subtitle) {
        SwitchoverRecord record(Path srcJfr, Path dstJfr) {
            return new SwitchoverRecord(title, subtitle, srcInfo, dstInfo, srcJfr, dstJfr);
        }
    }

    private SwitchoverOutcome switchover(DowntimeConfig.Cell cell, Vm src, Vm dst, int run, int runs, String dir) {
        for (Vm v : List.of(src, dst)) {
            v.peer.exec("migrate-set-capabilities", Map.of("capabilities", List.of(
                    Map.of("capability", "multifd", "state", true),
                    Map.of("capability", "return-path", "state", true),
                    // the digests that every switchover checks (the destination's vCPUs wait for its own)
                    Map.of("capability", "x-jmigrate-digest", "state", true))));
            v.peer.exec("migrate-set-parameters", Map.of("multifd-channels", cell.channels()));
        }
        if (cell.vfs() == 0) {
            // the empty pair's idle guest goes over with nothing dirty: its downtime is the fixed cost alone
            src.peer.exec("migrate-set-parameters", Map.of("max-bandwidth", MAX_BANDWIDTH, "downtime-limit", 1));
        } else {
            // Switchover when the pending bytes fit: pending counts a VFIO device's whole stop-copy state
            // (as QEMU's), so with the measured bandwidth and a small downtime-limit a guest with VFs
            // would never switch over. A set avail-switchover-bandwidth makes the threshold
            // (bandwidth x downtime-limit) exactly: the devices' pending state plus RAM_ALLOWANCE.
            long pendingDevices = config.flavor().countsStateAsPending() ? (long) cell.vfs() * config.stateBytes() : 0;
            long avail = (long) Math.ceil((pendingDevices + RAM_ALLOWANCE) * 1000.0 / config.downtimeLimitMs());
            src.peer.exec("migrate-set-parameters", Map.of("max-bandwidth", MAX_BANDWIDTH, "downtime-limit",
                    config.downtimeLimitMs(), "avail-switchover-bandwidth", avail));
        }
        for (Vm v : List.of(src, dst)) {
            v.peer.awaitJitWarmUp(ThroughputBench.WARM_UP_TIMEOUT);
        }
        String host = link == null ? "127.0.0.1" : dst.inSourceNs ? link.sourceAddress() : link.destinationAddress();
        dst.peer.exec("migrate-incoming", Map.of("uri", "tcp:" + host + ":0"));
        JsonNode listening = dst.peer.exec("query-migrate", null).path("socket-address");
        String port = listening.isArray() && !listening.isEmpty() ? listening.get(0).path("port").asText() : "";
        if (port.isEmpty() || port.equals("0")) {
            throw new MigrationException(Category.STATE, dst.peer.name + " reports no listening port after "
                    + "migrate-incoming tcp:" + host + ":0 (query-migrate socket-address: " + listening + ")");
        }
        String uri = "tcp:" + host + ":" + port;
        String prefix = String.format(Locale.ROOT, "%s run %d/%d %s", cell.vfs() == 0 ? "empty" : cell.toString(), run,
                runs, dir);
        ProgressDisplay progress = ProgressDisplay.isTerminal() ? new ProgressDisplay(log, true, Long.MAX_VALUE, prefix)
                : plainProgress ? new ProgressDisplay(log, false, 1_000_000_000L, prefix) : null;
        src.peer.exec("migrate", Map.of("uri", uri));
        JsonNode info = awaitFinal(src.peer, progress);
        String status = info.path("status").asText();
        if (!status.equals("completed")) {
            String why = "";
            try {
                JsonNode d = dst.peer.exec("query-migrate", null);
                why = "; the destination says: " + d.path("status").asText()
                        + (d.has("error-desc") ? ": " + d.get("error-desc").asText() : "");
            } catch (MigrationException e) {
                why = "; the destination does not answer: " + e.getMessage();
            }
            throw new MigrationException(Category.STATE, prefix + ": migration " + status
                    + (info.has("error-desc") ? ": " + info.get("error-desc").asText() : "") + why + "; source log: "
                    + Peer.tail(src.peer.log) + "; destination log: " + Peer.tail(dst.peer.log));
        }
        JsonNode dinfo = awaitFinal(dst.peer, null);
        if (!dinfo.path("status").asText().equals("completed")) {
            throw new MigrationException(Category.STATE, prefix + ": destination ended "
                    + dinfo.path("status").asText() + (dinfo.has("error-desc") ? ": "
                    + dinfo.get("error-desc").asText() : "") + "; log: " + Peer.tail(dst.peer.log));
        }
        JsonNode sd = src.peer.exec("x-jmigrate-query-digest", null);
        JsonNode dd = dst.peer.exec("x-jmigrate-query-digest", null);
        String mismatch = compareDigests(sd, dd, cell.vfs());
        JsonNode ram = info.path("ram");
        long devBytes = Progress.deviceStateBytes(info.path("x-jmigrate-device-state"));
        // downtime-bytes counts everything sent after the stop, device state included (over multifd or
        // on the main channel): RAM's final dirty bytes are the rest
        long allDevices = (long) cell.vfs() * config.stateBytes();
        long finalDirty = Math.max(0, ram.path("downtime-bytes").asLong(0) - allDevices);
        DowntimeRun r = new DowntimeRun(run, dir, info.path("downtime").asLong(), info.path("total-time").asLong(),
                finalDirty, Math.max(devBytes, allDevices), ram.path("transferred").asLong(0), mismatch == null);
        String line = String.format(Locale.ROOT, "%s: downtime %d ms, total %d ms, %.2f GB/s, device state %s, "
                        + "final dirty %s, digests %s", prefix, r.downtimeMs(), r.totalTimeMs(), r.gbps(),
                TimelineChart.humanBytes(r.deviceStateBytes()), TimelineChart.humanBytes(r.finalDirtyBytes()),
                mismatch == null ? "match" : "DIFFER: " + mismatch);
        log.println(line);
        String title = String.format(Locale.ROOT, "switchover %d of %d (%s): %s, multifd device state %s, %d channels",
                run, runs, dir, cell.vfs() == 0 ? "empty switchover (no devices, idle guest)"
                        : cell.vfs() + (cell.vfs() == 1 ? " VF" : " VFs"), cell.multifdDeviceState() ? "on" : "off",
                cell.channels());
        String guest = cell.vfs() == 0 ? TimelineChart.humanBytes(config.ramBytes()) + " RAM, idle guest, no devices"
                : String.format(Locale.ROOT, "%s RAM dirtied at %s MiB/s; %s of state per %s, read %s, write %s",
                TimelineChart.humanBytes(config.ramBytes()), stripZeros(config.dirtyRateMiB()),
                TimelineChart.humanBytes(config.stateBytes()), config.flavor().description(),
                DowntimeConfig.rate(config.readRate()), DowntimeConfig.rate(config.writeRate()));
        String subtitle = String.format(Locale.ROOT, "downtime %d ms, total %d ms; %s; %s", r.downtimeMs(),
                r.totalTimeMs(), guest, link == null ? "TCP loopback" : "link " + link.spec().describe());
        return new SwitchoverOutcome(r, mismatch, info, dinfo, title, subtitle);
    }

    /** Null if RAM and each of the {@code devices} device digests match, else what differs. */
    static String compareDigests(JsonNode src, JsonNode dst, int devices) {
        String a = src.path("outgoing").asText("");
        String b = dst.path("incoming").asText("");
        if (a.isEmpty() || !a.equals(b)) {
            return "RAM sha256 " + (a.isEmpty() ? "(none)" : a) + " sent, " + (b.isEmpty() ? "(none)" : b) + " loaded";
        }
        JsonNode od = src.path("outgoing-devices");
        JsonNode id = dst.path("incoming-devices");
        if (od.size() != devices || id.size() != devices) {
            return "expected " + devices + " device digest(s) on each side, got " + od.size() + " sent, " + id.size()
                    + " loaded";
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = od.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String l = id.path(e.getKey()).asText("");
            if (!l.equals(e.getValue().asText())) {
                return "device " + e.getKey() + " sha256 " + e.getValue().asText() + " sent, "
                        + (l.isEmpty() ? "(none)" : l) + " loaded";
            }
        }
        return null;
    }

    private JsonNode awaitFinal(Peer p, ProgressDisplay progress) {
        long deadline = System.nanoTime() + config.migrationTimeout().toNanos();
        while (true) {
            JsonNode info = p.exec("query-migrate", null);
            if (progress != null) {
                progress.update(Progress.of(info), System.nanoTime());
            }
            String s = info.path("status").asText();
            if (s.equals("completed") || s.equals("failed") || s.equals("cancelled")) {
                return info;
            }
            if (System.nanoTime() > deadline) {
                throw new MigrationException(Category.TIMEOUT, p.name + ": migration still '" + s + "' after "
                        + config.migrationTimeout().toSeconds() + " s");
            }
            try {
                Thread.sleep(POLL_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new MigrationException(Category.CANCELLED, "interrupted");
            }
        }
    }
}
