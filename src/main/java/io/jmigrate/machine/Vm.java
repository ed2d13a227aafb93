package io.jmigrate.machine;

import io.jmigrate.common.EventSink;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.RamBlock;
import io.jmigrate.memory.RamDigest;
import io.jmigrate.migration.MigrationSubject;
import io.jmigrate.ram.RamFlags;
import io.jmigrate.ram.RamLoader;
import io.jmigrate.ram.RamSaver;
import io.jmigrate.ram.RamStats;
import io.jmigrate.savevm.SaveStateRegistry;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SaveVmOptions;
import io.jmigrate.savevm.StreamConfiguration;

import java.lang.foreign.Arena;
import java.util.List;
import java.util.Map;
import java.util.function.LongConsumer;

/**
 * One VM: guest RAM, the vCPU workload, the devices of its machine type ({@code ram},
 * {@code timer}, {@code globalstate}), and its run state. Run-state changes emit STOP and RESUME.
 * All run-state methods are synchronized on the VM.
 */
public final class Vm implements MigrationSubject, AutoCloseable {
    /** The globalstate layout jmigrate writes and reads (QEMU 10.0's; same size as 7.2's). */
    private static final io.jmigrate.vmstate.VmStateDescription GLOBALSTATE = GlobalStateVmsd.Layout.QEMU_10_0.vmsd();
    private final VmConfig config;
    private final Arena arena = Arena.ofShared();
    private final List<RamBlock> blocks;
    private final Workload workload;
    private final List<Device> devices;
    private volatile EventSink events = EventSink.NONE;
    private volatile RunState state;
    /** Set by a migration whose RAM digest is still running; start() waits for it. */
    private volatile java.util.concurrent.Future<?> runHold;
    /** Run state when the migration thread stopped the VM (restored on failure, sent in globalstate). */
    private RunState stateBeforeMigration;
    /** Run state the incoming globalstate section carried, or null. */
    private volatile String incomingRunState;
    private volatile WorkloadChecker.Result incomingCheck;
    private final long startNanos = System.nanoTime();
    /** {@code --object} and QMP {@code object-add} objects (TLS credentials, authz). */
    private final io.jmigrate.channel.TlsObjects objects = new io.jmigrate.channel.TlsObjects();
    private long runningNanos;
    private volatile JitWarmUp jitWarmUp = JitWarmUp.off();
    private long runningSince = -1;

    public Vm(VmConfig config, boolean incoming) {
        this.config = config;
        String idstr = config.machine().ramBlockName();
        RamBlock ram = RamBlock.create(idstr, config.memoryBytes(), RamBlock.DEFAULT_PAGE_SIZE,
                config.memoryBackend(), arena);
        this.blocks = List.of(ram);
        this.workload = config.workload() == null ? null : new Workload(config.workload(), ram);
        this.devices = List.copyOf(machineDevices());
        if (incoming) {
            state = RunState.INMIGRATE;
        } else if (config.startPaused()) {
            state = RunState.PRELAUNCH;
        } else {
            state = RunState.PRELAUNCH;
            start();
        }
    }

    @Override
    public io.jmigrate.channel.TlsObjects tlsObjects() {
        return objects;
    }

    /** {@code --object TYPE,id=ID,...} (QEMU's -object syntax; commas in values doubled). */
    public void objectAdd(String commandLine) {
        objects.add(io.jmigrate.channel.TlsObject.parse(commandLine));
    }

    /** QMP {@code object-add}: {@code props} in keyval form (lists as {@code rules.N.key}). */
    public void objectAdd(String qomType, String id, java.util.Map<String, String> props) {
        objects.add(io.jmigrate.channel.TlsObject.create(qomType, id, props));
    }

    /** QMP {@code object-del}. */
    public void objectDel(String id) {
        objects.delete(id);
    }

    public VmConfig config() {
        return config;
    }

    public void setEventSink(EventSink events) {
        this.events = events == null ? EventSink.NONE : events;
    }

    public RunState runState() {
        return state;
    }

    public Workload workload() {
        return workload;
    }

    @Override
    public List<RamBlock> ramBlocks() {
        return blocks;
    }

    public String ramDigest() {
        return RamDigest.sha256(blocks);
    }

    // ---- run state ------------------------------------------------------------------------------

    @Override
    public synchronized void holdRunUntil(java.util.concurrent.Future<?> done) {
        runHold = done;
    }

    private void start() {
        java.util.concurrent.Future<?> hold = runHold;
        if (hold != null) {
            try {
                hold.get(); // the RAM digest after a migration: it must see RAM as it was at completion
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new MigrationException(Category.CANCELLED, "interrupted while waiting for the RAM digest");
            } catch (java.util.concurrent.ExecutionException e) {
                // the digest failed; it reads memory only, so running is safe
            }
            runHold = null;
        }
        state = RunState.RUNNING;
        runningSince = System.nanoTime();
        if (workload != null) {
            workload.resume();
        }
        for (Device d : devices) {
            d.runStateChanged(true);
        }
        events.emit("RESUME", Map.of());
    }

