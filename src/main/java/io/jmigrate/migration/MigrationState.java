package io.jmigrate.migration;

import io.jmigrate.common.EventSink;

import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;

/**
 * The status of one migration (either side), changed only by compare-and-swap as QEMU's
 * {@code migrate_set_state}; each successful change emits {@code MIGRATION {status}} when the
 * {@code events} capability is on.
 */
public final class MigrationState {
    private final AtomicReference<MigrationStatus> status = new AtomicReference<>(MigrationStatus.NONE);
    private final EventSink events;
    private final BooleanSupplier eventsOn;

    public MigrationState(EventSink events, BooleanSupplier eventsOn) {
        this.events = events;
        this.eventsOn = eventsOn;
    }

    public MigrationStatus get() {
        return status.get();
    }

    /** Changes {@code from} → {@code to}; false (and no event) if the status was not {@code from}. */
    public boolean cas(MigrationStatus from, MigrationStatus to) {
        if (!status.compareAndSet(from, to)) {
            return false;
        }
        if (eventsOn.getAsBoolean()) {
            events.emit("MIGRATION", Map.of("status", to.qmpName));
        }
        return true;
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
