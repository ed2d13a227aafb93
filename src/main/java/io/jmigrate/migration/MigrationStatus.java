package io.jmigrate.migration;

/**
 * QEMU's {@code MigrationStatus} (qapi/migration.json), with the QMP names. Changed only by
 * compare-and-swap in {@link MigrationState}; every change emits a MIGRATION event.
 *
 * <pre>
 *  none → setup → active → device → completed
 *           │        │        │
 *           └────────┴────────┴─→ cancelling → cancelled
 *           └────────┴────────┴─→ failed
 * </pre>
 */
public enum MigrationStatus {
    NONE("none"),
    SETUP("setup"),
    CANCELLING("cancelling"),
    CANCELLED("cancelled"),
    ACTIVE("active"),
    POSTCOPY_ACTIVE("postcopy-active"),
    POSTCOPY_PAUSED("postcopy-paused"),
    POSTCOPY_RECOVER_SETUP("postcopy-recover-setup"),
    POSTCOPY_RECOVER("postcopy-recover"),
    COMPLETED("completed"),
    FAILED("failed"),
    COLO("colo"),
    PRE_SWITCHOVER("pre-switchover"),
    DEVICE("device"),
    WAIT_UNPLUG("wait-unplug");

    public final String qmpName;

    MigrationStatus(String qmpName) {
        this.qmpName = qmpName;
    }

    /** Setup, active, device, cancelling…: a migration is running. */
    public boolean isActive() {
        return switch (this) {
            case SETUP, ACTIVE, DEVICE, CANCELLING, PRE_SWITCHOVER, WAIT_UNPLUG, POSTCOPY_ACTIVE, POSTCOPY_PAUSED,
                 POSTCOPY_RECOVER_SETUP, POSTCOPY_RECOVER, COLO -> true;
            case NONE, CANCELLED, COMPLETED, FAILED -> false;
        };
    }
}