    private void pauseGuest(RunState next) {
        if (workload != null) {
            workload.pause();
        }
        for (Device d : devices) {
            d.runStateChanged(false);
        }
        if (runningSince >= 0) {
            runningNanos += System.nanoTime() - runningSince;
            runningSince = -1;
        }
        state = next;
        events.emit("STOP", Map.of());
    }

    /** QMP {@code stop}. */
    public synchronized void stop() {
        if (state == RunState.RUNNING) {
            pauseGuest(RunState.PAUSED);
        } else if (state == RunState.PRELAUNCH) {
            state = RunState.PAUSED;
        }
    }

    /** QMP {@code cont}. */
    public synchronized void cont() {
        switch (state) {
            case RUNNING -> { }
            case INMIGRATE -> throw new MigrationException(Category.STATE,
                    "Guest is waiting for an incoming migration");
            case FINISH_MIGRATE -> throw new MigrationException(Category.STATE,
                    "the VM is being migrated; wait for the migration to finish or cancel it");
            case PAUSED, PRELAUNCH, POSTMIGRATE -> start();
        }
    }

    @Override
    public boolean isRunning() {
        return state == RunState.RUNNING;
    }

    @Override
    public synchronized void stopForMigration() {
        stateBeforeMigration = state;
        if (state == RunState.RUNNING) {
            pauseGuest(RunState.FINISH_MIGRATE);
        } else {
            state = RunState.FINISH_MIGRATE;
        }
    }

    @Override
    public synchronized void resumeAfterFailedMigration() {
        if (state != RunState.FINISH_MIGRATE) {
            return; // failed before switchover: nothing was stopped
        }
        RunState prev = stateBeforeMigration == null ? RunState.PAUSED : stateBeforeMigration;
        if (prev == RunState.RUNNING) {
            start();
        } else {
            state = prev;
        }
    }

    @Override
    public synchronized void outgoingCompleted() {
        state = RunState.POSTMIGRATE;
    }

    @Override
    public synchronized void incomingStarted() {
        state = RunState.INMIGRATE;
        incomingRunState = null;
    }

    /**
     * The workload check made when the incoming migration finished, before the vCPUs resumed
     * (null if there was no incoming migration or no workload).
     */
    public WorkloadChecker.Result incomingWorkloadCheck() {
        return incomingCheck;
    }

    @Override
    public synchronized void incomingCompleted() {
        if (workload != null) {
            List<WorkloadChecker.Result> rs = workload.check();
            incomingCheck = rs.stream().filter(r -> !r.ok()).findFirst().orElse(rs.getFirst());
        }
        String src = incomingRunState;
        boolean sourceRunning = src == null || RunState.RUNNING.qmpName.equals(src);
        if (sourceRunning && !config.startPaused()) {
            start();
        } else if (sourceRunning) {
            state = RunState.PAUSED;
        } else {
            RunState s = RunState.fromQmpName(src);
            state = s == null || s == RunState.INMIGRATE || s == RunState.FINISH_MIGRATE ? RunState.PAUSED : s;
        }
    }

    @Override
    public synchronized void incomingFailed() {
        state = RunState.INMIGRATE;
    }

    // ---- migration wiring -----------------------------------------------------------------------

    /**
     * The machine's devices in registration (wire) order: {@code ram}, {@code timer},
     * {@code globalstate}, then the {@code --device} devices. Every migration's registries are
     * built from this list.
     */
    private List<Device> machineDevices() {
        java.util.ArrayList<Device> l = new java.util.ArrayList<>();
        l.add(Device.of(RamFlags.IDSTR, 0, RamFlags.VERSION,
                c -> new RamSaver(blocks, c.stats(), c.onSync(), c.ramMode()), c -> new RamLoader(blocks)));
        l.add(Device.of(TimerVmsd.IDSTR, TimerVmsd.INSTANCE_ID, TimerVmsd.VMSD.versionId(),
                c -> InteropSections.vmsdDevice(TimerVmsd.VMSD, this::timerValues, v -> { }),
                c -> InteropSections.vmsdDevice(TimerVmsd.VMSD, this::timerValues, v -> { })));
        l.add(Device.of(GlobalStateVmsd.IDSTR, GlobalStateVmsd.INSTANCE_ID, GLOBALSTATE.versionId(),
                c -> InteropSections.vmsdDevice(GLOBALSTATE, () -> GlobalStateVmsd.values(
                        GlobalStateVmsd.Layout.QEMU_10_0, globalRunState()), v -> { }),
                c -> InteropSections.vmsdDevice(GLOBALSTATE, () -> GlobalStateVmsd.values(
                        GlobalStateVmsd.Layout.QEMU_10_0, globalRunState()),
                        v -> incomingRunState = GlobalStateVmsd.runState(v))));
        for (BlobSpec b : config.blobs()) {
            l.add(new BlobDevice(b));
        }
        for (VfioEmuSpec v : config.vfios()) {
            l.add(new VfioPciDevice(v, config.machine(), (event, data) -> events.emit(event, data)));
        }
        return l;
    }

