package io.jmigrate.bench;

import java.util.List;

/**
 * One cell of the downtime table: a device count, multifd device state off or on, a channel
 * count, its runs, and the terms of its {@link LowerBound} that do not change from run to run.
 *
 * @param vfs                 devices (emulated VFs, or blob devices)
 * @param multifdDeviceState  device state over multifd (on) or the main channel (off)
 * @param channels            multifd-channels
 * @param runs                the switchovers, in order
 * @param largestDeviceBytes  the largest device's state size
 * @param readRate            its read rate, bytes/s (Double.POSITIVE_INFINITY if unpaced)
 * @param writeRate           its write rate, bytes/s
 * @param linkRate            the link's rate, bytes/s
 * @param emptySwitchoverMs   the fixed cost measured in the same benchmark run
 * @param failure             why the cell stopped early, or null
 */
public record DowntimeCell(int vfs, boolean multifdDeviceState, int channels, List<DowntimeRun> runs,
                           long largestDeviceBytes, double readRate, double writeRate, double linkRate,
                           double emptySwitchoverMs, String failure) {
    public DowntimeCell {
        runs = List.copyOf(runs);
    }

    /** e.g. "4 VFs, on, 6 ch". */
    public String label() {
        return vfs + (vfs == 1 ? " VF" : " VFs") + ", " + (multifdDeviceState ? "on" : "off") + ", " + channels + " ch";
    }

    public boolean hasRuns() {
        return !runs.isEmpty();
    }

    public Percentiles downtime() {
        return Percentiles.of(runs.stream().map(DowntimeRun::downtimeMs).toList());
    }

    public Percentiles totalTime() {
        return Percentiles.of(runs.stream().map(DowntimeRun::totalTimeMs).toList());
    }

    public Percentiles gbps() {
        return Percentiles.of(runs.stream().map(DowntimeRun::gbps).toList());
    }

    /** The bound of one run (its own final dirty bytes). */
    public LowerBound bound(DowntimeRun r) {
        return new LowerBound(largestDeviceBytes, readRate, writeRate, linkRate, vfs,
                emptySwitchoverMs, r.finalDirtyBytes());
    }

    /** The median over runs of each run's bound. */
    public Percentiles bounds() {
        return Percentiles.of(runs.stream().map(r -> bound(r).totalMs()).toList());
    }

    /** The bound of the run whose bound is nearest the median (for explaining its terms). */
    public LowerBound typicalBound() {
        double m = bounds().median();
        return runs.stream().map(this::bound).min(java.util.Comparator.comparingDouble(b -> Math.abs(b.totalMs() - m)))
                .orElseThrow();
    }

    /** 25th-percentile downtime over the median bound. */
    public double overBound() {
        return downtime().p25() / bounds().median();
    }

    public boolean allDigestsMatch() {
        return runs.stream().allMatch(DowntimeRun::digestsMatch);
    }
}
