package io.jmigrate.cli;

import io.jmigrate.bench.DeviceFlavor;
import io.jmigrate.bench.DowntimeBench;
import io.jmigrate.bench.DowntimeConfig;
import io.jmigrate.bench.DowntimeRun;
import io.jmigrate.bench.LinkSpec;
import io.jmigrate.bench.Percentiles;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.machine.VmConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code jmigrate demo}: the first thing to run. Two VM processes on this machine, a guest with
 * 1 GiB of RAM that a workload keeps dirtying and 2 emulated VFs, migrated back and forth first
 * with multifd device state off and then on, with live progress; then a table per mode and the
 * timeline picture of the last switchover.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Live-migrate a running guest (1 GiB RAM being dirtied, 2 emulated VFs) back and forth between "
                + "two local VM processes, first with multifd device state off, then on. Shows live progress, then "
                + "per mode the downtime, total time, throughput and whether RAM and every device arrived intact, "
                + "and draws the last switchover as a timeline PNG.",
            "About a minute on 2 cores; nothing to set up."})
public final class DemoCommand implements Callable<Integer> {
    @Option(names = "--ram", paramLabel = "SIZE", description = "guest RAM (default 1G)", defaultValue = "1G")
    String ram;

    @Option(names = "--vfs", paramLabel = "N", description = "emulated VFs (default 2)", defaultValue = "2")
    int vfs;

    @Option(names = "--runs", paramLabel = "N", description = "switchovers per mode (default 2: there and back)",
            defaultValue = "2")
    int runs;

    @Option(names = "--channels", paramLabel = "N", description = "multifd channels (default 6, as QEMU's "
            + "experiment)", defaultValue = "6")
    int channels;

    @Option(names = "--dirty-rate", paramLabel = "MiB/s", description = "guest workload (default 32)",
            defaultValue = "32")
    double dirtyRate;

    @Option(names = "--device", paramLabel = "vfio-emu|blob", description = "what a VF is (default vfio-emu)",
            defaultValue = "vfio-emu")
    String device;

    @Option(names = "--state-size", paramLabel = "SIZE",
            description = "each VF's state (default 100M, about a ConnectX-7 VF's)", defaultValue = "100M")
    String stateSize;

    @Option(names = "--rate", paramLabel = "SIZE/s", description = "each VF's read and write rate (default 220M)",
            defaultValue = "220M")
    String rate;

    @Option(names = "--link", paramLabel = "RATE[,delay=D]",
            description = "emulate a link between two network namespaces (needs root and iproute2)")
    String link;

    @Option(names = "--out", paramLabel = "DIR", description = "where the timeline goes (default jmigrate-demo)",
            defaultValue = "jmigrate-demo")
    Path out;

    @Option(names = "--keep", description = "keep the work directory (VM logs) afterwards")
    boolean keep;

