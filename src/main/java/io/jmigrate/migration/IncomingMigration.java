package io.jmigrate.migration;

import io.jmigrate.common.Durations;
import io.jmigrate.channel.MigrationUri;

import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.RamDigest;
import io.jmigrate.savevm.LoadVmDispatcher;
import io.jmigrate.savevm.SaveStateRegistry;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.StreamLimits;

import io.jmigrate.channel.IncomingListener;
import io.jmigrate.channel.ChannelWatchdog;
import io.jmigrate.channel.TlsChannel;
import io.jmigrate.channel.TlsContext;
import io.jmigrate.memory.RamBlock;
import io.jmigrate.multifd.ChannelStats;
import io.jmigrate.multifd.DeviceStateSink;
import io.jmigrate.multifd.MultifdBlock;
import io.jmigrate.multifd.MultifdConfig;
import io.jmigrate.multifd.MultifdReceiver;
import io.jmigrate.ram.RamFlags;
import io.jmigrate.ram.RamLoader;
import io.jmigrate.savevm.SaveStateEntry;
import io.jmigrate.savevm.ReturnPathMessage;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SaveVmOptions;
import io.jmigrate.devstate.DeviceThreadPool;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;

/**
 * The destination of one migration, run by {@code mig/dst/main}: accepts the main channel (or
 * opens the file), loads the stream with {@link LoadVmDispatcher} into a fresh device list,
 * answers the return path (PONG, then SHUT when done), records the RAM digest, then lets the
 * VM resume, stay paused (-S), or follow the source's run state from globalstate.
 *
 * <h2>Multifd (PROTOCOL.md §2.2)</h2>
 * The capabilities and parameters in force when the first connection arrives apply (the state
 * then leaves setup, which freezes them). Every connection on the one listener is classified on
 * its own thread by its first 4 bytes ({@code mig/dst/listen} keeps accepting): the main channel,
 * or a multifd channel whose init packet {@link MultifdReceiver#addChannel} validates before its
 * {@code mig/dst/recv_N} thread starts. Loading starts once the main channel and all N channels
 * are there, or fails with a TIMEOUT naming the missing ones after {@code x-multifd-timeout}.
 * Any channel's error is the migration's first error: it closes the main channel too, so the
 * load stops, the return path says SHUT(1) when it can, the VM never runs, and the source (whose
 * channels break) fails and resumes.
 */
public final class IncomingMigration implements Runnable {
    /** How long a connection may take to send its first 4 bytes without multifd. */
    private static final Duration PEEK_TIMEOUT = Duration.ofSeconds(30);

    private final MigrationSubject subject;
    private final Supplier<MigrationConfig> liveConfig;
    private final MigrationState state;
    private final Transport.Listener listener;
    /** The first error; from any thread but mig/dst/main it also closes the main channel and every multifd channel. */
    private final FirstError error = new FirstError(this::onFirstError);
    private volatile MultifdReceiver multifd;
    /** x-jmigrate-stall-timeout while the stream loads: the whole migration going quiet is the first error. */
    private volatile ChannelWatchdog quiet;
    private final AtomicReference<IncomingListener.Incoming> mainChannel = new AtomicReference<>();
    private final CountDownLatch mainArrived = new CountDownLatch(1);
    private final long createdMillis = System.currentTimeMillis();
    private volatile long startMillis = -1;
    private volatile long totalTimeMs = -1;
    private volatile Transport.Connection connection;
    private volatile QemuFileReader reader;
    /** Capability x-jmigrate-digest when the migration became active: digest RAM and devices at completion. */
    private volatile boolean digests;
    /** The RAM digest after loading, computed while completion is reported (null before). */
    private volatile java.util.concurrent.CompletableFuture<String> digest;
    private volatile boolean cancelRequested;
    /** Every expected connection is in: later ones are refused, or dropped if they prove nothing. */
    private volatile boolean setupDone;
    private volatile Thread thread;
    private volatile String vmdesc;
    private volatile SaveStateRegistry<SaveVmHandlers.Load> registry;
    private final DeviceStateStats stats = new DeviceStateStats("destination");
    /** The load threads mig/dst/load_<dev> (QEMU: created at the start of qemu_loadvm_state). */
    private final DeviceThreadPool loadPool = new DeviceThreadPool("mig/dst/load_", error);
    private volatile Map<String, String> deviceDigests;
    private volatile LoadVmDispatcher dispatcher;
    /** switchover-ack: devices that still have to approve; the ACK goes when it reaches 0. */
    private final java.util.concurrent.atomic.AtomicInteger ackPending = new java.util.concurrent.atomic.AtomicInteger(-1);
    private volatile Transport.Connection ackConnection;
    /** OPEN_RETURN_PATH was received: PONG and SHUT go back on the main channel. */
    private volatile boolean returnPathOpen;

