package io.jmigrate.migration;

import io.jmigrate.channel.MigrationUri;
import io.jmigrate.channel.ChannelWatchdog;
import io.jmigrate.channel.Transports;

import io.jmigrate.common.Durations;
import io.jmigrate.common.EventSink;
import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.RamDigest;
import io.jmigrate.multifd.ChannelStats;
import io.jmigrate.multifd.MultifdConfig;
import io.jmigrate.multifd.MultifdSender;
import io.jmigrate.multifd.ZeroPageDetection;
import io.jmigrate.ram.RamSaver;
import io.jmigrate.ram.RamStats;
import io.jmigrate.savevm.Command;
import io.jmigrate.savevm.SaveStateRegistry;
import io.jmigrate.savevm.SaveVmDriver;
import io.jmigrate.savevm.SaveStateEntry;
import io.jmigrate.devstate.DeviceThreadPool;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SaveVmOptions;
import io.jmigrate.savevm.StreamFraming;
import io.jmigrate.stream.QemuFileWriter;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * One outgoing precopy migration over the main channel, run by the migration thread
 * {@code mig/src/main} (migration.c's {@code migration_thread}):
 *
 * <ol>
 *   <li>setup: connect, header, configuration, [OPEN_RETURN_PATH, PING], RAM START;</li>
 *   <li>iterate: PART sections of dirty pages, rate limited to max-bandwidth in 100 ms windows;
 *       every 100 ms the bandwidth estimate, expected downtime and switchover threshold
 *       ({@code bandwidth × downtime-limit}, or avail-switchover-bandwidth) are updated;</li>
 *   <li>switchover when pending &lt; threshold: stop the vCPUs, status device,
 *       [SWITCHOVER_START], RAM END, FULL sections, EOF, vmdesc, [wait for SHUT];</li>
 *   <li>completed, the source in postmigrate; on failure or cancel the source VM resumes.</li>
 * </ol>
 *
 * <h2>Device state over multifd (PROTOCOL.md §3.4)</h2>
 * With multifd on and compression none (jmigrate has no mapped-ram), every device with the
 * save-thread hook gets a thread {@code mig/src/save_<idstr>} after SWITCHOVER_START; its packets
 * share the channels with RAM's END pages. Invariants:
 * <ul>
 *   <li>no SYNC without a paired flush: only RAM syncs (at its scan's wrap, paired with the
 *       MULTIFD_FLUSH in its END section, or with EOS in legacy mode); nothing syncs after the
 *       save threads start, so no device-state packet is ever stuck behind an unpaired SYNC;</li>
 *   <li>the channels are not shut down while a device-state packet is queued (PROTOCOL.md §9
 *       question 1), by this explicit order: (1) the save threads are joined: every packet is
 *       <em>queued</em>; (2) FULL sections and EOF go out on the main channel; (3) with a
 *       return path, the destination's SHUT is awaited: it is sent only after every load thread
 *       has finished, i.e. after every device-state packet was received and applied; (4)
 *       {@link MultifdSender#close} drains: it returns only when every channel has written its
 *       handed-off packet to its socket, then ends the threads and closes the sockets, which is
 *       an orderly FIN behind the written bytes (the destination never writes on a multifd
 *       channel, so no reset discards them). Without a return path, (3) is skipped and (4) alone
 *       guarantees that every packet is on the wire before the close; the destination in turn
 *       waits at EOF for its load threads (bounded by {@code x-multifd-timeout}) and never
 *       completes, nor closes its channels, while a device still loads;</li>
 *   <li>one failure path: a failing save thread records the first error and sets the pool's
 *       abort flag (the others stop at their next chunk), the join fails, the VM resumes with
 *       its RAM and device state untouched (a save thread only reads). A cancel or a channel
 *       error does the same through the first-error listener.</li>
 * </ul>
 */
public final class OutgoingMigration implements Runnable {
    private static final long BUFFER_DELAY_MS = 100;
    static final java.time.Duration DIGEST_WAIT = java.time.Duration.ofMinutes(5);

    private final MigrationSubject subject;
    private final Supplier<MigrationConfig> liveConfig;
    private final MigrationConfig config;
    /** TLS for the main and every multifd channel, or null (tls-creds unset). */
    private final io.jmigrate.channel.TlsContext tls;
    private final MigrationUri uri;
    private final MigrationState state;
    private final EventSink events;
    /** x-jmigrate-stall-timeout on the main and every multifd channel: a stall is the first error. */
    private final ChannelWatchdog stall;
    private final RamStats ram = new RamStats();
    /** The first error; it closes the main channel so that a blocked migration thread wakes up. */
    private final FirstError error = new FirstError(e -> {
        Transport.Connection c = this.connection;
        if (c != null && Thread.currentThread() != this.thread) {
            c.close();
        }
        MultifdSender tx = this.multifd;
        if (tx != null) {
            tx.fail(e);
        }
        DeviceThreadPool pool = this.savePool;
        if (pool != null) {
            pool.abort();
        }
    });
    private volatile DeviceThreadPool savePool;
    private final DeviceStateStats stats = new DeviceStateStats("source");
    /** Device digests as of the switchover, computed with the RAM digest (null before). */
    private volatile Map<String, String> deviceDigests;
    private volatile MultifdSender multifd;
    private volatile SourceReturnPath returnPath;
    private volatile SaveVmDriver driver;
    private volatile boolean cancelRequested;
    private volatile Transport.Connection connection;
    private volatile QemuFileWriter writer;
    private volatile Thread thread;

    private final long startMillis = System.currentTimeMillis();
    private volatile long setupTimeMs = -1;
    private volatile long totalTimeMs = -1;
    private volatile long downtimeMs = -1;
    private volatile long expectedDowntimeMs;
    private volatile double bandwidthBytesPerMs;
    private volatile double mbps;
    private volatile long pagesPerSecond;
    private volatile long precopyBytes;
    private volatile long downtimeBytes;
    /** The last PING's value (PING(1) follows OPEN_RETURN_PATH in the header). */
    private int pings = 1;
    /** Whether the destination caught up (catchUp) since the pending bytes last exceeded the threshold. */
    private boolean caughtUp;
    /** Time spent waiting for the destination to catch up before the switchover (catchUp). */
    private volatile long catchUpNanos;
    /** The RAM digest, computed after completion is reported (null before switchover). */
    private volatile java.util.concurrent.CompletableFuture<String> digest;

    OutgoingMigration(MigrationSubject subject, Supplier<MigrationConfig> liveConfig, MigrationUri uri,
                      MigrationState state, EventSink events) {
        this.subject = subject;
        this.liveConfig = liveConfig;
        this.config = liveConfig.get().conclude(uri);
        this.tls = config.concludeTls(uri, subject.tlsObjects(), true);
        this.uri = uri;
        this.state = state;
        this.events = events;
        this.stall = ChannelWatchdog.forWrites(config.stallTimeout(), error::set);
    }

    void start() {
        if (!state.cas(MigrationStatus.NONE, MigrationStatus.SETUP)) {
            throw new MigrationException(Category.STATE, "migration state is " + state.get().qmpName);
        }
        Thread t = new Thread(this, "mig/src/main");
        t.setDaemon(true);
        thread = t;
        t.start();
    }

    public MigrationState state() {
        return state;
    }

    /**
     * The RAM digest as of the switchover (SHA-256, see {@link RamDigest}), or null if the
     * migration did not complete or ran without capability {@code x-jmigrate-digest}. It is
     * computed after {@code completed} is reported; this waits for it (up to 5 minutes).
     */
    public String digest() {
        return RamDigest.await(digest, DIGEST_WAIT);
    }

    /** Whether this migration records digests (capability {@code x-jmigrate-digest} when it started). */
    public boolean digests() {
        return config.has(Capability.X_JMIGRATE_DIGEST);
    }

    public MigrationException error() {
        return error.get();
    }

    /** Waits for the migration thread (tests). */
    public boolean join(long millis) throws InterruptedException {
        Thread t = thread;
        if (t != null) {
            t.join(millis);
            return !t.isAlive();
        }
        return true;
    }

    /** {@code migrate_cancel}: status cancelling, then the thread stops and the VM resumes. */
    void cancel() {
        MigrationStatus cur = state.get();
        while (cur.isActive() && cur != MigrationStatus.CANCELLING) {
            if (state.cas(cur, MigrationStatus.CANCELLING)) {
                // the error before the flag: a thread that sees the flag throws error.get()
                error.set(new MigrationException(Category.CANCELLED, "migration cancelled by the user"));
                cancelRequested = true;
                Transport.Connection c = connection;
                if (c != null) {
                    c.close();
                }
                return;
            }
            cur = state.get();
        }
    }

    private boolean eventsOn() {
        return config.has(Capability.EVENTS);
    }

    /**
     * The migration thread: one method per phase of PROTOCOL.md §1.12 (plus §2.2 for the
     * channels), every failure and a cancel taking the one path of {@link #failed}.
     */
    @Override
    public void run() {
        try {
            Transport.Connection c = connectMain();
            if (config.multifd()) {
                connectMultifd();
            }
            setup(c);
            if (subject.isRunning() && !(uri instanceof MigrationUri.File)) {
                iterate(driver, writer);
            }
            long downStart = System.nanoTime();
            switchover();
            awaitDestination();
            closeChannels(c);
            stats.phase("channels-closed");
            downtimeMs = (System.nanoTime() - downStart) / 1_000_000;
            completed();
        } catch (Throwable t) {
            failed(t);
        } finally {
            stall.close();
        }
    }

    /** §2.2: the main channel (its writes watched for stalls, unless it is a file). */
    private Transport.Connection connectMain() {
        Transport.Connection c = Transport.connect(uri, tls);
        if (!(uri instanceof MigrationUri.File)) {
            c = new Transport.Connection(stall.watch(c.channel(), "the main channel"), c.bidirectional(),
                    c.description());
            stall.start();
        }
        connection = c;
        if (cancelRequested) {
            throw error.get();
        }
        return c;
    }

    /**
     * §2.2: N more connections to the same address, before anything is written on the main
     * channel; each sender thread opens with its init packet.
     */
    private void connectMultifd() {
        MultifdConfig mc = config.multifdConfig(subject.uuid(), subject.ramBlocks().getFirst().pageSize());
        List<java.nio.channels.ByteChannel> chans = new ArrayList<>();
        try {
            for (int i = 0; i < mc.channels(); i++) {
                chans.add(stall.watch(Transport.connectMultifd(uri, i, tls), "multifd channel " + i));
            }
        } catch (RuntimeException e) {
            chans.forEach(Transport::closeQuietly);
            throw e;
        }
        MultifdSender tx = new MultifdSender(mc, chans, error);
        multifd = tx;
        tx.start();
        if (cancelRequested) {
            throw error.get();
        }
    }

    /** Device state over multifd: multifd on, compression none (jmigrate has no mapped-ram). */
    private boolean multifdDeviceState() {
        return config.multifd() && "none".equals(config.multifdCompression());
    }

    /**
     * §1.12 steps 1-2: the device registry for this migration, header, configuration,
     * [OPEN_RETURN_PATH, PING], START sections; then the status becomes active.
     */
    private void setup(Transport.Connection c) {
        MultifdSender tx = multifd;
        RamSaver.Mode mode;
        if (tx != null) {
            mode = new RamSaver.Mode(tx.config().zeroPageDetection() == ZeroPageDetection.LEGACY, tx,
                    subject.multifdFlushAfterEachSection());
        } else {
            mode = RamSaver.Mode.mainChannel(!"none".equals(config.zeroPageDetection()));
        }
        SaveVmOptions options = new SaveVmOptions(multifdDeviceState(), subject.sendSwitchoverStart(),
                liveConfig.get().has(Capability.SWITCHOVER_ACK), null);
        SaveStateRegistry<SaveVmHandlers.Save> reg = subject.saveRegistry(options, ram, n -> {
            if (eventsOn()) {
                events.emit("MIGRATION_PASS", Map.of("pass", n));
            }
        }, mode);
        SaveVmDriver d = new SaveVmDriver(reg.entries(), subject.configuration(), ram.pageSize);
        driver = d;
        QemuFileWriter w = new QemuFileWriter(c.channel(), "migration stream to " + c.description(),
                QemuFileWriter.MAIN_STREAM_PAGES);
        writer = w;
        if (config.has(Capability.RETURN_PATH) && c.bidirectional()) {
            SourceReturnPath rp = new SourceReturnPath(c, error, () -> !cancelRequested && state.get().isActive());
            returnPath = rp;
            rp.start();
        }
        d.writeHeader(w, returnPath != null);
        d.setup(w);
        setupTimeMs = System.currentTimeMillis() - startMillis;
        if (!state.cas(MigrationStatus.SETUP, MigrationStatus.ACTIVE)) {
            throw cancelledOrState();
        }
    }

    /**
     * §1.12 steps 4-8 with the VM stopped, in QEMU's order: status device, [SWITCHOVER_START]
     * (compat property send-switchover-start), save threads spawned (multifd device state
     * only), END sections written while they run, save threads joined, FULL sections, EOF,
     * vmdesc. A failing END section aborts and joins the save threads; a failing save thread
     * aborts the others and fails the join.
     */
    private void switchover() throws InterruptedException {
        precopyBytes = transferred();
        subject.stopForMigration();
        stats.phase("vm-stopped");
        if (!state.cas(MigrationStatus.ACTIVE, MigrationStatus.DEVICE)) {
            throw cancelledOrState();
        }
        QemuFileWriter w = writer;
        if (subject.sendSwitchoverStart()) {
            driver.switchoverStart(w);
            stats.phase("switchover-start-sent");
        }
        DeviceThreadPool pool = startSaveThreads();
        try {
            driver.completeIterables(w);
            w.flush();
        } catch (RuntimeException e) {
            error.set(asSeenHere(e)); // first: the aborted save threads' "cancelled" must not win
            if (pool != null) {
                pool.abort();
                joinSaveThreads(pool);
            }
            throw e;
        }
        stats.phase("end-sections-written");
        if (pool != null) {
            if (!joinSaveThreads(pool)) {
                throw error.get();
            }
            stats.phase("save-threads-joined");
        }
        driver.completeNonIterables(w);
        driver.finish(w, true);
        stats.phase("eof-sent");
        downtimeBytes = transferred() - precopyBytes;
    }

    /**
     * §3.4 step 2.3: joins the save threads; true if no migration error is set. Not bounded by a
     * timeout (a slow device may take long): once an error is set (a save thread's, a channel's,
     * a cancel) the abort flag is set and every thread stops at its next chunk.
     */
    private boolean joinSaveThreads(DeviceThreadPool pool) throws InterruptedException {
        while (!pool.awaitIdle(java.time.Duration.ofMillis(50))) {
            if (error.isSet()) {
                pool.abort();
            }
        }
        return !error.isSet();
    }

    /**
     * §3.4 step 2.1: one save thread {@code mig/src/save_<idstr>} per device with the thread
     * hook, when device state goes over multifd; null when none is spawned.
     */
    private DeviceThreadPool startSaveThreads() {
        MultifdSender tx = multifd;
        if (tx == null || !multifdDeviceState()) {
            return null;
        }
        List<SaveStateEntry<SaveVmHandlers.Save>> devs = driver.saveThreadDevices();
        if (devs.isEmpty()) {
            return null;
        }
        DeviceThreadPool pool = new DeviceThreadPool("mig/src/save_", error);
        savePool = pool;
        if (error.isSet()) {
            pool.abort();
        }
        for (SaveStateEntry<SaveVmHandlers.Save> e : devs) {
            DeviceStateStats.DeviceRecord rec = stats.device(e.idstr(), e.instanceId());
            rec.transfer = "multifd";
            SaveVmHandlers.DeviceStateOutput out = new SaveVmHandlers.DeviceStateOutput() {
                @Override
                public void queue(ByteBuffer data) {
                    int n = data.remaining();
                    tx.queueDeviceState(e.idstr(), e.instanceId(), data);
                    rec.packet(-1, n);
                }

                @Override
                public ByteBuffer queueOwned(ByteBuffer data) {
                    if (!data.isDirect()) {
                        queue(data);
                        return data.clear();
                    }
                    int n = data.remaining();
                    ByteBuffer spare = tx.queueDeviceStateOwned(e.idstr(), e.instanceId(), data);
                    rec.packet(-1, n);
                    return spare;
                }
            };
            pool.submit(e.idstr(), abort -> {
                rec.threadStartUs = DeviceStateStats.nowUs();
                try {
                    e.handlers().saveCompletePrecopyThread(out, abort);
                } finally {
                    rec.threadEndUs = DeviceStateStats.nowUs();
                }
            });
        }
        return pool;
    }

    /**
     * With a return path: the destination's SHUT, sent once it has loaded everything (§1.10),
     * within x-jmigrate-stall-timeout.
     */
    private void awaitDestination() throws InterruptedException {
        SourceReturnPath rp = returnPath;
        if (rp != null) {
            rp.awaitShut(config.stallTimeout());
            stats.phase("destination-loaded");
        }
    }

    /** Every queued multifd packet written, then the channels close; then the main channel. */
    private void closeChannels(Transport.Connection c) {
        MultifdSender tx = multifd;
        if (tx != null) {
            tx.close();
            error.throwIfSet();
        }
        c.close();
    }

    /**
     * Stats, cleanup, status completed (run state postmigrate); with {@code x-jmigrate-digest}
     * the RAM digest (for integrity checks) runs after completion is reported: the VM stays
     * stopped in postmigrate, and cont waits for it (holdRunUntil).
     */
    private void completed() {
        // the process's CPU time at completion, before the digest (tests only) hashes RAM: the
        // benchmark's CPU seconds per GiB end here, not when its next poll sees 'completed'
        cpuSecondsAtCompletion = processCpuSeconds();
        // total-time ends with the stream, as QEMU's; the digest (for tests) is not part of it
        long total = System.currentTimeMillis() - startMillis;
        updateRates(transferred(), total);
        totalTimeMs = total;
        driver.cleanup();
        if (!config.has(Capability.X_JMIGRATE_DIGEST)) {
            subject.outgoingCompleted();
            state.cas(MigrationStatus.DEVICE, MigrationStatus.COMPLETED);
            return;
        }
        java.util.concurrent.CompletableFuture<String> d = new java.util.concurrent.CompletableFuture<>();
        digest = d;
        subject.holdRunUntil(d);
        subject.outgoingCompleted();
        state.cas(MigrationStatus.DEVICE, MigrationStatus.COMPLETED);
        try {
            deviceDigests = subject.deviceDigests();
            d.complete(RamDigest.sha256(subject.ramBlocks()));
        } catch (Throwable t) {
            d.completeExceptionally(t);
        }
    }

    /**
     * The one failure path (errors and cancel alike): record the first error, close every
     * channel, clean the devices up, resume the VM if the switchover had stopped it.
     */
    private void failed(Throwable t) {
        MigrationException e = error.set(asSeenHere(t));
        Transport.Connection c = connection;
        if (c != null) {
            c.close();
        }
        MultifdSender tx = multifd;
        if (tx != null) {
            tx.fail(e);
            tx.close();
        }
        DeviceThreadPool pool = savePool;
        if (pool != null) {
            pool.close(); // abort flag set, every save thread joined
        }
        SaveVmDriver d = driver;
        if (d != null) {
            d.cleanup();
        }
        subject.resumeAfterFailedMigration(); // no-op unless the switchover had stopped the VM
        totalTimeMs = System.currentTimeMillis() - startMillis;
        boolean cancelled = cancelRequested || e.category() == Category.CANCELLED;
        state.finish(cancelled ? MigrationStatus.CANCELLED : MigrationStatus.FAILED);
    }

    /**
     * A main-channel write that failed because the destination hung up is reported as that:
     * the destination closing the main channel is the cause this side can see.
     */
    private static Throwable asSeenHere(Throwable t) {
        if (t instanceof io.jmigrate.stream.StreamException se && se.category() == Category.IO
                && Transports.peerHungUp(se)) {
            return new MigrationException(Category.IO, "the destination closed the main channel ("
                    + se.getMessage() + ")", se);
        }
        return t;
    }

    private MigrationException cancelledOrState() {
        if (cancelRequested) {
            return error.get();
        }
        return new MigrationException(Category.STATE, "migration status changed unexpectedly to "
                + state.get().qmpName);
    }

    private void iterate(SaveVmDriver driver, QemuFileWriter w) throws InterruptedException {
        long windowStart = System.nanoTime();
        long windowBytes = transferred();
        long threshold = 0;
        long pagesAtWindow = pagesSent();
        final long[] window = {windowStart, windowBytes};
        while (true) {
            if (cancelRequested) {
                throw error.get();
            }
            MigrationConfig live = liveConfig.get();
            long budget = Math.max(1, live.effectiveMaxBandwidth() * BUFFER_DELAY_MS / 1000);
            long now = System.nanoTime();
            long elapsedMs = (now - window[0]) / 1_000_000;
            if (elapsedMs >= BUFFER_DELAY_MS) {
                long bytes = transferred() - window[1];
                bandwidthBytesPerMs = (double) bytes / elapsedMs;
                mbps = bandwidthBytesPerMs * 8 * 1000 / 1e6;
                long pages = pagesSent();
                pagesPerSecond = (pages - pagesAtWindow) * 1000 / elapsedMs;
                pagesAtWindow = pages;
                double bw = live.availSwitchoverBandwidth() > 0 ? live.availSwitchoverBandwidth() / 1000.0
                        : bandwidthBytesPerMs;
                threshold = (long) (bw * live.downtimeLimitMs());
                long dirtyAtSync = ram.lastSyncDirtyPages * ram.pageSize;
                expectedDowntimeMs = bandwidthBytesPerMs > 0
                        ? (long) (Math.max(dirtyAtSync, driver.pendingEstimate()) / bandwidthBytesPerMs) : 0;
                window[0] = now;
                window[1] = transferred();
            }
            long pending = driver.pendingEstimate();
            boolean converged = false;
            if (pending <= threshold) {
                pending = driver.pendingExact();
                converged = pending <= threshold;
            }
            if (!converged) {
                caughtUp = false;
            } else if (switchoverAcked()) {
                if (caughtUp || !catchUp(w)) {
                    return;
                }
                // one more iteration sends what the guest dirtied during the wait, and the stream
                // goes on with a section (SWITCHOVER_START follows a section footer, as QEMU's does)
                caughtUp = true;
            } else {
                // migration_can_switchover: with switchover-ack, keep iterating until the ACK
                TimeUnit.MILLISECONDS.sleep(1);
            }
            long limitStart = window[1];
            // one lambda per iteration (up to 50 ms of pages), none per rate check
            driver.iterate(w, () -> transferred() - limitStart >= budget);
            error.throwIfSet();
            if (transferred() - window[1] >= budget) {
                long sleepNanos = window[0] + BUFFER_DELAY_MS * 1_000_000 - System.nanoTime();
                if (sleepNanos > 0) {
                    TimeUnit.NANOSECONDS.sleep(sleepNanos);
                }
            }
        }
    }

    /**
     * Before the VM stops, with a return path: MIG_CMD_PING on the main channel, then wait for
     * its PONG. The destination answers once its loader has read everything before the PING,
     * the last MULTIFD_FLUSH included, at which it waited for every multifd channel's SYNC: so
     * the pages already sent are loaded, not still queued in the sender threads and in the
     * sockets' buffers (on loopback up to tens of MiB per connection; at the destination's rate
     * that was most of the empty switchover's downtime, the destination reaching
     * SWITCHOVER_START hundreds of ms after the stop). The guest keeps running meanwhile; the
     * caller iterates once more and checks convergence again. Bounded by
     * {@code x-jmigrate-stall-timeout}; false (switch over at once) without a return path.
     */
    private boolean catchUp(QemuFileWriter w) throws InterruptedException {
        SourceReturnPath rp = returnPath;
        if (rp == null || rp.ended()) {
            return false;
        }
        int value = ++pings;
        long start = System.nanoTime();
        StreamFraming.writeCommand(w, Command.ping(value));
        w.flush();
        long timeoutNanos = config.stallTimeout().toNanos();
        while (!rp.awaitPong(value, 50)) {
            error.throwIfSet();
            if (cancelRequested) {
                throw error.get();
            }
            if (rp.ended()) {
                return false; // the error (or an early SHUT) is the return path's to report
            }
            if (System.nanoTime() - start > timeoutNanos) {
                throw new MigrationException(Category.TIMEOUT, "the destination did not answer PING(" + value
                        + ") on the return path within " + Durations.human(config.stallTimeout())
                        + " before the switchover (x-jmigrate-stall-timeout)");
            }
        }
        catchUpNanos += System.nanoTime() - start;
        return true;
    }

    /**
     * {@code migration_can_switchover}: without switchover-ack always; with it only once the
     * destination sent SWITCHOVER_ACK (every device that needs one loaded its initial data).
     */
    private boolean switchoverAcked() {
        if (!liveConfig.get().has(Capability.SWITCHOVER_ACK)) {
            return true;
        }
        SourceReturnPath rp = returnPath;
        return rp != null && rp.switchoverAcked();
    }

    /** Bytes on the wire so far: the main channel (as written to the socket buffer) plus every multifd channel. */
    private long transferred() {
        QemuFileWriter w = writer;
        return (w == null ? 0 : w.position()) + multifdBytes();
    }

    /** Called on every rate check of an iteration: sums the channels' counters, allocates nothing. */
    private long multifdBytes() {
        MultifdSender tx = multifd;
        return tx == null ? 0 : tx.bytesSent();
    }

    /** Normal and zero pages sent so far, on the main channel and the multifd channels. */
    private long pagesSent() {
        long n = ram.normalPages + ram.zeroPages;
        MultifdSender tx = multifd;
        return tx == null ? n : n + tx.pagesSent();
    }

    private void updateRates(long transferred, long ms) {
        if (ms > 0) {
            mbps = transferred * 8.0 / 1e6 / (ms / 1000.0);
        }
    }

    /** {@code query-migrate}'s MigrationInfo, with QEMU's member names and types. */
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
        if (s == MigrationStatus.SETUP) {
            return m;
        }
        long now = System.currentTimeMillis();
        long total = totalTimeMs >= 0 ? totalTimeMs : now - startMillis;
        if (setupTimeMs >= 0) {
            m.put("setup-time", setupTimeMs);
        }
        m.put("total-time", total);
        if (s == MigrationStatus.COMPLETED) {
            m.put("downtime", downtimeMs);
            // the waits for the destination to catch up (PING/PONG) before the VM stopped
            m.put("x-jmigrate-catch-up-time", TimeUnit.NANOSECONDS.toMillis(catchUpNanos));
        } else if (s.isActive()) {
            m.put("expected-downtime", expectedDowntimeMs);
        }
        long transferred = transferred();
        long normal = ram.normalPages;
        long duplicate = ram.zeroPages;
        long multifdBytes = 0;
        MultifdSender tx = multifd;
        if (tx != null) {
            for (ChannelStats cs : tx.stats()) {
                normal += cs.normalPages();
                duplicate += cs.zeroPages();
                multifdBytes += cs.bytes();
            }
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("transferred", transferred);
        r.put("remaining", ram.remainingPages * ram.pageSize);
        r.put("total", ram.totalBytes);
        r.put("duplicate", duplicate);
        r.put("normal", normal);
        r.put("normal-bytes", normal * ram.pageSize);
        r.put("dirty-pages-rate", ram.dirtyPagesRate);
        r.put("mbps", Math.round(mbps * 1000) / 1000.0);
        r.put("dirty-sync-count", ram.dirtySyncCount);
        r.put("postcopy-requests", 0);
        r.put("page-size", ram.pageSize);
        r.put("multifd-bytes", multifdBytes);
        r.put("pages-per-second", pagesPerSecond);
        r.put("precopy-bytes", s == MigrationStatus.COMPLETED || s == MigrationStatus.DEVICE ? precopyBytes
                : transferred);
        r.put("downtime-bytes", downtimeBytes);
        r.put("postcopy-bytes", 0);
        r.put("dirty-sync-missed-zero-copy", 0);
        m.put("ram", r);
        long vfio = subject.vfioTransferred();
        if (vfio >= 0) {
            m.put("vfio", Map.of("transferred", vfio));
        }
        MigrationException e = error.get();
        if (s == MigrationStatus.FAILED && e != null) {
            m.put("error-desc", e.getMessage());
        }
        if (!stats.isEmpty()) {
            m.put("x-jmigrate-device-state", stats.toQmp(tx == null ? List.of() : tx.stats()));
        }
        return m;
    }

    /** Device digests as of the switchover (waits for the RAM digest first), or an empty map. */
    public Map<String, String> deviceDigests() {
        String ram = digest();
        Map<String, String> d = deviceDigests;
        return ram == null || d == null ? Map.of() : d;
    }
}
