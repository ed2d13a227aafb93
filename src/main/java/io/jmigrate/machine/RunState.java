package io.jmigrate.machine;

/**
 * The VM run states of QEMU's {@code RunState} that jmigrate uses, with their QMP names
 * ({@code query-status} {@code status}).
 */
public enum RunState {
    /** Started with -S and never run. */
    PRELAUNCH("prelaunch"),
    RUNNING("running"),
    /** Stopped by {@code stop}. */
    PAUSED("paused"),
    /** Waiting for or loading an incoming migration. */
    INMIGRATE("inmigrate"),
    /** Stopped by the migration thread at switchover, while the final state is sent. */
    FINISH_MIGRATE("finish-migrate"),
    /** The source after a completed migration. */
    POSTMIGRATE("postmigrate");

    public final String qmpName;

    RunState(String qmpName) {
        this.qmpName = qmpName;
    }

    public boolean isRunning() {
        return this == RUNNING;
    }

    /** The state for a QMP/globalstate name, or null. */
    public static RunState fromQmpName(String name) {
        for (RunState s : values()) {
            if (s.qmpName.equals(name)) {
                return s;
            }
        }
        return null;
    }
}