    IncomingMigration(MigrationSubject subject, Supplier<MigrationConfig> liveConfig, MigrationUri uri,
                      MigrationState state) {
        this.subject = subject;
        this.liveConfig = liveConfig;
        this.state = state;
        this.listener = new Transport.Listener(uri);
    }

    private void onFirstError(MigrationException e) {
        if (Thread.currentThread() != thread) {
            Transport.Connection c = connection;
            if (c != null) {
                c.close();
            }
            listener.close();
        }
        MultifdReceiver rx = multifd;
        if (rx != null) {
            rx.fail(e);
        }
        loadPool.abort();
    }

    /**
     * {@code qemu_loadvm_approve_switchover}: a device (VFIO on INIT_DATA_SENT) loaded its
     * initial precopy data; the last one sends SWITCHOVER_ACK on the return path.
     */
    private void approveSwitchover() {
        int left = ackPending.decrementAndGet();
        if (left < 0) {
            throw new MigrationException(Category.PROTOCOL, "a device approved the switchover, but none was waiting "
                    + "for it (no OPEN_RETURN_PATH yet, or more approvals than devices that need one)");
        }
        if (left == 0) {
            sendReturnPath(ackConnection, new ReturnPathMessage.SwitchoverAck());
        }
    }

    /** Where the listener is bound (resolves tcp port 0). */
    public String boundUri() {
        return listener.boundUri();
    }

    void start() {
        if (!state.cas(MigrationStatus.NONE, MigrationStatus.SETUP)) {
            listener.close();
            throw new MigrationException(Category.STATE, "incoming migration state is " + state.get().qmpName);
        }
        subject.incomingStarted();
        Thread t = new Thread(this, "mig/dst/main");
        t.setDaemon(true);
        thread = t;
        t.start();
    }

    public MigrationState state() {
        return state;
    }

    /**
     * The RAM digest as loaded (SHA-256, see {@link RamDigest}), or null if the load did not
     * complete or ran without capability {@code x-jmigrate-digest}. It is computed on
     * {@code mig/dst/digest} once loading is done, before the vCPUs may run; this waits for it
     * (up to 5 minutes).
     */
    public String digest() {
        return RamDigest.await(digest, OutgoingMigration.DIGEST_WAIT);
    }

    /** Whether this migration records digests (capability {@code x-jmigrate-digest} when it became active). */
    public boolean digests() {
        return digests;
    }

    /** Device digests as loaded (after the RAM digest is ready), or an empty map. */
    public Map<String, String> deviceDigests() {
        String ram = digest();
        Map<String, String> d = deviceDigests;
        return ram == null || d == null ? Map.of() : d;
    }

    public String vmdesc() {
        return vmdesc;
    }

    public MigrationException error() {
        return error.get();
    }

    public boolean join(long millis) throws InterruptedException {
        Thread t = thread;
        if (t != null) {
            t.join(millis);
            return !t.isAlive();
        }
        return true;
    }

    void cancel() {
        error.set(new MigrationException(Category.CANCELLED, "incoming migration cancelled"));
        cancelRequested = true; // after the error: a thread that sees the flag finds it set
        listener.close();
        Transport.Connection c = connection;
        if (c != null) {
            c.close();
        }
    }

    /**
     * The incoming main thread: one method per phase (accept the channels, load, finish,
     * completed), every failure and a cancel taking the one path of {@link #failed}.
     */
    @Override
    public void run() {
        try {
            Transport.Connection c = acceptChannels();
            ChannelWatchdog q = quiet;
            if (q != null) {
                q.start();
            }
            LoadVmDispatcher d = load(c);
            finishLoad(c, d);
            completed();
        } catch (Throwable t) {
            failed(t);
        } finally {
            stopWatching();
        }
    }

    /**
     * The device registry for this migration, made before the multifd receiver starts (device
     * state packets are dispatched into it) and before the main stream is read.
     */
    private SaveStateRegistry<SaveVmHandlers.Load> prepareDevices(MigrationConfig cfg) {
        boolean ack = cfg.has(Capability.SWITCHOVER_ACK);
        SaveVmOptions options = new SaveVmOptions(cfg.multifd() && "none".equals(cfg.multifdCompression()),
                subject.sendSwitchoverStart(), ack, ack ? this::approveSwitchover : null);
        SaveStateRegistry<SaveVmHandlers.Load> reg = subject.loadRegistry(options);
        for (SaveStateEntry<SaveVmHandlers.Load> e : reg.entries()) {
            if (!e.handlers().loadStats().isEmpty()) {
                stats.device(e.idstr(), e.instanceId()).extra = e.handlers()::loadStats;
            }
        }
        registry = reg;
        return reg;
    }

