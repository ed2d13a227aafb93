package io.jmigrate.bench;

/**
 * One switchover of the downtime benchmark, as the source's {@code query-migrate} reported it.
 *
 * @param index            1-based run number within its cell
 * @param direction        "a→b" or "b→a" (the VMs migrate back and forth)
 * @param downtimeMs       {@code downtime}: VM stop to destination running, ms
 * @param totalTimeMs      {@code total-time}, ms
 * @param finalDirtyBytes  RAM sent after the VM stopped ({@code ram.downtime-bytes}), or 0
 * @param deviceStateBytes device-state bytes sent at switchover (all devices), or 0
 * @param transferredBytes {@code ram.transferred} (RAM plus device state, all channels)
 * @param digestsMatch     the destination's RAM and every device digest equal the source's
 */
public record DowntimeRun(int index, String direction, long downtimeMs, long totalTimeMs, long finalDirtyBytes,
                          long deviceStateBytes, long transferredBytes, boolean digestsMatch) {
    public DowntimeRun {
        if (downtimeMs < 0 || totalTimeMs < 0 || finalDirtyBytes < 0 || deviceStateBytes < 0 || transferredBytes < 0) {
            throw new IllegalArgumentException("negative figure in run " + index + ": downtime " + downtimeMs
                    + " ms, total " + totalTimeMs + " ms, final dirty " + finalDirtyBytes + " B, device state "
                    + deviceStateBytes + " B");
        }
    }

    /** Bytes moved per second over the whole migration (10^9 B/s), or 0. */
    public double gbps() {
        return totalTimeMs == 0 ? 0 : transferredBytes / 1e9 / (totalTimeMs / 1000.0);
    }
}
