package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/** Blocking waits that never hang: they poll an abort condition while waiting. */
final class Waits {
    private static final long POLL_MS = 20;

    private Waits() {
    }

    /**
     * Takes a permit of {@code s}; returns false as soon as {@code abort} says so. An interrupt
     * is turned into a CANCELLED error.
     */
    static boolean acquire(Semaphore s, BooleanSupplier abort) {
        try {
            while (!s.tryAcquire(POLL_MS, TimeUnit.MILLISECONDS)) {
                if (abort.getAsBoolean()) {
                    return false;
                }
            }
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MigrationException(Category.CANCELLED, "interrupted while waiting for multifd channels", e);
        }
    }
}
