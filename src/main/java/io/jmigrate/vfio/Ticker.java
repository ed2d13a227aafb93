package io.jmigrate.vfio;

import java.util.concurrent.locks.LockSupport;

/**
 * Time as the emulated VF sees it: a monotonic clock and a way to wait until a deadline. The
 * system ticker is {@link System#nanoTime()} plus {@link LockSupport#parkNanos}; tests pass a
 * manual one whose sleeps advance its clock, so pacing and mutations are checked without real
 * waiting.
 */
public interface Ticker {

    long nanoTime();

    /** Returns once {@link #nanoTime()} has reached {@code deadline}. */
    void sleepUntil(long deadline);

    Ticker SYSTEM = new Ticker() {
        @Override
        public long nanoTime() {
            return System.nanoTime();
        }

        @Override
        public void sleepUntil(long deadline) {
            long left;
            while ((left = deadline - System.nanoTime()) > 0) {
                LockSupport.parkNanos(left);
            }
        }
    };
}
