package io.jmigrate.vfio;

/**
 * Paces a byte stream to {@code rate} bytes per second over elapsed time, as a device's DMA or
 * firmware throughput limits how fast its state can be read or written. The amount of data
 * each call moves is decided by the caller, never by time, so what a stream carries is
 * deterministic; only when it is allowed to continue depends on the clock.
 *
 * <p>Virtual-time token bucket: every {@link #account(long) account(n)} pushes a virtual clock
 * forward by {@code n / rate} seconds and waits until the real clock has caught up. Idle time
 * earns at most {@code burst} of credit, so a stream that pauses (between precopy iterations,
 * or before stop-copy data arrives at a destination) does not then run unpaced.
 * A rate of 0 means unpaced. One thread at a time uses a pacer.
 */
public final class RatePacer {
    /** Credit that idle time can earn: 10 ms at the configured rate. */
    static final long BURST_NANOS = 10_000_000L;

    private final long rate;
    private final Ticker ticker;
    private long virtualNanos;
    private boolean started;

    public RatePacer(long bytesPerSecond, Ticker ticker) {
        if (bytesPerSecond < 0) {
            throw new IllegalArgumentException("rate must not be negative: " + bytesPerSecond);
        }
        this.rate = bytesPerSecond;
        this.ticker = ticker;
    }

    public long rate() {
        return rate;
    }

    /** {@code n} bytes were moved; waits until the rate allows them. */
    public void account(long n) {
        if (rate == 0 || n <= 0) {
            return;
        }
        long now = ticker.nanoTime();
        if (!started || virtualNanos < now - BURST_NANOS) {
            virtualNanos = started ? now - BURST_NANOS : now;
            started = true;
        }
        virtualNanos += Math.multiplyHigh(n, 1_000_000_000L) == 0
                ? n * 1_000_000_000L / rate
                : (long) ((double) n * 1e9 / rate);
        if (virtualNanos > now) {
            ticker.sleepUntil(virtualNanos);
        }
    }
}