    /**
     * The receive threads' upward call: each device-state packet goes to the device registered
     * under (idstr, instance id); an unknown pair fails the migration naming it.
     */
    private DeviceStateSink deviceStateSink(SaveStateRegistry<SaveVmHandlers.Load> reg) {
        return new DeviceStateSink() {
            @Override
            public void loadStateBuffer(String idstr, int instanceId, ByteBuffer data) {
                loadStateBuffer(-1, idstr, instanceId, data);
            }

            @Override
            public void loadStateBuffer(int channel, String idstr, int instanceId, ByteBuffer data) {
                SaveStateEntry<SaveVmHandlers.Load> e = reg.find(idstr, instanceId);
                if (e == null) {
                    throw new MigrationException(Category.PROTOCOL, "device-state packet on multifd channel "
                            + channel + " for unknown device \"" + idstr + "\" instance " + instanceId
                            + ": this VM has " + reg.entries().stream().map(SaveStateEntry::describe).toList());
                }
                int n = data.remaining();
                try {
                    e.handlers().loadStateBuffer(data);
                } catch (MigrationException ex) {
                    throw new MigrationException(ex.category(), "device-state packet on multifd channel " + channel
                            + " for " + e.describe() + ": " + ex.getMessage(), ex);
                }
                stats.device(idstr, instanceId).packet(channel, n);
            }
        };
    }

    /**
     * The load-thread pool handed to the devices at SWITCHOVER_START
     * ({@code qemu_loadvm_start_load_thread}): {@code mig/dst/load_<device>}.
     */
    private SaveVmHandlers.LoadThreads loadThreads(SaveStateRegistry<SaveVmHandlers.Load> reg) {
        return (device, task) -> {
            DeviceThreadPool pool = loadPool;
            DeviceStateStats.DeviceRecord rec = recordFor(reg, device);
            rec.transfer = "multifd";
            pool.submit(device, abort -> {
                rec.threadStartUs = DeviceStateStats.nowUs();
                try {
                    task.run(abort);
                } finally {
                    rec.threadEndUs = DeviceStateStats.nowUs();
                }
            });
        };
    }

    private DeviceStateStats.DeviceRecord recordFor(SaveStateRegistry<SaveVmHandlers.Load> reg, String device) {
        for (SaveStateEntry<SaveVmHandlers.Load> e : reg.entries()) {
            if (e.idstr().equals(device)) {
                DeviceStateStats.DeviceRecord rec = stats.device(e.idstr(), e.instanceId());
                rec.extra = e.handlers()::loadStats;
                return rec;
            }
        }
        return stats.device(device, 0);
    }

    /**
     * At EOF (PROTOCOL.md §3.3 steps 3-4): wait for every load thread, then no more may start;
     * the load fails with the migration's first error. While a multifd channel is open more
     * state may still come, so the wait is unbounded (an error or a cancel ends it); once every
     * channel has ended (a source without return path closes them after EOF), the load threads
     * get {@code x-multifd-timeout} to finish, and a device still loading then is an error
     * naming it (its state can no longer arrive).
     */
    private void joinLoadThreads() {
        stats.phase("eof-loaded");
        DeviceThreadPool pool = loadPool;
        MultifdReceiver rx = multifd;
        Duration grace = Duration.ofMillis(liveConfig.get().multifdTimeoutMs());
        long endedAt = -1;
        try {
            while (!pool.awaitIdle(Duration.ofMillis(50))) {
                error.throwIfSet();
                if (cancelRequested) {
                    throw new MigrationException(Category.CANCELLED, "incoming migration cancelled while devices "
                            + pool.running() + " were loading");
                }
                if (endedAt < 0 && (rx == null || rx.awaitEnd(Duration.ofMillis(1)))) {
                    endedAt = System.nanoTime();
                }
                if (endedAt >= 0 && System.nanoTime() - endedAt > grace.toNanos()) {
                    throw new MigrationException(Category.TIMEOUT, "load thread(s) " + pool.running().stream()
                            .map(d -> "mig/dst/load_" + d).toList() + " still waiting for device state "
                            + Durations.human(grace) + " after every multifd channel had ended");
                }
            }
            pool.abort();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MigrationException(Category.CANCELLED, "interrupted while waiting for the load threads", e);
        }
        error.throwIfSet();
        stats.phase("load-threads-joined");
    }

