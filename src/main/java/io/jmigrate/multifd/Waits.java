package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

/**
 * The multifd hand-off signals: counting semaphores that allocate nothing, and whose waits never
 * hang (they poll an abort condition while waiting).
 *
 * <p>A {@link java.util.concurrent.Semaphore} enqueues an AQS node every time a thread parks on
 * it, and every timed poll that runs out enqueues another, so a hand-off per packet allocated per
 * packet. Every multifd signal has exactly one waiting thread at a time (a channel thread, the
 * main loader, or the producer that holds the sender's mutex), so a {@link Permits} keeps that
 * thread in a field and wakes it with {@link LockSupport#unpark}: no queue, no node.
 */
final class Waits {
    /** How often a waiter rechecks its abort condition. */
    private static final long POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(20);

    private Waits() {
    }

    /**
     * Takes a permit of {@code s}; returns false as soon as {@code abort} says so (checked at
     * least every 20 ms, and on every wake-up without a permit). An interrupt is turned into a
     * CANCELLED error.
     */
    static boolean acquire(Permits s, BooleanSupplier abort) {
        return s.acquire(abort);
    }

    /**
     * A counting semaphore for one waiting thread at a time, any number of releasing threads.
     * {@link #release} adds permits, then unparks the registered waiter; {@link #acquire}
     * registers its thread, then rechecks the permits before it parks (both through volatile
     * accesses, so one of the two always sees the other: no lost wake-up). A second thread
     * waiting while one already is would be a bug in the caller's locking, and is reported as
     * one, never silently starved.
     */
    static final class Permits {
        private static final VarHandle COUNT;
        private static final VarHandle WAITER;

        static {
            try {
                MethodHandles.Lookup l = MethodHandles.lookup();
                COUNT = l.findVarHandle(Permits.class, "count", int.class);
                WAITER = l.findVarHandle(Permits.class, "waiter", Thread.class);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        private final String what;
        @SuppressWarnings("unused") // through COUNT
        private volatile int count;
        @SuppressWarnings("unused") // through WAITER
        private volatile Thread waiter;

        /** @param what names the signal in errors ("multifd channel 2's job") */
        Permits(String what) {
            this.what = what;
        }

        void release() {
            release(1);
        }

        void release(int n) {
            COUNT.getAndAdd(this, n);
            Thread w = (Thread) WAITER.getVolatile(this);
            if (w != null) {
                LockSupport.unpark(w);
            }
        }

        int availablePermits() {
            return (int) COUNT.getVolatile(this);
        }

        boolean tryAcquire() {
            while (true) {
                int c = (int) COUNT.getVolatile(this);
                if (c <= 0) {
                    return false;
                }
                if (COUNT.compareAndSet(this, c, c - 1)) {
                    return true;
                }
            }
        }

        boolean acquire(BooleanSupplier abort) {
            if (tryAcquire()) {
                return true;
            }
            Thread me = Thread.currentThread();
            if (!WAITER.compareAndSet(this, null, me)) {
                Thread other = (Thread) WAITER.getVolatile(this);
                throw new MigrationException(Category.INTERNAL, me.getName() + " waits for " + what
                        + " while " + (other == null ? "another thread" : other.getName()) + " already does");
            }
            try {
                while (true) {
                    if (tryAcquire()) {
                        return true;
                    }
                    if (me.isInterrupted()) {
                        throw new MigrationException(Category.CANCELLED, "interrupted while waiting for " + what);
                    }
                    LockSupport.parkNanos(this, POLL_NANOS);
                    if (tryAcquire()) {
                        return true;
                    }
                    if (abort.getAsBoolean()) {
                        return false;
                    }
                }
            } finally {
                WAITER.setVolatile(this, null);
            }
        }

        @Override
        public String toString() {
            return what + " (" + availablePermits() + " permit(s))";
        }
    }
}
