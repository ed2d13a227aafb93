package io.jmigrate.bench;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * What {@code jmigrate bench downtime} (and {@code jmigrate demo}) runs, checked once.
 *
 * <p>The cells are QEMU's experiment: every count in {@code vfs}, each without and with multifd
 * device state, at the first of {@code channels}; then every count in {@code channels} at the
 * largest of {@code vfs} with it (cells already listed are not run twice).
 *
 * @param ramBytes        guest RAM
 * @param dirtyRateMiB    the guest workload's dirty rate (MiB/s; 0 = an idle guest)
 * @param vfs             device counts (1..16)
 * @param channels        multifd channel counts (1..255)
 * @param runs            switchovers per cell (the VMs migrate back and forth)
 * @param emptyRuns       switchovers of the device-less pair that measures the fixed cost
 * @param flavor          which device models a VF
 * @param stateBytes      each device's switchover state size
 * @param readRate        each device's read rate, bytes/s (0 = unpaced)
 * @param writeRate       each device's write rate, bytes/s (0 = unpaced)
 * @param link            the emulated link, or null for TCP loopback
 * @param timeline        draw a timeline PNG of every switchover (needs a JFR recording per VM)
 * @param outDir          where the report files and timelines go
 * @param workDir         sockets, logs, recordings
 * @param migrationTimeout per switchover
 * @param jvmArgs         JVM options of the VM processes
 * @param downtimeLimitMs the sources' {@code downtime-limit}: switchover once the RAM still dirty
 *                        would take at most this long (the empty pair uses 1 ms, so its guest
 *                        switches over with nothing left to send)
 */
public record DowntimeConfig(long ramBytes, double dirtyRateMiB, List<Integer> vfs, List<Integer> channels, int runs,
                             int emptyRuns, DeviceFlavor flavor, long stateBytes, long readRate, long writeRate,
                             LinkSpec link, boolean timeline, Path outDir, Path workDir, Duration migrationTimeout,
                             List<String> jvmArgs, long downtimeLimitMs) {
    /**
     * The VM processes' heap. A destination's reassemblers hold the device state that arrived
     * ahead of its load threads on the heap (up to x-migration-max-queued-buffers-size per
     * device: 400 MiB at 4 VFs of 100 MiB); at -Xmx512m the 4-VF window filled the heap and
     * spent about 230 ms of its 1.8 s in GC pauses, a full GC among them (JFR, README).
     */
    public static final String VM_HEAP = "-Xmx2g";

    public static final int DEFAULT_RUNS = 20;
    public static final long DEFAULT_DOWNTIME_LIMIT_MS = 50;

    public DowntimeConfig {
        vfs = List.copyOf(vfs);
        channels = List.copyOf(channels);
        jvmArgs = List.copyOf(jvmArgs);
        if (ramBytes <= 0 || ramBytes % (1 << 20) != 0) {
            throw new MigrationException(Category.CONFIG, "RAM size " + ramBytes + " must be a positive multiple of "
                    + "1 MiB");
        }
        if (vfs.isEmpty() || channels.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "--vfs and --channels need at least one count each");
        }
        for (int v : vfs) {
            if (v < 1 || v > 16) {
                throw new MigrationException(Category.CONFIG, "--vfs " + v + " is outside 1..16");
            }
        }
        for (int c : channels) {
            if (c < 1 || c > 255) {
                throw new MigrationException(Category.CONFIG, "--channels " + c + " is outside 1..255 "
                        + "(multifd-channels)");
            }
        }
        if (downtimeLimitMs < 1 || downtimeLimitMs > 2_000_000) {
            throw new MigrationException(Category.CONFIG, "--downtime-limit " + downtimeLimitMs + " ms is outside "
                    + "1..2000000 (QEMU's downtime-limit range)");
        }
        if (runs < 1 || emptyRuns < 1) {
            throw new MigrationException(Category.CONFIG, "--runs must be at least 1, got " + runs);
        }
        if (stateBytes < 4096 || readRate < 0 || writeRate < 0 || dirtyRateMiB < 0) {
            throw new MigrationException(Category.CONFIG, "device state must be at least 4 KiB and rates must not be "
                    + "negative");
        }
    }

    /** One cell: device count, multifd device state, channel count. */
    public record Cell(int vfs, boolean multifdDeviceState, int channels) {
        @Override
        public String toString() {
            return vfs + (vfs == 1 ? " VF" : " VFs") + " " + (multifdDeviceState ? "on" : "off") + " " + channels
                    + " ch";
        }
    }

    /** The cells in run order. */
    public List<Cell> cells() {
        Set<Cell> cells = new LinkedHashSet<>();
        int table = channels.getFirst();
        List<Integer> v = new ArrayList<>(vfs);
        for (int n : v) {
            cells.add(new Cell(n, false, table));
            cells.add(new Cell(n, true, table));
        }
        int most = v.stream().mapToInt(Integer::intValue).max().orElseThrow();
        for (int c : channels) {
            cells.add(new Cell(most, true, c));
        }
        return new ArrayList<>(cells);
    }

    /** The channel count of the VF table. */
    public int tableChannels() {
        return channels.getFirst();
    }

    /** "unpaced" or "256 MiB/s". */
    static String rate(long r) {
        return r == 0 ? "unpaced" : TimelineChart.humanBytes(r) + "/s";
    }

    /** The parameters line of the report header. */
    public String describe() {
        return String.format(Locale.ROOT, "%s RAM, guest dirtying %s; %s per device (%s), read %s, write %s; "
                        + "%d switchover(s) per cell, %d for the empty switchover; return-path on, downtime-limit %d ms",
                TimelineChart.humanBytes(ramBytes), dirtyRateMiB == 0 ? "nothing" : dirtyRateMiB + " MiB/s",
                TimelineChart.humanBytes(stateBytes), flavor.description(), rate(readRate), rate(writeRate), runs,
                emptyRuns, downtimeLimitMs);
    }
}