    /** Loads the main stream with the registry up to EOF and the vmdesc trailer. */
    private LoadVmDispatcher load(Transport.Connection c) {
        QemuFileReader r = new QemuFileReader(c.channel(), "incoming migration stream from " + c.description(),
                StreamLimits.DEFAULT, QemuFileReader.MAIN_STREAM_BUFFER);
        reader = r;
        SaveStateRegistry<SaveVmHandlers.Load> reg = registry != null ? registry : prepareDevices(liveConfig.get());
        MultifdReceiver rx = multifd;
        if (rx != null) {
            SaveStateEntry<SaveVmHandlers.Load> ram = reg.find(RamFlags.IDSTR, 0);
            if (ram == null || !(ram.handlers() instanceof RamLoader loader)) {
                throw new MigrationException(Category.INTERNAL, "multifd needs the ram section's loader");
            }
            loader.useMultifd(rx);
        }
        LoadVmDispatcher d = new LoadVmDispatcher(reg, subject.configuration(), new LoadVmDispatcher.ReturnPath() {
            @Override
            public void switchoverStart() {
                stats.phase("switchover-start-loaded");
            }

            @Override
            public void open() {
                if (!c.bidirectional()) {
                    throw new MigrationException(Category.PROTOCOL, "OPEN_RETURN_PATH on a one-way channel");
                }
                returnPathOpen = true;
                if (liveConfig.get().has(Capability.SWITCHOVER_ACK)) {
                    // qemu_loadvm_state_switchover_ack_needed, then the ACK at once if nobody needs one
                    int needed = 0;
                    for (SaveStateEntry<SaveVmHandlers.Load> e : reg.entries()) {
                        if (e.handlers().switchoverAckNeeded()) {
                            needed++;
                        }
                    }
                    ackPending.set(needed);
                    ackConnection = c;
                    if (needed == 0) {
                        sendReturnPath(c, new ReturnPathMessage.SwitchoverAck());
                    }
                }
            }

            @Override
            public void pong(int value) {
                if (returnPathOpen) {
                    sendReturnPath(c, new ReturnPathMessage.Pong(value));
                }
            }
        }, loadThreads(reg));
        dispatcher = d;
        d.load(r, () -> cancelRequested || error.isSet(), () -> {
            stopWatching(); // EOF: what follows (joining the load threads) reads nothing
            joinLoadThreads();
        });
        listener.close(); // mig/dst/listen ends: it refused unexpected channels until now
        error.throwIfSet();
        return d;
    }

    private void stopWatching() {
        ChannelWatchdog q = quiet;
        if (q != null) {
            q.close();
        }
    }

    /** {@code ch} watched by the stall detection (when the stream comes over sockets). */
    private java.nio.channels.ByteChannel watched(java.nio.channels.ByteChannel ch, String name) {
        ChannelWatchdog q = quiet;
        return q == null ? ch : q.watch(ch, name);
    }

    /**
     * After EOF: every page is in memory (the last SYNC was passed) and every load thread has
     * ended, so SHUT(0) goes on the return path at once (the source's downtime ends there)
     * once the receive channels are closed and no error came. Then the receive threads are
     * joined and the devices cleaned up, before anything reads RAM or the vCPUs run, and the
     * main channel closes. (Joining first put the scheduling of six waking threads on a loaded
     * machine, tens of ms, into the downtime.)
     */
    private void finishLoad(Transport.Connection c, LoadVmDispatcher d) {
        MultifdReceiver rx = multifd;
        if (rx != null) {
            rx.stop();
            error.throwIfSet();
        }
        vmdesc = d.vmdesc();
        if (returnPathOpen) {
            sendReturnPath(c, new ReturnPathMessage.Shut(0));
        }
        if (rx != null) {
            rx.close();
        }
        d.cleanup();
        c.close();
        totalTimeMs = System.currentTimeMillis() - startMillis;
    }

    /**
     * Status completed. With {@code x-jmigrate-digest} the digest reads RAM as loaded and the
     * vCPUs wait for it (holdRunUntil), but the completed status does not when the VM stays
     * paused; without it (the default) the vCPUs run right after SHUT.
     */
    private void completed() {
        // the process's CPU time at completion, before the digest (tests only) hashes RAM: the
        // benchmark's CPU seconds per GiB end here, not when its next poll sees 'completed'
        cpuSecondsAtCompletion = processCpuSeconds();
        if (digests) {
            java.util.concurrent.CompletableFuture<String> sha = RamDigest.sha256Async(subject.ramBlocks(),
                    "mig/dst/digest");
            deviceDigests = subject.deviceDigests(); // before the vCPUs may change device state
            digest = sha;
            subject.holdRunUntil(sha);
        }
        subject.incomingCompleted();
        if (subject.isRunning()) {
            stats.phase("resumed");
        }
        stats.phase("completed");
        state.cas(MigrationStatus.ACTIVE, MigrationStatus.COMPLETED);
    }

    /**
     * The one failure path: record the first error, stop the receive threads, clean the devices
     * up, SHUT(1) on the return path when it is open, close everything; the VM never runs.
     */
    private void failed(Throwable t) {
        error.set(t);
        MultifdReceiver rx = multifd;
        if (rx != null) {
            rx.fail(error.get());
            rx.close();
        }
        loadPool.abort();
        LoadVmDispatcher d = dispatcher;
        if (d != null) {
            d.cleanup(); // load_cleanup wakes the load threads
        }
        loadPool.close(); // then every load thread is joined
        Transport.Connection c = connection;
        if (c != null) {
            if (returnPathOpen) {
                try {
                    sendReturnPath(c, new ReturnPathMessage.Shut(1));
                } catch (RuntimeException ignored) {
                    // the channel is already broken
                }
            }
            c.close();
        }
        listener.close();
        totalTimeMs = startMillis < 0 ? -1 : System.currentTimeMillis() - startMillis;
        subject.incomingFailed();
        state.finish(cancelRequested ? MigrationStatus.CANCELLED : MigrationStatus.FAILED);
    }

