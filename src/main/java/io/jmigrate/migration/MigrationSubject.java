package io.jmigrate.migration;

import io.jmigrate.memory.RamBlock;
import io.jmigrate.ram.RamSaver;
import io.jmigrate.ram.RamStats;
import io.jmigrate.savevm.SaveStateRegistry;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SaveVmOptions;
import io.jmigrate.savevm.StreamConfiguration;

import java.util.List;
import java.util.function.LongConsumer;

/**
 * The narrow view of a VM that the migration core needs (the machine implements it; migration
 * never imports the machine). Run-state changes happen through these calls so the VM emits its
 * STOP/RESUME events.
 */
public interface MigrationSubject {

    /** Guest RAM blocks, in migration order. */
    List<RamBlock> ramBlocks();

    /**
     * A fresh device list for one outgoing migration: {@code ram} (iterable) first, then the
     * non-iterable devices. {@code options} says how device state travels; {@code onSync} receives the dirty-sync count after every RAM sync;
     * {@code ramMode} says how RAM pages travel (main channel, or multifd).
     */
    SaveStateRegistry<SaveVmHandlers.Save> saveRegistry(SaveVmOptions options, RamStats stats, LongConsumer onSync,
                                                        RamSaver.Mode ramMode);

    /** The VM's UUID (16 bytes, all zero without {@code --uuid}), as multifd init packets carry it. */
    default byte[] uuid() {
        return new byte[16];
    }

    /**
     * The process's {@code --object}/{@code object-add} objects that {@code tls-creds} and
     * {@code tls-authz} name (none by default).
     */
    default io.jmigrate.channel.TlsObjects tlsObjects() {
        return new io.jmigrate.channel.TlsObjects();
    }

    /** A fresh device list for one incoming migration; it exists before the multifd receiver starts. */
    SaveStateRegistry<SaveVmHandlers.Load> loadRegistry(SaveVmOptions options);

    /** The configuration section (machine type etc.). */
    StreamConfiguration configuration();

    /** The machine type's compat property {@code send-switchover-start}. */
    boolean sendSwitchoverStart();

    /**
     * Migration property {@code multifd-flush-after-each-section} (legacy per-section multifd
     * sync), for the multifd wiring.
     */
    default boolean multifdFlushAfterEachSection() {
        return false;
    }

    /** True while the guest runs (a live migration) rather than being paused. */
    boolean isRunning();

    /** Stops the vCPUs for switchover (run state finish-migrate); returns when RAM is quiescent. */
    void stopForMigration();

    /** After a failed or cancelled outgoing migration: back to the run state before it stopped. */
    void resumeAfterFailedMigration();

    /** The outgoing migration completed: run state postmigrate. */
    void outgoingCompleted();

    /** An incoming migration is about to load: run state inmigrate. */
    void incomingStarted();

    /** The stream was loaded: resume, stay paused (-S), or follow globalstate's run state. */
    void incomingCompleted();

    /**
     * Keeps the vCPUs from running until {@code done} completes: the RAM digest reads guest
     * memory after the migration reported {@code completed}, so {@code cont} (and the
     * destination's automatic resume) wait for it. A subject without vCPUs ignores it.
     */
    default void holdRunUntil(java.util.concurrent.Future<?> done) {
    }

    /**
     * The state digest of every device that reports one (idstr to SHA-256 hex), for
     * {@code x-jmigrate-query-digest}; called with the vCPUs stopped.
     */
    default java.util.Map<String, String> deviceDigests() {
        return java.util.Map.of();
    }

    /**
     * The bytes the VFIO devices moved in the current (or last) outgoing migration, for
     * query-migrate's {@code vfio: {transferred}}; -1 when the VM has no VFIO device.
     */
    default long vfioTransferred() {
        return -1;
    }

    /** Loading failed: the guest stays stopped. */
    void incomingFailed();
}
