package io.jmigrate.vfio;

import io.jmigrate.common.EventSink;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.devstate.OrderedReassembler;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The VFIO migration driver of one VFIO PCI device, QEMU's {@code hw/vfio/migration.c} plus
 * {@code migration-multifd.c} (PROTOCOL.md §4): a device of the migration framework with idstr
 * {@code <id>/vfio}, instance 0, version 1, that drives a {@link VfioDeviceBackend} through the
 * uAPI v2 FSM and moves its data stream either over the main channel or over multifd.
 *
 * <h2>Main-channel section bodies (be64 tags, §4.1)</h2>
 * <pre>
 * START  DEV_SETUP_STATE END_OF_STATE
 * PART   [DEV_DATA_STATE be64 n, n bytes] END_OF_STATE | INIT_DATA_SENT     (only in PRE_COPY*)
 * END    legacy:  (DEV_DATA_STATE be64 n, n bytes)* END_OF_STATE            (STOP_COPY data)
 *        multifd: END_OF_STATE
 * FULL   legacy:  DEV_CONFIG_STATE VFIOPCIDevice-VMState END_OF_STATE
 *        multifd: END_OF_STATE, or DEV_CONFIG_LOAD_READY with x-migration-load-config-after-iter
 * </pre>
 * In multifd mode the save thread {@code mig/src/save_<id>/vfio} reads the STOP_COPY stream in
 * chunks of {@code min(1 MiB, stop-copy size)} and sends each as a {@link VfioStatePacket}
 * (idx 0, 1, ...), then the config (the FULL legacy body) as the last packet with
 * CONFIG_STATE; the destination stores them by idx ({@link OrderedReassembler}) and its load
 * thread {@code mig/dst/load_<id>/vfio}, started at SWITCHOVER_START, writes them to the device
 * in order, then loads the config.
 *
 * <h2>Device states (§4.8)</h2>
 * Source: save setup RUNNING to PRE_COPY (if supported); VM stop to STOP_COPY from a precopy
 * state, else STOP (through the P2P states first, if supported); complete to STOP_COPY; save
 * cleanup STOP_COPY to STOP, or a precopy state back to RUNNING; VM start (also after a failed
 * migration) to RUNNING. Destination: load setup to RESUMING; load complete to STOP (the
 * kernel's RESUMING to STOP loads the state; jmigrate does it at the end of the load rather
 * than at VM start, so an incomplete state fails the incoming migration); VM start to RUNNING.
 * A failed transition tries the recovery state, and resets the device (RUNNING) when there is
 * none or it fails too, as QEMU's {@code vfio_migration_set_state_or_reset}.
 */
public final class VfioMigration {
    public static final long END_OF_STATE = 0xffffffffef100001L;
    public static final long DEV_CONFIG_STATE = 0xffffffffef100002L;
    public static final long DEV_SETUP_STATE = 0xffffffffef100003L;
    public static final long DEV_DATA_STATE = 0xffffffffef100004L;
    public static final long DEV_INIT_DATA_SENT = 0xffffffffef100005L;
    public static final long DEV_CONFIG_LOAD_READY = 0xffffffffef100006L;
    public static final int VERSION = 1;
    public static final int DEFAULT_DATA_BUFFER_SIZE = 1 << 20;

    /**
     * What a migration tells a VFIO device when it creates the handlers.
     *
     * @param multifdDeviceState multifd device state supported: multifd on, compression none, no mapped-ram
     * @param switchoverStart    the machine sends SWITCHOVER_START
     * @param switchoverAck      the switchover-ack capability is on
     * @param approveSwitchover  destination: called when this device's initial precopy data is loaded
     *                           (INIT_DATA_SENT); null on the source
     */
    public record Options(boolean multifdDeviceState, boolean switchoverStart, boolean switchoverAck,
                          Runnable approveSwitchover) {
        /** {@code vfio_multifd_transfer_supported}. */
        public boolean multifdSupported() {
            return multifdDeviceState && switchoverStart;
        }
    }

