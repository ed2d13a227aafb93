package io.jmigrate.machine;

import io.jmigrate.ram.RamSaver;
import io.jmigrate.ram.RamStats;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SaveVmOptions;

import java.util.function.Function;
import java.util.function.LongConsumer;

/**
 * One device of a VM, as the migration sees it: its {@code SaveStateEntry} identity and a
 * factory for each direction's handlers. {@link Vm} keeps its devices in one list, in
 * registration (= wire) order, and builds a fresh registry from it for every outgoing and every
 * incoming migration; adding a device is adding one entry to that list.
 *
 * <p>A device with state of its own (the blob device, a VFIO device) keeps it in the device
 * object; the handlers made per migration read or fill it.
 */
public interface Device {
    /** Section idstr, 1..255 bytes (e.g. {@code ram}, {@code timer}, {@code 0000:00:05.0/vfio}). */
    String idstr();

    /** Instance id of the section (0 for a single device of its idstr). */
    int instanceId();

    /** Newest section version written and accepted. */
    int versionId();

    /** Source handlers for one outgoing migration. */
    SaveVmHandlers.Save saveHandlers(SaveContext ctx);

    /** Destination handlers for one incoming migration. */
    SaveVmHandlers.Load loadHandlers(LoadContext ctx);

    /**
     * A digest of the device's state (SHA-256 hex) for {@code x-jmigrate-query-digest}, or
     * null for devices whose state is not reported (RAM has its own; timer, globalstate).
     * Called with the VM stopped.
     */
    default String stateDigest() {
        return null;
    }

    /** The vCPUs started ({@code true}) or stopped: a device that changes its state while the VM runs follows. */
    default void runStateChanged(boolean running) {
    }

    /** Releases the device's resources when the VM exits. */
    default void close() {
    }

    /**
     * What a device's source handlers may need.
     *
     * @param options how device state travels
     * @param stats   RAM counters (the RAM device only)
     * @param onSync  RAM dirty-sync callback (the RAM device only)
     * @param ramMode how RAM pages travel (the RAM device only)
     */
    record SaveContext(SaveVmOptions options, RamStats stats, LongConsumer onSync, RamSaver.Mode ramMode) {
    }

    /** What a device's destination handlers may need. */
    record LoadContext(SaveVmOptions options) {
    }

    /** A device without state of its own. */
    static Device of(String idstr, int instanceId, int versionId, Function<SaveContext, SaveVmHandlers.Save> save,
                     Function<LoadContext, SaveVmHandlers.Load> load) {
        return new Device() {
            @Override
            public String idstr() {
                return idstr;
            }

            @Override
            public int instanceId() {
                return instanceId;
            }

            @Override
            public int versionId() {
                return versionId;
            }

            @Override
            public SaveVmHandlers.Save saveHandlers(SaveContext ctx) {
                return save.apply(ctx);
            }

            @Override
            public SaveVmHandlers.Load loadHandlers(LoadContext ctx) {
                return load.apply(ctx);
            }
        };
    }
}
