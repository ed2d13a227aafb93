package io.jmigrate.bench;

/**
 * One completed migration, as the source's {@code query-migrate} reported it.
 *
 * @param totalTimeMs  {@code total-time}: from {@code migrate} to completion, in ms
 * @param setupTimeMs  {@code setup-time}, or -1
 * @param downtimeMs   {@code downtime}, or -1
 * @param transferred  {@code ram.transferred} (main channel plus multifd), in bytes
 * @param multifdBytes {@code ram.multifd-bytes}
 */
public record RunResult(long totalTimeMs, long setupTimeMs, long downtimeMs, long transferred, long multifdBytes) {
    public RunResult {
        if (totalTimeMs <= 0) {
            throw new IllegalArgumentException("total-time must be positive, got " + totalTimeMs);
        }
    }

    /** Guest RAM moved per second, in GB/s (10^9 bytes). */
    public double gbps(long ramBytes) {
        return ramBytes / 1e9 / (totalTimeMs / 1000.0);
    }
}
