package io.jmigrate.bench;

import java.util.Locale;

/**
 * The model lower bound of one switchover's downtime, that the benchmark divides measured
 * downtime by:
 *
 * <pre>
 *   bound = largest device's bytes / min(its read rate, its write rate, link rate / devices)
 *         + fixed cost of an empty switchover (measured in the same run)
 *         + RAM's final dirty bytes / link rate
 * </pre>
 *
 * <p>The first term is the ideal of multifd device state: every device's save thread reads
 * while its bytes cross the link and its load thread writes, all devices at once, so the
 * switchover waits for the one that takes longest; the link is shared by the devices sending at
 * once. Nothing in a correct implementation can beat it, with or without multifd device state,
 * so one bound serves both modes and the ratio shows what the main-channel path costs. The
 * second term is what a switchover without device state costs in this set-up (stop, END
 * sections, EOF, destination start): it is measured by migrating a device-less VM pair with an
 * idle guest back and forth in the same run. The third term is the RAM that was still dirty when
 * the VM stopped ({@code ram.downtime-bytes}), at the link rate.
 *
 * @param largestDeviceBytes the device-state size of the largest device (0 without devices)
 * @param readRate           that device's read rate (saving), bytes/s; infinite if unpaced
 * @param writeRate          its write rate (loading), bytes/s; infinite if unpaced
 * @param linkRate           the link's rate, bytes/s (the emulated rate, or loopback's measured one)
 * @param devices            devices sending at once (the link's share is linkRate / devices)
 * @param emptySwitchoverMs  the fixed cost measured in the same run
 * @param finalDirtyBytes    RAM bytes sent after the VM stopped
 */
public record LowerBound(long largestDeviceBytes, double readRate, double writeRate, double linkRate, int devices,
                         double emptySwitchoverMs, long finalDirtyBytes) {
    public LowerBound {
        if (largestDeviceBytes < 0 || finalDirtyBytes < 0 || devices < 0 || emptySwitchoverMs < 0) {
            throw new IllegalArgumentException("negative term in the lower bound");
        }
        if (!(readRate > 0) || !(writeRate > 0) || !(linkRate > 0)) {
            throw new IllegalArgumentException("rates must be positive (read " + readRate + ", write " + writeRate
                    + ", link " + linkRate + ")");
        }
    }

    /** The link's share of one device: the whole link without devices or with one. */
    public double linkShare() {
        return linkRate / Math.max(1, devices);
    }

    /** The slowest of the device's read rate, write rate and link share (bytes/s). */
    public double deviceRate() {
        return Math.min(Math.min(readRate, writeRate), linkShare());
    }

    /** What limits the device term: "read", "write" or "link". */
    public String limitedBy() {
        double r = deviceRate();
        return r == readRate ? "read" : r == writeRate ? "write" : "link";
    }

    public double deviceMs() {
        return largestDeviceBytes == 0 ? 0 : largestDeviceBytes / deviceRate() * 1000;
    }

    public double ramMs() {
        return finalDirtyBytes / linkRate * 1000;
    }

    public double totalMs() {
        return deviceMs() + emptySwitchoverMs + ramMs();
    }

    /** e.g. "412.0 ms = 380.2 device (write) + 25.1 fixed + 6.7 RAM". */
    public String explain() {
        return String.format(Locale.ROOT, "%.1f ms = %.1f device (%s) + %.1f fixed + %.1f RAM", totalMs(), deviceMs(),
                limitedBy(), emptySwitchoverMs, ramMs());
    }
}
