package io.jmigrate.migration;

import io.jmigrate.common.EventSink;

import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

/**
 * The status of one migration (either side), changed only by compare-and-swap as QEMU's
 * {@code migrate_set_state}; each successful change emits {@code MIGRATION {status}} when the
 * {@code events} capability is on.
 *
 * <p>A change and its event are one step for observers: {@link #get} waits while a change is
 * being announced. So a client that reads the new status in {@code query-migrate} finds the
 * event already in its session's queue (ahead of that reply), and one that gets the event and
 * then asks sees the new status. Without this a migration thread preempted between the two
 * lets a client see "completed" and get its next reply before the MIGRATION event.
 */
public final class MigrationState {
    private final AtomicReference<MigrationStatus> status = new AtomicReference<>(MigrationStatus.NONE);
    private final EventSink events;
    private final BooleanSupplier eventsOn;
    private final Object lock = new Object();

    public MigrationState(EventSink events, BooleanSupplier eventsOn) {
        this.events = events;
        this.eventsOn = eventsOn;
    }

    public MigrationStatus get() {
        synchronized (lock) {
            return status.get();
        }
    }

    /** Changes {@code from} → {@code to}; false (and no event) if the status was not {@code from}. */
    public boolean cas(MigrationStatus from, MigrationStatus to) {
        synchronized (lock) {
            if (!status.compareAndSet(from, to)) {
                return false;
            }
            if (eventsOn.getAsBoolean()) {
                events.emit("MIGRATION", Map.of("status", to.qmpName)); // queues only: never blocks
            }
            return true;
        }
    }

    /** Changes whatever the status is to {@code to} unless it already is a final state. */
    public boolean finish(MigrationStatus to) {
        while (true) {
            MigrationStatus cur = status.get();
            if (cur == MigrationStatus.COMPLETED || cur == MigrationStatus.FAILED
                    || cur == MigrationStatus.CANCELLED) {
                return false;
            }
            if (cas(cur, to)) {
                return true;
            }
        }
    }
}
