package io.jmigrate.savevm;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileReader;

import java.util.HashMap;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * The destination side of the savevm stream ({@code qemu_loadvm_state}), a visitor of the
 * shared {@link MainStreamWalker}: checks the header, hands the configuration to its checker, dispatches every section to its handler by
 * (idstr, instance) for START/FULL and by section id for PART/END, checks every footer, handles
 * commands, stops at EOF and drains the vmdesc trailer. Runs on {@code mig/dst/main}.
 */
public final class LoadVmDispatcher {
    /** Commands the destination answers on the return path. */
    public interface ReturnPath {
        /** OPEN_RETURN_PATH arrived. */
        void open();

        /** PING(value) arrived: reply PONG(value). */
        void pong(int value);

        /** MIG_CMD_SWITCHOVER_START arrived (before the devices' hooks run); for stats. */
        default void switchoverStart() {
        }
    }

    private final SaveStateRegistry<SaveVmHandlers.Load> registry;
    private final StreamConfiguration configuration;
    private final ReturnPath returnPath;
    private final Map<Integer, SaveStateEntry<SaveVmHandlers.Load>> bySectionId = new HashMap<>();
    private String vmdesc;
    private boolean sawSwitchoverStart;

    private final SaveVmHandlers.LoadThreads loadThreads;

    public LoadVmDispatcher(SaveStateRegistry<SaveVmHandlers.Load> registry, StreamConfiguration configuration,
                            ReturnPath returnPath) {
        this(registry, configuration, returnPath, (device, task) -> {
            throw new MigrationException(Category.INTERNAL, "device " + device + " wants a load thread, but this "
                    + "destination has no load-thread pool");
        });
    }

    /**
     * @param loadThreads the destination's load-thread pool, handed to every device at
     *                    MIG_CMD_SWITCHOVER_START
     */
    public LoadVmDispatcher(SaveStateRegistry<SaveVmHandlers.Load> registry, StreamConfiguration configuration,
                            ReturnPath returnPath, SaveVmHandlers.LoadThreads loadThreads) {
        this.registry = registry;
        this.configuration = configuration;
        this.returnPath = returnPath;
        this.loadThreads = loadThreads;
    }

    /** Calls every device's {@code loadCleanup}; safe without setup and more than once. */
    public void cleanup() {
        for (SaveStateEntry<SaveVmHandlers.Load> e : registry.entries()) {
            try {
                e.handlers().loadCleanup();
            } catch (RuntimeException ignored) {
                // cleanup reports nothing: the first error was already recorded
            }
        }
    }

    /** The vmdesc JSON the source sent after EOF, or null. */
    public String vmdesc() {
        return vmdesc;
    }

    /** Loads the whole stream (no load threads to wait for). */
    public void load(QemuFileReader r, BooleanSupplier aborted) {
        load(r, aborted, () -> { });
    }

    public boolean sawSwitchoverStart() {
        return sawSwitchoverStart;
    }

    /**
     * Loads the whole stream up to EOF and the vmdesc trailer; {@code aborted} is polled between
     * sections. {@code atEof} runs when EOF is read, before the devices' {@code loadComplete}
     * (the caller waits for its load threads there).
     */
    public void load(QemuFileReader r, BooleanSupplier aborted, Runnable atEof) {
        new MainStreamWalker().walk(r, new MainStreamWalker.Visitor() {
            @Override
            public void afterHeader(QemuFileReader r) {
                for (SaveStateEntry<SaveVmHandlers.Load> e : registry.entries()) {
                    e.handlers().loadSetup();
                }
            }

            @Override
            public void beforeRecord(QemuFileReader r, long at) {
                if (aborted.getAsBoolean()) {
                    throw new MigrationException(Category.CANCELLED, "incoming migration cancelled at byte offset "
                            + at + " of " + r.name());
                }
            }

            @Override
            public void configuration(QemuFileReader r, long at) {
                if (configuration != null) {
                    configuration.load(r);
                }
            }

            @Override
            public String section(QemuFileReader r, SectionHeader h, SectionHeader start) {
                SectionType t = h.type();
                long at = h.offset();
                SaveStateEntry<SaveVmHandlers.Load> e;
                int version;
                if (t.hasFullHeader()) {
                    e = registry.find(h.idstr(), h.instanceId());
                    if (e == null) {
                        throw r.fail(Category.MISMATCH, at, "Unknown savevm section or instance '" + h.idstr() + "' "
                                + h.instanceId() + ": this VM has " + registry.entries().stream()
                                .map(SaveStateEntry::describe).toList());
                    }
                    if (h.versionId() > e.versionId()) {
                        throw r.fail(Category.MISMATCH, at, "savevm: unsupported version " + h.versionId()
                                + " for " + e.describe() + ", this side supports up to " + e.versionId());
                    }
                    if (t == SectionType.START) {
                        bySectionId.put(h.sectionId(), e);
                    }
                    version = h.versionId();
                } else {
                    e = bySectionId.get(h.sectionId());
                    version = e.versionId();
                }
                e.handlers().loadState(r, t, version);
                return t + " section " + h.sectionId() + " " + e.describe();
            }

            @Override
            public void command(QemuFileReader r, Command c, long at) {
                handleCommand(r, c, at);
            }

            @Override
            public void eof(QemuFileReader r, long at) {
                atEof.run();
                for (SaveStateEntry<SaveVmHandlers.Load> e : registry.entries()) {
                    e.handlers().loadComplete();
                }
                if (r.peekU8() == SectionType.VMDESCRIPTION.wire) {
                    r.readU8("vmdesc marker");
                    vmdesc = StreamFraming.readVmdesc(r);
                }
            }
        });
    }

    private void handleCommand(QemuFileReader r, Command c, long at) {
        switch (c.command()) {
            case OPEN_RETURN_PATH -> {
                if (returnPath == null) {
                    throw r.fail(Category.PROTOCOL, at, "MIG_CMD_OPEN_RETURN_PATH on a stream without a return path");
                }
                returnPath.open();
            }
            case PING -> {
                byte[] p = c.payload();
                int v = ((p[0] & 0xff) << 24) | ((p[1] & 0xff) << 16) | ((p[2] & 0xff) << 8) | (p[3] & 0xff);
                if (returnPath != null) {
                    returnPath.pong(v);
                }
            }
            case SWITCHOVER_START -> {
                sawSwitchoverStart = true;
                if (returnPath != null) {
                    returnPath.switchoverStart();
                }
                for (SaveStateEntry<SaveVmHandlers.Load> e : registry.entries()) {
                    e.handlers().switchoverStart(loadThreads);
                }
            }
            default -> throw r.fail(Category.PROTOCOL, at, c.command().qemuName()
                    + " is not supported by this destination (postcopy, COLO and packaged streams are not)");
        }
    }
}
