package io.jmigrate.cli;

import io.jmigrate.bench.DeviceFlavor;
import io.jmigrate.bench.DowntimeBench;
import io.jmigrate.bench.DowntimeConfig;
import io.jmigrate.bench.LinkSpec;
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
import java.util.concurrent.Callable;

/** {@code jmigrate bench downtime}: QEMU's multifd device-state downtime table, against a lower bound. */
@Command(name = "downtime", mixinStandardHelpOptions = true,
        description = {"Reproduce QEMU's multifd device-state downtime experiment: VFs 1, 2 and 4, each with multifd "
                + "device state off and on, at 6 channels; then 6, 8 and 15 channels at 4 VFs. Each cell migrates "
                + "a running guest back and forth --runs times and reports the 25th percentile, median, min and max "
                + "of downtime, total time, and downtime over a model lower bound.",
            "Writes downtime.md, downtime.csv, downtime-runs.csv and downtime.png into --out, and with --timeline a "
                + "switchover timeline PNG per migration under --out/timelines."})
public final class BenchDowntimeCommand implements Callable<Integer> {
    @Option(names = "--runs", description = "switchovers per cell (default 20; QEMU used 70-100)", defaultValue = "20")
    int runs;

    @Option(names = "--empty-runs", paramLabel = "N",
            description = "switchovers of the device-less pair that measures the fixed cost (default: --runs, at most 10)")
    Integer emptyRuns;

    @Option(names = "--vfs", split = ",", paramLabel = "N[,N...]", description = "device counts (default 1,2,4)",
            defaultValue = "1,2,4")
    List<Integer> vfs;

    @Option(names = "--channels", split = ",", paramLabel = "N[,N...]",
            description = "multifd channel counts: the first is the VF table's, all are swept at the largest VF count "
                    + "(default 6,8,15)", defaultValue = "6,8,15")
    List<Integer> channels;

    @Option(names = "--timeline", description = "draw a timeline PNG of every switchover (the VMs record JFR)")
    boolean timeline;

    @Option(names = "--link", paramLabel = "RATE[,delay=D]",
            description = "emulate a link (e.g. 25gbit or 10gbit,delay=1ms) between two network namespaces; needs root "
                    + "and iproute2 (default: TCP loopback)")
    String link;

    @Option(names = "--out", paramLabel = "DIR", description = "where the report files go (default: downtime-results)",
            defaultValue = "downtime-results")
    Path out;

    @Option(names = "--ram", paramLabel = "SIZE", description = "guest RAM (default 1G)", defaultValue = "1G")
    String ram;

    @Option(names = "--dirty-rate", paramLabel = "MiB/s", description = "guest workload dirty rate (default 64)",
            defaultValue = "64")
    double dirtyRate;

    @Option(names = "--device", paramLabel = "vfio-emu|blob",
            description = "the device that models a VF (default vfio-emu)", defaultValue = "vfio-emu")
    String device;

    @Option(names = "--state-size", paramLabel = "SIZE",
            description = "each device's state (default 100M, about a ConnectX-7 VF's)", defaultValue = "100M")
    String stateSize;

    @Option(names = "--read-rate", paramLabel = "SIZE/s",
            description = "each device's read rate, 0 = unpaced (default 220M)", defaultValue = "220M")
    String readRate;

    @Option(names = "--write-rate", paramLabel = "SIZE/s",
            description = "each device's write rate, 0 = unpaced (default 220M)", defaultValue = "220M")
    String writeRate;

    @Option(names = "--downtime-limit", paramLabel = "MS",
            description = "the sources' downtime-limit (default 50)", defaultValue = "50")
    long downtimeLimit;

    @Option(names = "--timeout", paramLabel = "SECONDS", description = "per switchover (default 300)",
            defaultValue = "300")
    long timeout;

    @Option(names = "--work-dir", paramLabel = "DIR",
            description = "sockets, logs and recordings (default /dev/shm/jmigrate-downtime-PID, removed afterwards)")
    Path workDir;

    @Option(names = "--keep", description = "keep the work directory (VM logs, and with --timeline their JFR recordings) afterwards")
    boolean keep;

    @Option(names = "--jvm-arg", paramLabel = "ARG",
            description = "JVM option for the VM processes (repeatable; default -Xmx512m)")
    List<String> jvmArgs = new ArrayList<>();

    static long rate(String s) {
        return s.equals("0") ? 0 : VmConfig.parseSize(s);
    }

    @Override
    public Integer call() {
        PrintStream err = System.err;
        DeviceFlavor flavor;
        try {
            flavor = DeviceFlavor.parse(device);
        } catch (IllegalArgumentException e) {
            throw new MigrationException(Category.CONFIG, "--device: " + e.getMessage());
        }
        Path dir = workDir != null ? workDir : Path.of("/dev/shm", "jmigrate-downtime-" + ProcessHandle.current().pid());
        boolean created = !Files.exists(dir);
        DowntimeConfig cfg = new DowntimeConfig(VmConfig.parseSize(ram), dirtyRate, vfs, channels, runs,
                emptyRuns != null ? emptyRuns : Math.min(runs, 10), flavor, VmConfig.parseSize(stateSize),
                rate(readRate), rate(writeRate), link == null ? null : LinkSpec.parse(link), timeline,
                out.toAbsolutePath(), dir, Duration.ofSeconds(timeout),
                jvmArgs.isEmpty() ? List.of("-Xmx512m") : jvmArgs, downtimeLimit);
        try {
            DowntimeBench.Result r = new DowntimeBench(cfg, err, false).keepRecordings(keep).run();
            System.out.println();
            System.out.print(r.report().markdown());
            System.out.println();
            for (Path f : r.files()) {
                System.out.println("wrote " + f);
            }
            if (!r.timelines().isEmpty()) {
                System.out.println("wrote " + r.timelines().size() + " timeline(s), the last: " + r.timelines().getLast());
            }
            return r.report().anyFailed() ? 1 : 0;
        } finally {
            if (keep) {
                err.println("kept " + dir);
            } else if (created) {
                BenchCommand.Throughput.deleteTree(dir);
            }
        }
    }
}
