package io.jmigrate.migration;

import io.jmigrate.channel.MigrationUri;
import io.jmigrate.channel.StallWatchdog;
import io.jmigrate.channel.Transports;

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
import io.jmigrate.savevm.SaveStateRegistry;
import io.jmigrate.savevm.SaveVmDriver;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SaveVmOptions;
import io.jmigrate.stream.QemuFileWriter;

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
    private final StallWatchdog stall;
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
    });
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
        this.stall = new StallWatchdog(config.stallTimeout(), error::set);
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
     * migration did not complete. It is computed after {@code completed} is reported; this
     * waits for it (up to 5 minutes).
     */
    public String digest() {
        return RamDigest.await(digest, DIGEST_WAIT);
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
                cancelRequested = true;
                error.set(new MigrationException(Category.CANCELLED, "migration cancelled by the user"));
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
        SaveVmOptions options = new SaveVmOptions(multifdDeviceState(), subject.sendSwitchoverStart());
        SaveStateRegistry<SaveVmHandlers.Save> reg = subject.saveRegistry(options, ram, n -> {
            if (eventsOn()) {
                events.emit("MIGRATION_PASS", Map.of("pass", n));
            }
        }, mode);
        SaveVmDriver d = new SaveVmDriver(reg.entries(), subject.configuration(), ram.pageSize);
        driver = d;
        QemuFileWriter w = new QemuFileWriter(c.channel(), "migration stream to " + c.description());
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
     * §1.12 steps 4-8 with the VM stopped: status device, [SWITCHOVER_START], END sections,
     * FULL sections, EOF, vmdesc.
     */
    private void switchover() {
        precopyBytes = transferred();
        subject.stopForMigration();
        if (!state.cas(MigrationStatus.ACTIVE, MigrationStatus.DEVICE)) {
            throw cancelledOrState();
        }
        driver.complete(writer, subject.sendSwitchoverStart(), true);
        downtimeBytes = transferred() - precopyBytes;
    }

    /**
     * With a return path: the destination's SHUT, sent once it has loaded everything (§1.10),
     * within x-jmigrate-stall-timeout.
     */
    private void awaitDestination() throws InterruptedException {
        SourceReturnPath rp = returnPath;
        if (rp != null) {
            rp.awaitShut(config.stallTimeout());
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
     * Stats, cleanup, status completed (run state postmigrate); the RAM digest (for integrity
     * checks) runs after completion is reported: the VM stays stopped in postmigrate, and cont
     * waits for it (holdRunUntil).
     */
    private void completed() {
        // total-time ends with the stream, as QEMU's; the digest (for tests) is not part of it
        long total = System.currentTimeMillis() - startMillis;
        updateRates(transferred(), total);
        totalTimeMs = total;
        driver.cleanup();
        java.util.concurrent.CompletableFuture<String> d = new java.util.concurrent.CompletableFuture<>();
        digest = d;
        subject.holdRunUntil(d);
        subject.outgoingCompleted();
        state.cas(MigrationStatus.DEVICE, MigrationStatus.COMPLETED);
        try {
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
            if (pending <= threshold) {
                pending = driver.pendingExact();
                if (pending <= threshold) {
                    return;
                }
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
    public Map<String, Object> info() {
        MigrationStatus s = state.get();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("status", s.qmpName);
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
        MigrationException e = error.get();
        if (s == MigrationStatus.FAILED && e != null) {
            m.put("error-desc", e.getMessage());
        }
        return m;
    }
}