    private final String id;
    private final VfioDeviceBackend backend;
    private final PciConfigState config;
    private final VfioProperties props;
    private final EventSink events;
    private final ReentrantLock lock = new ReentrantLock();
    private VfioDataFd dataFd;
    private MigrationException vmStateError;
    private volatile String testRequestState;
    private volatile String testCorruptPacket;
    private final AtomicLong transferred = new AtomicLong();
    private volatile Map<String, Object> lastStats = Map.of();

    public VfioMigration(String id, VfioDeviceBackend backend, PciConfigState config, VfioProperties props,
                         EventSink events) {
        this.id = id;
        this.backend = backend;
        this.config = config;
        this.props = props;
        this.events = events == null ? EventSink.NONE : events;
    }

    public String id() {
        return id;
    }

    /** {@code <id>/vfio}, the section idstr. */
    public String idstr() {
        return id + "/vfio";
    }

    public VfioProperties properties() {
        return props;
    }

    public VfioDeviceBackend backend() {
        return backend;
    }

    /** VFIO bytes of the current (or last) migration: query-migrate's {@code vfio.transferred} share. */
    public long transferred() {
        return transferred.get();
    }

    /** The last migration's counters (path, packets, bytes, out of order arrivals). */
    public Map<String, Object> stats() {
        return lastStats;
    }

    /**
     * Test hook {@code x-test-request-state}: at the next VM stop, after the transition QEMU's
     * rules choose, the driver additionally requests this state (e.g. {@code pre-copy} from
     * STOP_COPY, which the uAPI forbids). One shot; empty to clear.
     */
    public void setTestRequestState(String state) {
        testRequestState = state == null || state.isEmpty() ? null : state;
    }

    public String testRequestState() {
        return testRequestState == null ? "" : testRequestState;
    }

    /** The values of the test hook {@code x-test-corrupt-packet}; {@code reverse} is valid, only reordered. */
    public static final java.util.List<String> CORRUPTIONS = java.util.List.of("duplicate", "after-config",
            "config-not-last", "version", "reverse");

    /**
     * Test hook {@code x-test-corrupt-packet}: the next multifd save thread sends one bad
     * {@link VfioStatePacket}: {@code duplicate} (idx 0 twice), {@code after-config} (the config
     * packet as idx 1, then the first data chunk as idx 2 after it, and nothing more: with one
     * channel the destination refuses idx 2 while its load thread still waits for idx 0, so the
     * refusal cannot lose a race against the load completing), {@code config-not-last} (the last
     * data packet numbered above the config packet, sent before it), {@code version} (idx 0 with
     * version 1), each once; or valid packets in an order that makes out-of-order arrival
     * certain: {@code reverse} (the data packets queued last idx first, then the config; with
     * more packets than channels two share a channel, which keeps its order, so a lower idx
     * arrives after a higher one), kept until cleared. Empty clears.
     */
    public void setTestCorruptPacket(String mode) {
        if (mode != null && !mode.isEmpty() && !CORRUPTIONS.contains(mode)) {
            throw new MigrationException(Category.CONFIG, "VFIO device " + idstr() + ": x-test-corrupt-packet '" + mode
                    + "' must be one of " + CORRUPTIONS);
        }
        testCorruptPacket = mode == null || mode.isEmpty() ? null : mode;
    }

    public String testCorruptPacket() {
        return testCorruptPacket == null ? "" : testCorruptPacket;
    }

    // ---- device states --------------------------------------------------------------------------

    /**
     * {@code vfio_migration_set_state}: requests {@code target}; on failure tries
     * {@code recover}, and resets the device if {@code recover} is ERROR or fails as well. The
     * error names the device and the arc.
     */
    void setState(VfioDeviceState target, VfioDeviceState recover) {
        lock.lock();
        try {
            VfioDeviceState from = backend.deviceState();
            try {
                adopt(backend.transition(target));
                event();
            } catch (MigrationException e) {
                MigrationException err = new MigrationException(e.category(), "VFIO device " + idstr()
                        + ": failed to change state " + from + " -> " + target + ": " + e.getMessage(), e);
                if (recover != VfioDeviceState.ERROR) {
                    try {
                        adopt(backend.transition(recover));
                        event();
                        throw err;
                    } catch (MigrationException again) {
                        if (again == err) {
                            throw err;
                        }
                        err.addSuppressed(again);
                    }
                }
                closeFd();
                backend.reset();
                event();
                throw err;
            }
        } finally {
            lock.unlock();
        }
    }