    @Override
    public Integer call() {
        PrintStream o = System.out;
        DeviceFlavor flavor;
        try {
            flavor = DeviceFlavor.parse(device);
        } catch (IllegalArgumentException e) {
            throw new MigrationException(Category.CONFIG, "--device: " + e.getMessage());
        }
        if (runs < 1 || vfs < 1) {
            throw new MigrationException(Category.CONFIG, "--runs and --vfs must be at least 1");
        }
        Path dir = Path.of("/dev/shm", "jmigrate-demo-" + ProcessHandle.current().pid());
        long r = BenchDowntimeCommand.rate(rate);
        DowntimeConfig cfg = new DowntimeConfig(VmConfig.parseSize(ram), dirtyRate, List.of(vfs), List.of(channels),
                runs, 1, flavor, VmConfig.parseSize(stateSize), r, r, link == null ? null : LinkSpec.parse(link),
                true, out.toAbsolutePath(), dir, Duration.ofSeconds(300), List.of(DowntimeConfig.VM_HEAP),
                DowntimeConfig.DEFAULT_DOWNTIME_LIMIT_MS);
        o.printf("jmigrate demo: a guest with %s of RAM (dirtied at %s MiB/s) and %d %s(s) of %s state each "
                        + "(read and write at %s/s), %d multifd channels, %s%n", ram, fmt(dirtyRate), vfs,
                flavor.description(), stateSize, rate, channels, link == null ? "TCP loopback" : "link " + link);
        o.println("two VM processes on this machine; the guest migrates back and forth " + runs + " time(s) per mode");
        o.println();
        DowntimeBench bench = new DowntimeBench(cfg, o, true);
        List<Mode> modes = new ArrayList<>();
        try {
            for (boolean on : new boolean[] {false, true}) {
                o.println("== multifd device state " + (on ? "on" : "off") + (on
                        ? ": each VF's save thread sends its state over the multifd channels, in parallel"
                        : ": the VFs' state goes one after the other on the main channel"));
                DowntimeBench.CellRun cr = bench.runOneCell(new DowntimeConfig.Cell(vfs, on, channels), runs,
                        on ? DowntimeBench.Timelines.LAST : DowntimeBench.Timelines.NONE);
                modes.add(new Mode(on, cr));
                o.println();
            }
        } finally {
            if (keep) {
                System.err.println("kept " + dir);
            } else {
                BenchCommand.Throughput.deleteTree(dir);
            }
        }
        boolean ok = true;
        o.println("Results. Downtime: from the source VM's stop until the destination has loaded everything and the "
                + "channels closed, as query-migrate reports it. Wire GB/s: bytes sent (all channels) per second of "
                + "total time; untouched guest pages are zero pages and cost almost nothing.");
        for (Mode m : modes) {
            List<DowntimeRun> rs = m.run.runs();
            o.println();
            o.println("multifd device state " + (m.on ? "on" : "off"));
            o.printf(Locale.ROOT, "  %-4s %-9s %-12s %-14s %-10s %-13s %s%n", "run", "direction", "downtime ms",
                    "total time ms", "wire GB/s", "device state", "RAM + " + vfs + " device digest(s)");
            for (DowntimeRun x : rs) {
                o.printf(Locale.ROOT, "  %-4d %-9s %-12d %-14d %-10.2f %-13s %s%n", x.index(), x.direction(),
                        x.downtimeMs(), x.totalTimeMs(), x.gbps(), humanBytes(x.deviceStateBytes()),
                        x.digestsMatch() ? "match" : "MISMATCH");
            }
            if (m.run.failure() != null) {
                o.println("  FAILED: " + m.run.failure());
            }
            if (!rs.isEmpty()) {
                o.printf(Locale.ROOT, "  median downtime %.0f ms, median total time %.0f ms%n",
                        Percentiles.of(rs.stream().map(DowntimeRun::downtimeMs).toList()).median(),
                        Percentiles.of(rs.stream().map(DowntimeRun::totalTimeMs).toList()).median());
            }
            ok &= m.run.failure() == null && rs.size() == runs && rs.stream().allMatch(DowntimeRun::digestsMatch);
        }
        o.println();
        o.println(ok ? "every switchover: the destination's RAM and every device's state equal the source's (SHA-256)"
                : "NOT every switchover completed with matching digests (see above)");
        if (modes.size() == 2 && !modes.get(0).run.runs().isEmpty() && !modes.get(1).run.runs().isEmpty()) {
            double off = Percentiles.of(modes.get(0).run.runs().stream().map(DowntimeRun::downtimeMs).toList()).median();
            double on = Percentiles.of(modes.get(1).run.runs().stream().map(DowntimeRun::downtimeMs).toList()).median();
            o.printf(Locale.ROOT, "median downtime with / without multifd device state: %.2f%n", on / off);
        }
        List<Path> tl = modes.isEmpty() ? List.of() : modes.getLast().run.timelines();
        if (!tl.isEmpty() && Files.exists(tl.getLast())) {
            o.println("timeline of the last switchover: " + tl.getLast());
        } else {
            o.println("no timeline was drawn");
            ok = false;
        }
        return ok ? 0 : 1;
    }

    private static String humanBytes(long b) {
        return b >= 1L << 20 ? String.format(Locale.ROOT, "%.1f MiB", b / 1048576.0) : b + " B";
    }

    private static String fmt(double d) {
        return d == Math.rint(d) ? Long.toString((long) d) : Double.toString(d);
    }

    private record Mode(boolean on, DowntimeBench.CellRun run) {
    }
}