    /** The devices, in registration order. */
    public List<Device> devices() {
        return devices;
    }

    /** The VFIO devices ({@code --device vfio-emu}). */
    public List<VfioPciDevice> vfioDevices() {
        return devices.stream().filter(d -> d instanceof VfioPciDevice).map(d -> (VfioPciDevice) d).toList();
    }

    private VfioPciDevice peripheral(String path) {
        String prefix = "/machine/peripheral/";
        for (VfioPciDevice d : vfioDevices()) {
            if (path.equals(prefix + d.id())) {
                return d;
            }
        }
        throw new MigrationException(MigrationException.Category.CONFIG, "Device '" + path + "' not found");
    }

    /** QMP {@code qom-set} on {@code /machine/peripheral/<id>} (VFIO device properties). */
    public void qomSet(String path, String property, String value) {
        peripheral(path).qomSet(property, value);
    }

    /** QMP {@code qom-get} on {@code /machine/peripheral/<id>}. */
    public Object qomGet(String path, String property) {
        return peripheral(path).qomGet(property);
    }

    @Override
    public long vfioTransferred() {
        List<VfioPciDevice> v = vfioDevices();
        return v.isEmpty() ? -1 : v.stream().mapToLong(d -> d.migration().transferred()).sum();
    }

    @Override
    public SaveStateRegistry<SaveVmHandlers.Save> saveRegistry(SaveVmOptions options, RamStats stats,
                                                               LongConsumer onSync, RamSaver.Mode ramMode) {
        Device.SaveContext ctx = new Device.SaveContext(options, stats, onSync, ramMode);
        SaveStateRegistry<SaveVmHandlers.Save> reg = new SaveStateRegistry<>();
        for (Device d : devices) {
            reg.register(d.idstr(), d.instanceId(), d.versionId(), d.saveHandlers(ctx));
        }
        return reg;
    }

    @Override
    public SaveStateRegistry<SaveVmHandlers.Load> loadRegistry(SaveVmOptions options) {
        Device.LoadContext ctx = new Device.LoadContext(options);
        SaveStateRegistry<SaveVmHandlers.Load> reg = new SaveStateRegistry<>();
        for (Device d : devices) {
            reg.register(d.idstr(), d.instanceId(), d.versionId(), d.loadHandlers(ctx));
        }
        return reg;
    }

    private synchronized String globalRunState() {
        RunState s = state == RunState.FINISH_MIGRATE && stateBeforeMigration != null ? stateBeforeMigration : state;
        return s.qmpName;
    }

    /** The guest clock: cpu_clock_offset = guest running time minus host time since start. */
    private synchronized io.jmigrate.vmstate.VmStateValues timerValues() {
        long running = runningNanos + (runningSince >= 0 ? System.nanoTime() - runningSince : 0);
        return TimerVmsd.values(0, running - (System.nanoTime() - startNanos));
    }

    @Override
    public byte[] uuid() {
        java.util.UUID u = config.uuid();
        if (u == null) {
            return new byte[16];
        }
        return java.nio.ByteBuffer.allocate(16).putLong(u.getMostSignificantBits())
                .putLong(u.getLeastSignificantBits()).array();
    }

    @Override
    public StreamConfiguration configuration() {
        return InteropSections.configuration(config.machine().name());
    }

    @Override
    public boolean sendSwitchoverStart() {
        return config.migrationProperties().sendSwitchoverStart();
    }

    @Override
    public boolean multifdFlushAfterEachSection() {
        return config.migrationProperties().multifdFlushAfterEachSection();
    }

    /** Each reported device's state digest by idstr (devices with {@link Device#stateDigest}). */
    @Override
    public Map<String, String> deviceDigests() {
        Map<String, String> m = new java.util.LinkedHashMap<>();
        for (Device d : devices) {
            String s = d.stateDigest();
            if (s != null) {
                m.put(d.idstr(), s);
            }
        }
        return m;
    }

    /** The process's JIT warm-up ({@code jmigrate vm --jit-warm-up}); off unless set. */
    public JitWarmUp jitWarmUp() {
        return jitWarmUp;
    }

    public void setJitWarmUp(JitWarmUp w) {
        jitWarmUp = w;
    }

    @Override
    public void close() {
        if (workload != null) {
            workload.shutdown();
        }
        for (Device d : devices) {
            d.close();
        }
        try {
            arena.close();
        } catch (IllegalStateException busy) {
            // quit while a migration thread still holds guest RAM (QEMU's quit does not wait for it
            // either): the memory goes with the process, which is exiting
        }
    }
}