    private void adopt(Optional<VfioDataFd> fd) {
        if (fd.isPresent()) {
            if (dataFd != null) {
                VfioDataFd old = dataFd;
                dataFd = fd.get();
                old.close();
                throw new MigrationException(Category.STATE, "VFIO device " + idstr() + ": data_fd out of sync");
            }
            dataFd = fd.get();
        }
        VfioDeviceState s = backend.deviceState();
        if (!s.isSaving() && s != VfioDeviceState.RESUMING) {
            closeFd();
        }
    }

    private void closeFd() {
        if (dataFd != null) {
            dataFd.close();
            dataFd = null;
        }
    }

    private VfioDataFd fd(String what) {
        lock.lock();
        try {
            if (dataFd == null) {
                throw new MigrationException(Category.STATE, "VFIO device " + idstr() + ": no data fd for " + what
                        + " (device in " + backend.deviceState() + ")");
            }
            return dataFd;
        } finally {
            lock.unlock();
        }
    }

    private void event() {
        if (props.migrationEvents()) {
            Map<String, Object> data = new LinkedHashMap<>();
            data.put("device-id", id);
            data.put("qom-path", "/machine/peripheral/" + id);
            data.put("device-state", backend.deviceState().qapiName());
            events.emit("VFIO_MIGRATION", data);
        }
    }

    private boolean p2p() {
        return backend.migrationFlags().contains(VfioMigrationFlag.P2P);
    }

    private boolean precopySupported() {
        return backend.migrationFlags().contains(VfioMigrationFlag.PRE_COPY);
    }

    /**
     * The VM's run state changed ({@code vfio_vmstate_change_prepare} then
     * {@code vfio_vmstate_change}). A failure is kept and fails the migration's next VFIO step.
     */
    public void vmStateChanged(boolean running) {
        try {
            VfioDeviceState s = backend.deviceState();
            if (running) {
                if (p2p() && (s == VfioDeviceState.STOP || s == VfioDeviceState.STOP_COPY)) {
                    setState(VfioDeviceState.RUNNING_P2P, VfioDeviceState.ERROR);
                }
                setState(VfioDeviceState.RUNNING, VfioDeviceState.ERROR);
            } else {
                if (p2p() && s.isRunning()) {
                    setState(s.isPrecopy() ? VfioDeviceState.PRE_COPY_P2P : VfioDeviceState.RUNNING_P2P,
                            VfioDeviceState.ERROR);
                }
                setState(backend.deviceState().isPrecopy() ? VfioDeviceState.STOP_COPY : VfioDeviceState.STOP,
                        VfioDeviceState.ERROR);
                String req = testRequestState;
                if (req != null) {
                    testRequestState = null;
                    setState(VfioDeviceState.valueOf(req.toUpperCase(java.util.Locale.ROOT).replace('-', '_')),
                            VfioDeviceState.ERROR);
                }
            }
        } catch (MigrationException e) {
            lock.lock();
            try {
                if (vmStateError == null) {
                    vmStateError = e;
                }
            } finally {
                lock.unlock();
            }
        }
    }

    private void throwVmStateError() {
        lock.lock();
        try {
            MigrationException e = vmStateError;
            vmStateError = null;
            if (e != null) {
                throw e;
            }
        } finally {
            lock.unlock();
        }
    }

    private MigrationException tagError(QemuFileReader r, long at, String what) {
        return r.fail(Category.PROTOCOL, at, "VFIO device " + idstr() + ": " + what);
    }

