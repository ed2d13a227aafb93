package io.jmigrate.savevm;

import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

/**
 * The device contract, QEMU's {@code SaveVMHandlers} (include/migration/register.h), methods
 * grouped by the thread they run on. A device is either <em>iterable</em> (sends START, PART…,
 * END sections while the VM runs, e.g. RAM) or not (one FULL section at switchover, e.g. a VMSD
 * device). Section headers and footers are written by the driver, never by a handler.
 *
 * <p>{@link #cleanup} may run without {@link #saveSetup} (a migration that failed early).
 */
public interface SaveVmHandlers {

    /** True for iterable devices (START/PART/END); false for FULL-section devices. */
    boolean isIterable();

    // ---- source, migration thread mig/src/main --------------------------------------------------

    /** Body of the START section (iterable devices). */
    default void saveSetup(QemuFileWriter w) {
    }

    /**
     * Bytes this device still has to send, cheaply estimated ({@code state_pending_estimate}).
     */
    default long pendingEstimate() {
        return 0;
    }

    /**
     * Bytes still to send, exactly ({@code state_pending_exact}); may synchronise dirty state,
     * which is what starts a new pass for RAM.
     */
    default long pendingExact() {
        return pendingEstimate();
    }

    /**
     * Body of one PART section. Stops when {@code limit} says the rate budget is spent. Returns
     * true when this pass has nothing left to send.
     */
    default boolean saveIterate(QemuFileWriter w, RateLimit limit) {
        return true;
    }

    /** Body of the END section, with the VM stopped (iterable devices). No rate limit. */
    default void saveComplete(QemuFileWriter w) {
    }

    /** Body of the FULL section, with the VM stopped (non-iterable devices). */
    default void saveState(QemuFileWriter w) {
    }

    /**
     * The device's entry in the vmdesc JSON {@code devices} array (PROTOCOL.md §1.7) without
     * {@code name} and {@code instance_id}, which the driver adds; null if it has none
     * (iterable devices).
     */
    default com.fasterxml.jackson.databind.node.ObjectNode vmdesc() {
        return null;
    }

    /** Releases what setup took; also runs after failures and cancellation. */
    default void cleanup() {
    }

    // ---- destination, loader thread mig/dst/main -----------------------------------------------

    /**
     * Loads one section body of {@code type} (START, PART, END or FULL) written with
     * {@code versionId}. The driver has checked the version against the registered one.
     */
    void loadState(QemuFileReader r, SectionType type, int versionId);

    /** MIG_CMD_SWITCHOVER_START arrived: every pre-switchover main-channel byte was loaded. */
    default void switchoverStart() {
    }

    /** The whole stream loaded (EOF reached): final checks. */
    default void loadComplete() {
    }

    /** A rate budget checked by iterating handlers ({@code migration_rate_exceeded}). */
    @FunctionalInterface
    interface RateLimit {
        RateLimit NONE = () -> false;

        boolean exceeded();
    }
}