    /**
     * Accepts the main channel, and with multifd the N channels too (see the class comment).
     * Returns the main channel with the state active.
     */
    private Transport.Connection acceptChannels() throws InterruptedException {
        if (listener.isFile()) {
            if (liveConfig.get().multifd()) {
                throw new MigrationException(Category.CONFIG, "the multifd capability needs a tcp: or unix: "
                        + "incoming URI; file: migration with multifd needs mapped-ram, which jmigrate does not "
                        + "implement");
            }
            Transport.Connection c = listener.openFile();
            connection = c;
            activate();
            return c;
        }
        IncomingListener.Accepted first = listener.acceptUnclassified();
        MigrationConfig cfg = liveConfig.get();
        quiet = ChannelWatchdog.forReads(cfg.stallTimeout(), error::set);
        TlsContext tls;
        try {
            tls = cfg.concludeTls(MigrationUri.parse(listener.boundUri()), subject.tlsObjects(), false);
        } catch (RuntimeException e) {
            Transport.closeQuietly(first.channel());
            throw e;
        }
        if (tls != null) {
            return acceptTls(first, cfg, tls);
        }
        activate();
        if (!cfg.multifd()) {
            IncomingListener.Incoming in;
            try {
                in = IncomingListener.classify(first, PEEK_TIMEOUT);
            } catch (RuntimeException e) {
                listener.close();
                throw e;
            }
            if (!in.main()) {
                listener.close();
                throw refuse(in, notMultifd(in));
            }
            Transport.Connection c = new Transport.Connection(watched(in.channel(), "the main channel"), true,
                    in.description());
            connection = c;
            setupDone = true;
            listenUntilTheEnd(PEEK_TIMEOUT);
            return c;
        }
        MultifdReceiver rx = newReceiver(cfg);
        MultifdConfig mc = rx.config();
        Duration timeout = mc.timeout();
        classifyLater(first, timeout);
        listenUntilTheEnd(timeout);
        try {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (!mainArrived.await(20, TimeUnit.MILLISECONDS)) {
                error.throwIfSet();
                if (System.nanoTime() > deadline) {
                    throw new MigrationException(Category.TIMEOUT, "the main channel did not arrive on "
                            + listener.boundUri() + " within " + Durations.human(timeout) + " of the first connection (multifd is on "
                            + "here: is it on at the source, with the same multifd-channels?)");
                }
            }
            error.throwIfSet();
            IncomingListener.Incoming in = mainChannel.get();
            Transport.Connection c = new Transport.Connection(watched(in.channel(), "the main channel"), true,
                    in.description());
            connection = c;
            rx.awaitChannels();
            setupDone = true;
            return c;
        } catch (RuntimeException | InterruptedException e) {
            listener.close();
            throw e;
        }
    }

    private MultifdReceiver newReceiver(MigrationConfig cfg) {
        List<RamBlock> blocks = subject.ramBlocks();
        MultifdConfig mc = cfg.multifdConfig(subject.uuid(), blocks.getFirst().pageSize());
        Map<String, MultifdBlock> byName = new HashMap<>();
        for (RamBlock b : blocks) {
            byName.put(b.idstr(), new MultifdBlock(b.idstr(), b.segment(), b.pageSize()));
        }
        MultifdReceiver rx = new MultifdReceiver(mc, byName::get, deviceStateSink(prepareDevices(cfg)), error);
        multifd = rx;
        return rx;
    }

    /** How many accepted connections may be in their TLS handshake at once; more are closed at once. */
    static final int MAX_PENDING_HANDSHAKES = 16;
    /** How many refused connections {@link #refusedConnections()} remembers. */
    static final int MAX_REFUSED_KEPT = 16;

    /** One accepted connection in its handshake, in accept order. */
    private record Pending(IncomingListener.Accepted accepted, java.util.concurrent.CompletableFuture<TlsChannel> result) {
    }

    private static final Pending NO_MORE = new Pending(null, null);
    private final java.util.Deque<String> refused = new java.util.ArrayDeque<>();

    /** Why recent connections were refused without failing the migration (newest last). */
    public List<String> refusedConnections() {
        synchronized (refused) {
            return List.copyOf(refused);
        }
    }