    /** The config as the legacy FULL section and the multifd config packet carry it. */
    private byte[] configBytes() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        QemuFileWriter w = new QemuFileWriter(out, idstr() + " config");
        w.putBe64(DEV_CONFIG_STATE);
        VfioConfigVmsd.save(w, config.saveConfig());
        w.putBe64(END_OF_STATE);
        w.flush();
        return out.toByteArray();
    }

    private boolean multifdTransfer(Options o) {
        return switch (props.multifdTransfer()) {
            case ON -> true;
            case OFF -> false;
            case AUTO -> o.multifdSupported();
        };
    }

    private void checkMultifd(Options o, boolean on) {
        if (on && !o.multifdSupported()) {
            throw new MigrationException(Category.CONFIG, "VFIO device " + idstr() + ": Multifd device transfer "
                    + "requested but unsupported in the current config (x-migration-multifd-transfer=on needs "
                    + "multifd, multifd-compression none and send-switchover-start on)");
        }
    }

    // ---- source ---------------------------------------------------------------------------------

    public SaveVmHandlers.Save saveHandlers(Options o) {
        return new Save(o);
    }

    public SaveVmHandlers.Load loadHandlers(Options o) {
        return new Load(o);
    }

    private final class Save implements SaveVmHandlers.Save {
        private final Options options;
        private final boolean multifd;
        private final boolean configAfterIter;
        private int bufferSize = DEFAULT_DATA_BUFFER_SIZE;
        private byte[] buffer;
        private boolean initialDataSent;
        private PrecopyInfo precopy = new PrecopyInfo(0, 0);
        private long packets;
        private long lastFullSize;

        Save(Options o) {
            this.options = o;
            this.multifd = multifdTransfer(o);
            this.configAfterIter = multifd && props.loadConfigAfterIter() == OnOffAuto.ON;
        }

        @Override
        public boolean isIterable() {
            return true;
        }

        @Override
        public boolean hasSaveState() {
            return true;
        }

        @Override
        public void saveSetup(QemuFileWriter w) {
            checkMultifd(options, multifd);
            transferred.set(0);
            long stopCopy = backend.stopCopySize();
            bufferSize = (int) Math.max(1, Math.min(DEFAULT_DATA_BUFFER_SIZE, stopCopy));
            if (precopySupported() && backend.deviceState() == VfioDeviceState.RUNNING) {
                setState(VfioDeviceState.PRE_COPY, VfioDeviceState.RUNNING);
                precopy = fd("precopy info").precopyInfo();
            }
            w.putBe64(DEV_SETUP_STATE).putBe64(END_OF_STATE);
        }

        @Override
        public long pendingEstimate() {
            return backend.deviceState().isPrecopy() ? precopy.initialBytes() + precopy.dirtyBytes() : 0;
        }

        @Override
        public long pendingExact() {
            long n = backend.stopCopySize();
            if (backend.deviceState().isPrecopy()) {
                precopy = fd("precopy info").precopyInfo();
                n += precopy.initialBytes() + precopy.dirtyBytes();
            }
            return n;
        }

        @Override
        public boolean saveIterate(QemuFileWriter w, RateLimit limit) {
            if (backend.deviceState().isPrecopy()) {
                VfioDataFd fd = fd("precopy read");
                ByteBuffer b = ByteBuffer.wrap(buffer());
                int n = fd.read(b);
                if (n > 0) {
                    w.putBe64(DEV_DATA_STATE).putBe64(n).putBytes(b.array(), 0, n);
                    transferred.addAndGet(n);
                }
                precopy = fd.precopyInfo();
            }
            if (options.switchoverAck() && precopySupported() && !initialDataSent && precopy.initialBytes() == 0) {
                w.putBe64(DEV_INIT_DATA_SENT);
                initialDataSent = true;
            } else {
                w.putBe64(END_OF_STATE);
            }
            return precopy.initialBytes() == 0 && precopy.dirtyBytes() == 0;
        }

        private byte[] buffer() {
            if (buffer == null) {
                buffer = new byte[bufferSize];
            }
            return buffer;
        }

        @Override
        public void saveComplete(QemuFileWriter w) {
            throwVmStateError();
            if (!multifd) {
                setState(VfioDeviceState.STOP_COPY, VfioDeviceState.STOP);
                VfioDataFd fd = fd("stop-copy read");
                ByteBuffer b = ByteBuffer.wrap(buffer());
                while (true) {
                    b.clear();
                    int n = fd.read(b);
                    if (n <= 0) {
                        break;
                    }
                    w.putBe64(DEV_DATA_STATE).putBe64(n).putBytes(b.array(), 0, n);
                    transferred.addAndGet(n);
                }
            }
            w.putBe64(END_OF_STATE);
        }

        @Override
        public boolean hasCompletePrecopyThread() {
            return multifd;
        }

        /** {@code vfio_multifd_save_complete_precopy_thread}, PROTOCOL.md §4.3. */
        @Override
        public void saveCompletePrecopyThread(DeviceStateOutput out, AbortFlag abort) {
            throwVmStateError();
            setState(VfioDeviceState.STOP_COPY, VfioDeviceState.STOP);
            VfioDataFd fd = fd("stop-copy read");
            String corrupt = testCorruptPacket;
            if (!"reverse".equals(corrupt)) {
                testCorruptPacket = null;
            }
            java.util.ArrayList<ByteBuffer> reversed = "reverse".equals(corrupt) ? new java.util.ArrayList<>() : null;
            // the device reads straight into a direct packet buffer, which multifd takes over
            // without a copy (it hands back one it finished writing): one copy per byte on the
            // source, the device's read. The test hooks keep their buffers, so they queue copies.
            int capacity = VfioStatePacket.HEADER_SIZE + bufferSize;
            ByteBuffer packet = ByteBuffer.allocateDirect(capacity);
            ByteBuffer held = null;
            if ("after-config".equals(corrupt)) {
                sendAfterConfig(out, fd, packet);
                return;
            }
            long idx = 0;
            while (true) {
                abort.check("VFIO device " + idstr() + " save thread");
                packet.clear().position(VfioStatePacket.HEADER_SIZE);
                int n = fd.read(packet);
                if (n <= 0) {
                    break;
                }
                new VfioStatePacket(idx++, false).encode(packet, 0);
                packet.flip();
                if (idx == 1 && "version".equals(corrupt)) {
                    packet.putInt(0, 1);
                }
                if (held != null) {
                    send(out, held);
                    held = null;
                }
                if ("config-not-last".equals(corrupt)) {
                    held = ByteBuffer.allocate(packet.remaining()).put(packet.duplicate()).flip();
                    continue;
                }
                if (reversed != null) {
                    reversed.add(ByteBuffer.allocate(packet.remaining()).put(packet.duplicate()).flip());
                    continue;
                }
                if (corrupt != null) {
                    send(out, packet);
                    if (idx == 1 && "duplicate".equals(corrupt)) {
                        send(out, packet.rewind());
                    }
                    continue;
                }
                int len = packet.limit();
                ByteBuffer spare = out.queueOwned(packet);
                transferred.addAndGet(len);
                packets++;
                packet = spare != null && spare.capacity() >= capacity ? spare : ByteBuffer.allocateDirect(capacity);
            }
            if (reversed != null) {
                for (int i = reversed.size() - 1; i >= 0; i--) {
                    abort.check("VFIO device " + idstr() + " save thread");
                    send(out, reversed.get(i));
                }
            }
            ByteBuffer last = configPacketBody();
            abort.check("VFIO device " + idstr() + " save thread");
            if (held != null) {
                // test hook config-not-last: the last data packet (idx n-1) is renumbered n and
                // sent first, the config packet takes n-1
                new VfioStatePacket(idx, false).encode(held, 0);
                new VfioStatePacket(idx - 1, true).encode(last, 0);
                send(out, held);
                send(out, last);
                return;
            }
            new VfioStatePacket(idx, true).encode(last, 0);
            send(out, last);
        }

        /** Test hook after-config: the config packet as idx 1, then data as idx 2 (see setTestCorruptPacket). */
        private void sendAfterConfig(DeviceStateOutput out, VfioDataFd fd, ByteBuffer packet) {
            ByteBuffer last = configPacketBody();
            new VfioStatePacket(1, true).encode(last, 0);
            packet.clear().position(VfioStatePacket.HEADER_SIZE);
            fd.read(packet); // the first chunk (the header record at least)
            packet.flip();
            new VfioStatePacket(2, false).encode(packet, 0);
            send(out, last);
            send(out, packet);
        }

        /** The config packet with room for its header (written by the caller): the config state after it. */
        private ByteBuffer configPacketBody() {
            byte[] cfg = configBytes();
            ByteBuffer last = ByteBuffer.allocate(VfioStatePacket.HEADER_SIZE + cfg.length);
            return last.position(VfioStatePacket.HEADER_SIZE).put(cfg).flip();
        }

        private void send(DeviceStateOutput out, ByteBuffer p) {
            out.queue(p);
            transferred.addAndGet(p.limit());
            packets++;
        }

        @Override
        public void saveState(QemuFileWriter w) {
            throwVmStateError();
            long before = w.position();
            if (multifd) {
                w.putBe64(configAfterIter ? DEV_CONFIG_LOAD_READY : END_OF_STATE);
            } else {
                byte[] cfg = configBytes();
                w.putBytes(cfg);
            }
            lastFullSize = w.position() - before;
        }

        @Override
        public com.fasterxml.jackson.databind.node.ObjectNode vmdesc() {
            com.fasterxml.jackson.databind.node.ObjectNode d = com.fasterxml.jackson.databind.node.JsonNodeFactory
                    .instance.objectNode();
            d.put("size", lastFullSize);
            com.fasterxml.jackson.databind.node.ObjectNode f = d.putArray("fields").addObject();
            f.put("name", "data");
            f.put("size", lastFullSize);
            f.put("type", "buffer");
            return d;
        }

        @Override
        public void saveCleanup() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("transfer", multifd ? "multifd" : "main");
            m.put("transferred", transferred.get());
            m.put("packets", packets);
            lastStats = m;
            VfioDeviceState s = backend.deviceState();
            try {
                if (s == VfioDeviceState.STOP_COPY) {
                    setState(VfioDeviceState.STOP, VfioDeviceState.ERROR);
                } else if (s.isPrecopy()) {
                    setState(VfioDeviceState.RUNNING, VfioDeviceState.ERROR);
                }
            } catch (MigrationException ignored) {
                // the device was reset to RUNNING; cleanup reports nothing
            }
            lock.lock();
            try {
                closeFd();
                vmStateError = null;
            } finally {
                lock.unlock();
            }
        }
    }

    // ---- destination ----------------------------------------------------------------------------

    private final class Load implements SaveVmHandlers.Load {
        private final Options options;
        private final boolean multifd;
        private final boolean configAfterIter;
        private final OrderedReassembler buffers;
        private volatile AbortFlag poolFlag = AbortFlag.NEVER;
        private final ReentrantLock iterLock = new ReentrantLock();
        private final Condition iterablesDone = iterLock.newCondition();
        private boolean loadReady;
        private boolean wantExit;
        private volatile boolean configLoaded;
        private volatile boolean loadThreadStarted;
        private final AtomicLong written = new AtomicLong();

        Load(Options o) {
            this.options = o;
            this.multifd = multifdTransfer(o);
            this.configAfterIter = multifd && props.loadConfigAfterIter() == OnOffAuto.ON;
            this.buffers = multifd ? new OrderedReassembler(idstr(), props.maxQueuedBuffersSize(),
                    () -> poolFlag.isSet()) : null;
        }

        @Override
        public void loadSetup() {
            checkMultifd(options, multifd);
            transferred.set(0);
            setState(VfioDeviceState.RESUMING, backend.deviceState());
        }

        @Override
        public boolean switchoverAckNeeded() {
            return precopySupported();
        }

        /** {@code vfio_load_state}: the tag loop of PROTOCOL.md §4.1 ({@link VfioMarkerWalk}), any section type. */
        @Override
        public void loadState(QemuFileReader r, SectionType type, int versionId) {
            VfioMarkerWalk.section(r, type, "VFIO device " + idstr(), new VfioMarkerWalk.Visitor() {
                @Override
                public void marker(long tag, long at) {
                    if (tag == DEV_CONFIG_STATE && multifd) {
                        throw tagError(r, at, "got DEV_CONFIG_STATE in main migration channel but doing multifd "
                                + "transfer");
                    }
                }

                @Override
                public void data(QemuFileReader r, long size) {
                    writeFromStream(r, size);
                }

                @Override
                public void config(byte[] cfg, long at) {
                    config.loadConfig(cfg);
                    configLoaded = true;
                }

                @Override
                public void initDataSent(QemuFileReader r, long at) {
                    if (!precopySupported() || !options.switchoverAck() || options.approveSwitchover() == null) {
                        throw tagError(r, at, "got INIT_DATA_SENT but "
                                + (precopySupported() ? "switchover-ack is off" : "the device has no PRE_COPY support"));
                    }
                    options.approveSwitchover().run();
                }

                @Override
                public void loadReady(QemuFileReader r, long at) {
                    if (!configAfterIter) {
                        throw tagError(r, at, "got DEV_CONFIG_LOAD_READY but x-migration-load-config-after-iter is "
                                + "not in effect (it needs multifd transfer)");
                    }
                    iterLock.lock();
                    try {
                        if (loadReady) {
                            throw tagError(r, at, "duplicate DEV_CONFIG_LOAD_READY");
                        }
                        loadReady = true;
                        iterablesDone.signalAll();
                    } finally {
                        iterLock.unlock();
                    }
                }
            });
        }

        private void writeFromStream(QemuFileReader r, long size) {
            VfioDataFd fd = fd("RESUMING write");
            byte[] b = new byte[(int) Math.min(DEFAULT_DATA_BUFFER_SIZE, Math.max(1, size))];
            long left = size;
            while (left > 0) {
                int n = (int) Math.min(b.length, left);
                r.readFully(b, 0, n, "VFIO device data of " + idstr());
                ByteBuffer bb = ByteBuffer.wrap(b, 0, n);
                while (bb.hasRemaining()) {
                    fd.write(bb);
                }
                left -= n;
            }
            transferred.addAndGet(size);
        }

        /** A multifd config packet after its DEV_CONFIG_STATE tag. */
        private void loadConfig(QemuFileReader r) {
            config.loadConfig(VfioMarkerWalk.configBody(r, "VFIO device " + idstr()));
            configLoaded = true;
        }

        /** {@code vfio_multifd_load_state_buffer}, PROTOCOL.md §4.5 (receive threads). */
        @Override
        public void loadStateBuffer(ByteBuffer data) {
            if (!multifd) {
                throw new MigrationException(Category.PROTOCOL, "VFIO device " + idstr() + ": got device state "
                        + "packet but not doing multifd transfer (x-migration-multifd-transfer must agree on both sides)");
            }
            try {
                ByteBuffer b = data.duplicate();
                VfioStatePacket p = VfioStatePacket.decode(b, idstr());
                buffers.put(p.idx(), b, p.config());
            } catch (MigrationException e) {
                buffers.abort(e.getMessage()); // the load thread must not wait for what will never come
                throw e;
            }
        }

        @Override
        public void switchoverStart(LoadThreads threads) {
            if (multifd) {
                loadThreadStarted = true;
                threads.start(idstr(), this::loadThread);
            }
        }

        /**
         * {@code vfio_load_bufs_thread}, PROTOCOL.md §4.6. Exits when the config packet is
         * loaded; fails "cancelled" when cleanup or the pool aborts, checked after every wake-up.
         */
        private void loadThread(AbortFlag shouldQuit) {
            poolFlag = shouldQuit;
            VfioDataFd fd = fd("RESUMING write");
            while (true) {
                OrderedReassembler.Buffer b = buffers.take();
                byte[] cfg;
                try {
                    if (!b.last()) {
                        ByteBuffer bb = b.byteBuffer();
                        while (bb.hasRemaining()) {
                            int n = fd.write(bb);
                            buffers.written(n);
                            written.addAndGet(n);
                        }
                        transferred.addAndGet(VfioStatePacket.HEADER_SIZE + b.length());
                        continue;
                    }
                    cfg = b.data().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
                    buffers.written(cfg.length);
                } finally {
                    buffers.release(b); // the last release frees the buffers' arena
                }
                transferred.addAndGet(VfioStatePacket.HEADER_SIZE + cfg.length);
                if (configAfterIter) {
                    awaitIterables(shouldQuit);
                }
                QemuFileReader r = QemuFileReader.of(cfg, idstr() + " config packet idx " + b.idx());
                long tag = r.readBe64("VFIO config tag");
                if (tag != DEV_CONFIG_STATE) {
                    throw new MigrationException(Category.PROTOCOL, "VFIO device " + idstr() + ": config packet idx "
                            + b.idx() + String.format(" starts with 0x%016x, expected DEV_CONFIG_STATE", tag));
                }
                loadConfig(r);
                return;
            }
        }

        private void awaitIterables(AbortFlag shouldQuit) {
            iterLock.lock();
            try {
                while (!loadReady) {
                    if (wantExit) {
                        throw new MigrationException(Category.CANCELLED, "VFIO device " + idstr()
                                + " load thread: operation cancelled while waiting for DEV_CONFIG_LOAD_READY");
                    }
                    shouldQuit.check("VFIO device " + idstr() + " load thread");
                    iterablesDone.awaitUninterruptibly();
                }
            } finally {
                iterLock.unlock();
            }
        }

        @Override
        public void loadComplete() {
            if (multifd && !loadThreadStarted) {
                throw new MigrationException(Category.PROTOCOL, "VFIO device " + idstr() + ": the stream ended "
                        + "without SWITCHOVER_START, so its multifd state was never loaded");
            }
            if (!configLoaded) {
                throw new MigrationException(Category.PROTOCOL, "VFIO device " + idstr() + ": the stream ended "
                        + "without the device's config state" + (multifd ? " (no config packet was loaded)" : ""));
            }
            setState(VfioDeviceState.STOP, VfioDeviceState.ERROR);
        }

        @Override
        public Map<String, Object> loadStats() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("transfer", multifd ? "multifd" : "main");
            m.put("vfio-transferred", transferred.get());
            m.put("device-state", backend.deviceState().qapiName());
            if (buffers != null) {
                OrderedReassembler.Stats s = buffers.stats();
                m.put("late-arrivals", s.lateArrivals());
                m.put("max-displacement", s.maxDisplacement());
                m.put("peak-queued-bytes", s.peakQueuedBytes());
                m.put("peak-reserved-bytes", s.peakReservedBytes());
                m.put("buffers-loaded", s.taken());
            }
            return m;
        }

        @Override
        public void loadCleanup() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("transfer", multifd ? "multifd" : "main");
            m.put("transferred", transferred.get());
            if (buffers != null) {
                OrderedReassembler.Stats s = buffers.stats();
                m.put("packets", s.received());
                m.put("late-arrivals", s.lateArrivals());
                m.put("max-displacement", s.maxDisplacement());
                m.put("peak-queued-bytes", s.peakQueuedBytes());
                m.put("peak-reserved-bytes", s.peakReservedBytes());
                buffers.abort("load cleanup"); // frees the buffers' arena on every path
            }
            lastStats = m;
            iterLock.lock();
            try {
                wantExit = true;
                iterablesDone.signalAll();
            } finally {
                iterLock.unlock();
            }
        }
    }
}
