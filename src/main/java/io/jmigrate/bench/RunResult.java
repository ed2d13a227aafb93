package io.jmigrate.bench;

/**
 * One completed migration, as the source's {@code query-migrate} reported it, plus what the
 * harness measured of both processes from {@code /proc}.
 *
 * @param totalTimeMs  {@code total-time}: from {@code migrate} to completion, in ms
 * @param setupTimeMs  {@code setup-time}, or -1
 * @param downtimeMs   {@code downtime}, or -1
 * @param transferred  {@code ram.transferred} (main channel plus multifd), in bytes
 * @param multifdBytes {@code ram.multifd-bytes}
 * @param srcCpuSeconds user + system CPU time of the source process from {@code migrate} until it
 *                     reported completion ({@code /proc/PID/stat}), or -1
 * @param dstCpuSeconds the same for the destination, until it reported completion, or -1
 * @param dstPeakRss   the destination's peak resident set ({@code VmHWM}) in bytes, or -1
 */
public record RunResult(long totalTimeMs, long setupTimeMs, long downtimeMs, long transferred, long multifdBytes,
                        double srcCpuSeconds, double dstCpuSeconds, long dstPeakRss) {
    public RunResult {
        if (totalTimeMs <= 0) {
            throw new IllegalArgumentException("total-time must be positive, got " + totalTimeMs);
        }
    }

    public RunResult(long totalTimeMs, long setupTimeMs, long downtimeMs, long transferred, long multifdBytes) {
        this(totalTimeMs, setupTimeMs, downtimeMs, transferred, multifdBytes, -1, -1, -1);
    }

    /** Guest RAM moved per second, in GB/s (10^9 bytes). */
    public double gbps(long ramBytes) {
        return ramBytes / 1e9 / (totalTimeMs / 1000.0);
    }
}
