package io.jmigrate.savevm;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

import java.nio.ByteBuffer;

/**
 * The device contract, QEMU's {@code SaveVMHandlers} (include/migration/register.h, PROTOCOL.md
 * §3.1), split by direction so that neither side stubs the other: a device registers a
 * {@link Save} in the source's registry and a {@link Load} in the destination's (one object may
 * implement both). Within each side the hooks are grouped by the thread they run on. Section
 * headers and footers are written by the driver, never by a handler.
 *
 * <h2>Where a device registers</h2>
 * The machine ({@code io.jmigrate.machine.Vm}) builds a fresh {@link SaveStateRegistry} per
 * migration and direction from its device list: one entry per device, with idstr, instance id,
 * version and a factory for each side's handlers.
 *
 * <h2>Errors</h2>
 * A hook fails by throwing a {@link MigrationException} that names the device and what went
 * wrong. The first error of a migration wins; it fails the migration on both sides, the source
 * resumes, the destination never runs.
 *
 * <h2>Cleanup</h2>
 * {@link Save#saveCleanup} and {@link Load#loadCleanup} run after success, failure and
 * cancellation alike, and <em>may run without the matching setup</em> (a migration that failed
 * before reaching it): they must be idempotent and cope with nothing set up.
 */
public sealed interface SaveVmHandlers permits SaveVmHandlers.Save, SaveVmHandlers.Load {

    /** Source side. Created per outgoing migration. */
    non-sealed interface Save extends SaveVmHandlers {

        /** True for iterable devices (START/PART/END, e.g. RAM); false for one FULL section at switchover. */
        boolean isIterable();

        // ---- mig/src/main, VM running ---------------------------------------------------------

        /** Body of the START section (iterable devices). */
        default void saveSetup(QemuFileWriter w) {
        }

        /** Bytes this device still has to send, cheaply estimated ({@code state_pending_estimate}). */
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
         * Body of one PART section. Stops when {@code limit} says the rate budget is spent.
         * Returns true when this pass has nothing left to send.
         */
        default boolean saveIterate(QemuFileWriter w, RateLimit limit) {
            return true;
        }

        // ---- mig/src/main, VM stopped (after SWITCHOVER_START, if sent) ------------------------

        /**
         * Body of the END section (iterable devices). No rate limit. Runs while this and every
         * other device's {@link #saveCompletePrecopyThread} may be running.
         */
        default void saveComplete(QemuFileWriter w) {
        }

        /**
         * Whether the device writes a FULL section ({@link #saveState}); by default the
         * non-iterable devices. An iterable device with a {@code save_state} hook as well (VFIO:
         * its config) returns true and gets both its END and its FULL section.
         */
        default boolean hasSaveState() {
            return !isIterable();
        }

        /** Body of the FULL section ({@link #hasSaveState} devices), after every save thread was joined. */
        default void saveState(QemuFileWriter w) {
        }

        /**
         * The device's entry in the vmdesc JSON {@code devices} array (PROTOCOL.md §1.7) without
         * {@code name} and {@code instance_id}, which the driver adds; null if it has none
         * (iterable devices).
         */
        default ObjectNode vmdesc() {
            return null;
        }

        // ---- mig/src/save_<idstr>, VM stopped, in parallel with the END sections ---------------

        /**
         * Whether this device has the save-thread hook. The driver spawns the thread only when
         * multifd device state is in effect ({@link SaveVmOptions#multifdDeviceState()}); a
         * device must then send in {@link #saveComplete} what it would otherwise send here.
         */
        default boolean hasCompletePrecopyThread() {
            return false;
        }

        /**
         * QEMU's {@code save_complete_precopy_thread}: sends the device's switchover state as
         * device-state packets through {@code out} (each call one packet, copied, on any channel,
         * in any order). Check {@code abort} between chunks and stop with
         * {@link AbortFlag#check}. Returning normally means every packet was queued; throwing
         * fails the migration and aborts the other save threads.
         */
        default void saveCompletePrecopyThread(DeviceStateOutput out, AbortFlag abort) {
            throw new MigrationException(Category.INTERNAL, "this device has no save thread");
        }

        // ---- mig/src/main, at the end (success, failure, cancel) -------------------------------

        /** Releases what setup took. May run without {@link #saveSetup}; must be idempotent. */
        default void saveCleanup() {
        }
    }

