package io.jmigrate.vfio;

/** A test clock: time moves only when a test advances it or something sleeps. */
final class ManualTicker implements Ticker {
    private long now = 1_000_000_000L;
    private long slept;

    @Override
    public synchronized long nanoTime() {
        return now;
    }

    @Override
    public synchronized void sleepUntil(long deadline) {
        if (deadline > now) {
            slept += deadline - now;
            now = deadline;
        }
    }

    synchronized void advance(long nanos) {
        now += nanos;
    }

    synchronized long slept() {
        return slept;
    }
}