    private void refuseQuietly(String why) {
        System.err.println("jmigrate: incoming migration on " + listener.boundUri() + ": refused " + why);
        synchronized (refused) {
            if (refused.size() == MAX_REFUSED_KEPT) {
                refused.removeFirst();
            }
            refused.addLast(why);
        }
    }

    /**
     * Accepting under TLS (PROTOCOL.md §2.2): nothing can be peeked, so connections are told apart
     * by order, as QEMU does: in accept order, the first connection whose handshake succeeds (and
     * whose client certificate passes tls-authz) is the main channel, and each later one is a
     * multifd channel. A connection whose handshake fails (plaintext, random bytes, an untrusted
     * or expired certificate, a DN that is not allowed) is refused, its reason logged and kept in
     * {@link #refusedConnections}, and the migration goes on waiting for the real source. Each
     * handshake runs on its own thread, bounded by {@link Transport#TLS_HANDSHAKE_TIMEOUT}; the
     * state becomes active when the main channel is established.
     */
    private Transport.Connection acceptTls(IncomingListener.Accepted first, MigrationConfig cfg, TlsContext tls)
            throws InterruptedException {
        MultifdReceiver rx = cfg.multifd() ? newReceiver(cfg) : null;
        int wanted = rx == null ? 0 : rx.config().channels();
        java.util.concurrent.LinkedBlockingQueue<Pending> order = new java.util.concurrent.LinkedBlockingQueue<>();
        java.util.concurrent.Semaphore handshakes = new java.util.concurrent.Semaphore(MAX_PENDING_HANDSHAKES);
        AtomicReference<TlsChannel> main = new AtomicReference<>();
        order.add(handshakeLater(first, tls, handshakes));
        Thread.ofPlatform().name("mig/dst/listen").daemon(true).start(() -> {
            try {
                while (!error.isSet()) {
                    IncomingListener.Accepted a = listener.acceptUnclassified();
                    if (!handshakes.tryAcquire()) {
                        Transport.closeQuietly(a.channel());
                        refuseQuietly(a.description() + ": " + MAX_PENDING_HANDSHAKES + " connections are already in "
                                + "their TLS handshake");
                        continue;
                    }
                    handshakes.release();
                    order.add(handshakeLater(a, tls, handshakes));
                }
            } catch (MigrationException e) {
                if (e.category() != Category.CANCELLED) {
                    error.set(e);
                }
            } finally {
                order.add(NO_MORE);
            }
        });
        Thread.ofVirtual().name("mig/dst/tls-order").start(() -> {
            int assigned = 0;
            try {
                while (true) {
                    Pending p = order.take();
                    if (p == NO_MORE) {
                        return;
                    }
                    TlsChannel ch;
                    try {
                        ch = p.result().join();
                    } catch (java.util.concurrent.CompletionException e) {
                        refuseQuietly(e.getCause().getMessage());
                        continue;
                    }
                    if (error.isSet()) {
                        ch.close();
                    } else if (main.get() == null) {
                        main.set(ch);
                        Transport.Connection c = new Transport.Connection(watched(ch, "the main channel"), true,
                                ch.description() + " (main, TLS)");
                        connection = c;
                        mainArrived.countDown();
                    } else if (assigned < wanted) {
                        assigned++;
                        String name = ch.description() + " (multifd, TLS)";
                        channelThread("mig/dst/classify").start(() -> {
                            try {
                                java.nio.channels.ByteChannel w = watched(ch, name);
                                ChannelWatchdog.rename(w, "multifd channel " + rx.addChannel(w, name));
                            } catch (RuntimeException e) {
                                error.set(e);
                            }
                        });
                    } else {
                        ch.close();
                        refuseQuietly(ch.description() + ": an extra connection (this migration has its main channel"
                                + (wanted > 0 ? " and its " + wanted + " multifd channel(s)" : "") + " already)");
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        try {
            while (!mainArrived.await(20, TimeUnit.MILLISECONDS)) {
                error.throwIfSet();
            }
            error.throwIfSet();
            activate();
            Transport.Connection c = connection;
            if (rx != null) {
                rx.awaitChannels();
            }
            return c;
        } finally {
            listener.close(); // mig/dst/listen ends; later connections are refused
        }
    }

    /**
     * A platform thread for the set-up of one incoming connection (classify, TLS handshake,
     * multifd init). Not a virtual thread: a blocking read on a virtual thread switches the
     * socket to non-blocking mode for good, and then every read of the channel thread that
     * later owns it that finds no data takes two more system calls (a read that fails with
     * EAGAIN, then a poll) and a wake-up, for the whole migration.
     */
    private static Thread.Builder channelThread(String name) {
        return Thread.ofPlatform().name(name).daemon(true);
    }

    private java.util.concurrent.CompletableFuture<TlsChannel> startHandshake(IncomingListener.Accepted a,
                                                                             TlsContext tls,
                                                                             java.util.concurrent.Semaphore slots) {
        java.util.concurrent.CompletableFuture<TlsChannel> f = new java.util.concurrent.CompletableFuture<>();
        slots.acquireUninterruptibly();
        channelThread("mig/dst/tls-handshake").start(() -> {
            try {
                f.complete(tls.handshake(a.channel(), a.description(), Transport.TLS_HANDSHAKE_TIMEOUT));
            } catch (Throwable t) {
                f.completeExceptionally(t);
            } finally {
                slots.release();
            }
        });
        return f;
    }

    private Pending handshakeLater(IncomingListener.Accepted a, TlsContext tls, java.util.concurrent.Semaphore slots) {
        return new Pending(a, startHandshake(a, tls, slots));
    }

    /**
     * {@code mig/dst/listen}: keeps accepting until the load ends (run() closes the listener), so
     * that a connection this destination does not expect (a multifd channel id beyond
     * multifd-channels, a multifd channel without multifd, a second main channel) is refused
     * with an error that names it, instead of being reset by a closed listener: the source
     * would then hang up and the truncated main stream, a mere consequence, would be reported.
     */
    private void listenUntilTheEnd(Duration timeout) {
        Thread.ofPlatform().name("mig/dst/listen").daemon(true).start(() -> {
            try {
                while (!error.isSet()) {
                    classifyLater(listener.acceptUnclassified(), timeout);
                }
            } catch (MigrationException e) {
                if (e.category() != Category.CANCELLED) {
                    error.set(e);
                }
            }
        });
    }

    private static MigrationException notMultifd(IncomingListener.Incoming in) {
        MigrationException tls = tlsAtTheSourceOnly(in);
        if (tls != null) {
            return tls;
        }
        return new MigrationException(Category.MISMATCH, in.description() + " is a multifd channel, but this "
                + "destination expects only the main channel (is the multifd capability on at the source only?)");
    }

    /**
     * A connection that opens with a TLS handshake record (0x16 0x03: a ClientHello) at a
     * destination without tls-creds: the source has TLS on and this side does not.
     */
    private static MigrationException tlsAtTheSourceOnly(IncomingListener.Incoming in) {
        ByteBuffer b = in.channel().unread();
        if (b.remaining() >= 2 && b.get(0) == 0x16 && b.get(1) == 0x03) {
            return new MigrationException(Category.MISMATCH, in.description() + " starts a TLS handshake, but tls-creds "
                    + "is not set on this destination (set the same tls-creds parameter here, or unset it at the source)");
        }
        return null;
    }

    /** Records {@code e} as the first error, then closes the refused connection: the cause is in before the source can see the hang-up. */
    private MigrationException refuse(IncomingListener.Incoming in, MigrationException e) {
        MigrationException first = error.set(e);
        Transport.closeQuietly(in.channel());
        return first;
    }

    private void activate() {
        digests = liveConfig.get().has(Capability.X_JMIGRATE_DIGEST);
        startMillis = System.currentTimeMillis();
        if (!state.cas(MigrationStatus.SETUP, MigrationStatus.ACTIVE)) {
            throw new MigrationException(Category.STATE, "incoming migration state is " + state.get().qmpName);
        }
    }

    /**
     * Classifies {@code a} on its own thread; a multifd channel's init is read and validated there
     * too. Once every expected channel is in ({@link #setupDone}), a connection that closes or
     * stays silent before its first 4 bytes proves nothing about this migration and is just
     * dropped; one that is a channel this destination refuses fails the migration.
     */
    private void classifyLater(IncomingListener.Accepted a, Duration timeout) {
        boolean late = setupDone;
        channelThread("mig/dst/classify").start(() -> {
            IncomingListener.Incoming in;
            try {
                in = IncomingListener.classify(a, timeout);
            } catch (RuntimeException e) {
                if (!late) {
                    error.set(e);
                }
                return;
            }
            try {
                if (!in.main() && late) {
                    addLateMultifd(in, timeout);
                    return;
                }
                if (!in.main() && multifd == null) {
                    throw refuse(in, notMultifd(in));
                }
                if (in.main()) {
                    IncomingListener.Incoming prior = mainChannel.compareAndExchange(null, in);
                    if (prior != null || connection != null) {
                        throw refuse(in, new MigrationException(Category.PROTOCOL, in.description() + " is a "
                                + "second main channel (it starts with the QEVM magic); the first was "
                                + (prior != null ? prior.description() : connection.description())));
                    }
                    Transport.Connection c = new Transport.Connection(in.channel(), true, in.description());
                    connection = c;
                    if (error.isSet()) {
                        c.close();
                    }
                    mainArrived.countDown();
                } else {
                    MigrationException tls = tlsAtTheSourceOnly(in);
                    if (tls != null) {
                        throw refuse(in, tls);
                    }
                    java.nio.channels.ByteChannel w = watched(in.channel(), in.description());
                    ChannelWatchdog.rename(w, "multifd channel " + multifd.addChannel(w, in.description()));
                }
            } catch (RuntimeException e) {
                error.set(e);
            }
        });
    }

    /**
     * A multifd connection after every expected channel is in: one whose 64-byte init is not a
     * multifd init carrying this migration's UUID (random bytes, another migration's source) is
     * refused without failing the migration in progress, its reason logged and kept in
     * {@link #refusedConnections}; one from this migration's source (a channel id beyond
     * multifd-channels, a duplicate, multifd at the source only) fails it with the mismatch named.
     */
    private void addLateMultifd(IncomingListener.Incoming in, Duration timeout) {
        io.jmigrate.channel.PeekedChannel ch;
        try {
            ch = io.jmigrate.channel.PeekedChannel.extend(in.channel(), io.jmigrate.multifd.MultifdInit.SIZE,
                    in.description(), timeout);
            io.jmigrate.multifd.MultifdInit init = io.jmigrate.multifd.MultifdInit.decode(ch.unread(), in.description());
            if (!java.util.Arrays.equals(init.uuid(), subject.uuid())) {
                throw new MigrationException(Category.MISMATCH, in.description() + ": its multifd init carries "
                        + "another UUID than this migration's");
            }
        } catch (RuntimeException notOurs) {
            Transport.closeQuietly(in.channel());
            refuseQuietly(in.description() + " after all channels were in: " + notOurs.getMessage()
                    + " (the migration in progress goes on)");
            return;
        }
        if (multifd == null) {
            throw refuse(in, notMultifd(in));
        }
        java.nio.channels.ByteChannel w = watched(ch, in.description());
        ChannelWatchdog.rename(w, "multifd channel " + multifd.addChannel(w, in.description()));
    }

    /** One return-path message (PROTOCOL.md §1.10), written whole under the connection's lock. */
    private static void sendReturnPath(Transport.Connection c, ReturnPathMessage m) {
        ByteBuffer b = m.encode();
        try {
            synchronized (c) {
                while (b.hasRemaining()) {
                    c.channel().write(b);
                }
            }
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "writing to the return path failed: " + Transport.describe(e), e);
        }
    }

    private volatile double cpuSecondsAtCompletion = -1;

    private static double processCpuSeconds() {
        if (java.lang.management.ManagementFactory.getOperatingSystemMXBean()
                instanceof com.sun.management.OperatingSystemMXBean os) {
            long ns = os.getProcessCpuTime();
            return ns < 0 ? -1 : ns / 1e9;
        }
        return -1;
    }

    public Map<String, Object> info() {
        MigrationStatus s = state.get();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("status", s.qmpName);
        if (s == MigrationStatus.COMPLETED && cpuSecondsAtCompletion >= 0) {
            m.put("x-jmigrate-cpu-seconds", cpuSecondsAtCompletion);
        }
        if (startMillis >= 0) {
            m.put("total-time", totalTimeMs >= 0 ? totalTimeMs : System.currentTimeMillis() - startMillis);
        }
        QemuFileReader r = reader;
        if (r != null) {
            long mfd = 0;
            MultifdReceiver rx = multifd;
            if (rx != null) {
                for (ChannelStats cs : rx.stats()) {
                    mfd += cs.bytes();
                }
            }
            Map<String, Object> ram = new LinkedHashMap<>();
            ram.put("transferred", r.position() + mfd);
            ram.put("multifd-bytes", mfd);
            m.put("ram", ram);
        }
        MigrationException e = error.get();
        if (s == MigrationStatus.FAILED && e != null) {
            m.put("error-desc", e.getMessage());
        }
        if (!stats.isEmpty()) {
            MultifdReceiver rx = multifd;
            m.put("x-jmigrate-device-state", stats.toQmp(rx == null ? List.of() : rx.stats()));
        }
        socketAddress().ifPresent(a -> m.put("socket-address", List.of(a)));
        return m;
    }

    /**
     * QEMU's {@code socket-address} (since 4.0): where the destination listens, with the real
     * port when {@code tcp:HOST:0} was asked, so that a client need not guess a free port.
     */
    private java.util.Optional<Map<String, Object>> socketAddress() {
        if (listener.isFile()) {
            return java.util.Optional.empty();
        }
        Map<String, Object> a = new LinkedHashMap<>();
        switch (MigrationUri.parse(listener.boundUri())) {
            case MigrationUri.Tcp t -> {
                a.put("type", "inet");
                a.put("host", t.host());
                a.put("port", String.valueOf(t.port()));
            }
            case MigrationUri.Unix u -> {
                a.put("type", "unix");
                a.put("path", u.path().toString());
            }
            case MigrationUri.File f -> {
                return java.util.Optional.empty();
            }
        }
        return java.util.Optional.of(a);
    }

    long createdMillis() {
        return createdMillis;
    }
}