    /** Destination side. Created per incoming migration, before the multifd receiver starts. */
    non-sealed interface Load extends SaveVmHandlers {

        // ---- mig/dst/main ----------------------------------------------------------------------

        /**
         * Called for every device once the stream header is checked, before the first section
         * ({@code load_setup}). {@link #loadStateBuffer} may already have been called: state
         * that buffers need must exist from construction.
         */
        default void loadSetup() {
        }

        /**
         * Loads one section body of {@code type} (START, PART, END or FULL) written with
         * {@code versionId}. The driver has checked the version against the registered one.
         */
        void loadState(QemuFileReader r, SectionType type, int versionId);

        /**
         * MIG_CMD_SWITCHOVER_START arrived: every pre-switchover main-channel byte was loaded,
         * so the device may now consume what reached it over multifd. A device that loads on a
         * thread of its own starts it here with {@code threads}.
         */
        default void switchoverStart(LoadThreads threads) {
        }

        /**
         * The main stream reached EOF and every load thread has finished: final checks. A
         * device whose state is incomplete fails here.
         */
        default void loadComplete() {
        }

        /**
         * Whether this device must acknowledge before the source may switch over (QEMU's
         * {@code switchover_ack_needed}, for the switchover-ack capability). Not used yet.
         */
        default boolean switchoverAckNeeded() {
            return false;
        }

        /** Releases everything; may run without {@link #loadSetup}; must be idempotent. */
        default void loadCleanup() {
        }

        // ---- any thread (query-migrate) -------------------------------------------------------

        /**
         * Device-specific counters for {@code query-migrate}'s {@code x-jmigrate-device-state}
         * (e.g. packets that arrived out of order); names in QMP style. Empty by default.
         */
        default java.util.Map<String, Object> loadStats() {
            return java.util.Map.of();
        }

        // ---- mig/dst/recv_N, no lock held, concurrently from several channels ------------------

        /**
         * One device-state packet payload for this device ({@code load_state_buffer}), from a
         * multifd receive thread. Packets of one device arrive on any channel in any order.
         * {@code data} is valid only during the call: copy what is kept. Throwing fails the
         * incoming migration.
         */
        default void loadStateBuffer(ByteBuffer data) {
            throw new MigrationException(Category.PROTOCOL, "this device takes no state over multifd");
        }
    }

    /** A rate budget checked by iterating handlers ({@code migration_rate_exceeded}). */
    @FunctionalInterface
    interface RateLimit {
        RateLimit NONE = () -> false;

        boolean exceeded();
    }

    /**
     * The abort flag of a thread pool ({@code multifd_device_state_save_thread_should_exit},
     * or a load thread's {@code should_quit}); set on the first error or a cancel.
     */
    @FunctionalInterface
    interface AbortFlag {
        AbortFlag NEVER = () -> false;

        boolean isSet();

        /** Throws CANCELLED "operation cancelled" naming {@code where} if the flag is set. */
        default void check(String where) {
            if (isSet()) {
                throw new MigrationException(Category.CANCELLED, where + ": operation cancelled");
            }
        }
    }

    /**
     * Where a save thread puts its device-state packets ({@code multifd_queue_device_state},
     * PROTOCOL.md §2.10), bound to the device's idstr and instance id. Thread safe; copies
     * {@code data}'s remaining bytes; blocks until a channel is idle; throws the migration's
     * first error if the channels failed.
     */
    @FunctionalInterface
    interface DeviceStateOutput {
        void queue(ByteBuffer data);

        /**
         * Queues {@code data} (position to limit) without a copy where the output can take it
         * over (a direct buffer to multifd): the caller must not touch {@code data} again.
         * Returns a buffer the caller may reuse (free, cleared, of any capacity), or null. The
         * default copies, and returns {@code data} itself, free again.
         */
        default ByteBuffer queueOwned(ByteBuffer data) {
            queue(data);
            return data.clear();
        }
    }

    /** Starts a load thread {@code mig/dst/load_<device>} in the destination's pool ({@code qemu_loadvm_start_load_thread}). */
    @FunctionalInterface
    interface LoadThreads {
        void start(String device, LoadTask task);
    }

    /**
     * The body of a load thread. Check {@code shouldQuit} after every wait; throwing records the
     * migration's error (the first one wins), which fails the load once the stream reached EOF.
     */
    @FunctionalInterface
    interface LoadTask {
        void run(AbortFlag shouldQuit) throws Exception;
    }
}
