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
    private final AtomicReference<IncomingListener.Incoming> mainChannel = new AtomicReference<>();
    private final CountDownLatch mainArrived = new CountDownLatch(1);
    private final long createdMillis = System.currentTimeMillis();
    private volatile long startMillis = -1;
    private volatile long totalTimeMs = -1;
    private volatile Transport.Connection connection;
    private volatile QemuFileReader reader;
    /** The RAM digest after loading, computed while completion is reported (null before). */
    private volatile java.util.concurrent.CompletableFuture<String> digest;
    private volatile boolean cancelRequested;
    private volatile Thread thread;
    private volatile String vmdesc;

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
     * complete. It is computed on {@code mig/dst/digest} once loading is done, before the vCPUs
     * may run; this waits for it (up to 5 minutes).
     */
    public String digest() {
        return RamDigest.await(digest, OutgoingMigration.DIGEST_WAIT);
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
        cancelRequested = true;
        error.set(new MigrationException(Category.CANCELLED, "incoming migration cancelled"));
        listener.close();
        Transport.Connection c = connection;
        if (c != null) {
            c.close();
        }
    }

    @Override
    public void run() {
        Transport.Connection c = null;
        boolean[] rpOpen = {false};
        try {
            c = acceptChannels();
            QemuFileReader r = new QemuFileReader(c.channel(), "incoming migration stream from " + c.description(),
                    StreamLimits.DEFAULT);
            reader = r;
            SaveStateRegistry reg = subject.loadRegistry();
            MultifdReceiver rx = multifd;
            if (rx != null) {
                SaveStateEntry ram = reg.find(RamFlags.IDSTR, 0);
                if (ram == null || !(ram.handlers() instanceof RamLoader loader)) {
                    throw new MigrationException(Category.INTERNAL, "multifd needs the ram section's loader");
                }
                loader.useMultifd(rx);
            }
            final Transport.Connection conn = c;
            LoadVmDispatcher d = new LoadVmDispatcher(reg, subject.configuration(), new LoadVmDispatcher.ReturnPath() {
                @Override
                public void open() {
                    if (!conn.bidirectional()) {
                        throw new MigrationException(Category.PROTOCOL, "OPEN_RETURN_PATH on a one-way channel");
                    }
                    rpOpen[0] = true;
                }

                @Override
                public void pong(int value) {
                    if (rpOpen[0]) {
                        sendReturnPath(conn, 2, value);
                    }
                }
            });
            d.load(r, () -> cancelRequested || error.isSet());
            error.throwIfSet();
            if (rx != null) {
                // every page is in memory (the last SYNC was passed); stop the receive threads
                // before anything reads RAM or the vCPUs run
                rx.close();
                error.throwIfSet();
            }
            vmdesc = d.vmdesc();
            if (rpOpen[0]) {
                sendReturnPath(c, 1, 0); // SHUT: the source's downtime ends here, before our digest
            }
            c.close();
            totalTimeMs = System.currentTimeMillis() - startMillis;
            // the digest reads RAM as loaded; the vCPUs wait for it (holdRunUntil) but the
            // completed status does not when the VM stays paused
            java.util.concurrent.CompletableFuture<String> sha = RamDigest.sha256Async(subject.ramBlocks(),
                    "mig/dst/digest");
            digest = sha;
            subject.holdRunUntil(sha);
            subject.incomingCompleted();
            state.cas(MigrationStatus.ACTIVE, MigrationStatus.COMPLETED);
        } catch (Throwable t) {
            error.set(t);
            MultifdReceiver rx = multifd;
            if (rx != null) {
                rx.fail(error.get());
                rx.close();
            }
            c = c != null ? c : connection;
            if (c != null) {
                if (rpOpen[0]) {
                    try {
                        sendReturnPath(c, 1, 1);
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
            Transport.Connection c;
            try {
                IncomingListener.Incoming in = IncomingListener.classify(first, PEEK_TIMEOUT);
                if (!in.main()) {
                    Transport.closeQuietly(in.channel());
                    throw new MigrationException(Category.MISMATCH, in.description() + " is a multifd channel, "
                            + "but this destination expects only the main channel (is the multifd capability on "
                            + "at the source only?)");
                }
                c = new Transport.Connection(in.channel(), true, in.description());
            } finally {
                listener.close();
            }
            connection = c;
            return c;
        }
        MultifdReceiver rx = newReceiver(cfg);
        MultifdConfig mc = rx.config();
        Duration timeout = mc.timeout();
        classifyLater(first, timeout);
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
            Transport.Connection c = new Transport.Connection(in.channel(), true, in.description());
            connection = c;
            rx.awaitChannels();
            return c;
        } finally {
            listener.close(); // mig/dst/listen ends; later connections are refused
        }
    }

    private MultifdReceiver newReceiver(MigrationConfig cfg) {
        List<RamBlock> blocks = subject.ramBlocks();
        MultifdConfig mc = cfg.multifdConfig(subject.uuid(), blocks.getFirst().pageSize());
        Map<String, MultifdBlock> byName = new HashMap<>();
        for (RamBlock b : blocks) {
            byName.put(b.idstr(), new MultifdBlock(b.idstr(), b.segment(), b.pageSize()));
        }
        MultifdReceiver rx = new MultifdReceiver(mc, byName::get, DeviceStateSink.NONE, error);
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

    private void refuse(String why) {
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
                        refuse(a.description() + ": " + MAX_PENDING_HANDSHAKES + " connections are already in "
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
                        refuse(e.getCause().getMessage());
                        continue;
                    }
                    if (error.isSet()) {
                        ch.close();
                    } else if (main.get() == null) {
                        main.set(ch);
                        Transport.Connection c = new Transport.Connection(ch, true, ch.description() + " (main, TLS)");
                        connection = c;
                        mainArrived.countDown();
                    } else if (assigned < wanted) {
                        assigned++;
                        String name = ch.description() + " (multifd, TLS)";
                        Thread.ofVirtual().name("mig/dst/classify").start(() -> {
                            try {
                                rx.addChannel(ch, name);
                            } catch (RuntimeException e) {
                                error.set(e);
                            }
                        });
                    } else {
                        ch.close();
                        refuse(ch.description() + ": an extra connection (this migration has its main channel"
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

    private java.util.concurrent.CompletableFuture<TlsChannel> startHandshake(IncomingListener.Accepted a,
                                                                             TlsContext tls,
                                                                             java.util.concurrent.Semaphore slots) {
        java.util.concurrent.CompletableFuture<TlsChannel> f = new java.util.concurrent.CompletableFuture<>();
        slots.acquireUninterruptibly();
        Thread.ofVirtual().name("mig/dst/tls-handshake").start(() -> {
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

    private void activate() {
        startMillis = System.currentTimeMillis();
        if (!state.cas(MigrationStatus.SETUP, MigrationStatus.ACTIVE)) {
            throw new MigrationException(Category.STATE, "incoming migration state is " + state.get().qmpName);
        }
    }

    /** Classifies {@code a} on its own thread; a multifd channel's init is read and validated there too. */
    private void classifyLater(IncomingListener.Accepted a, Duration timeout) {
        Thread.ofVirtual().name("mig/dst/classify").start(() -> {
            try {
                IncomingListener.Incoming in = IncomingListener.classify(a, timeout);
                if (in.main()) {
                    if (!mainChannel.compareAndSet(null, in)) {
                        Transport.closeQuietly(in.channel());
                        throw new MigrationException(Category.PROTOCOL, in.description() + " is a second main "
                                + "channel (it starts with the QEVM magic); the first was "
                                + mainChannel.get().description());
                    }
                    Transport.Connection c = new Transport.Connection(in.channel(), true, in.description());
                    connection = c;
                    if (error.isSet()) {
                        c.close();
                    }
                    mainArrived.countDown();
                } else {
                    multifd.addChannel(in.channel(), in.description());
                }
            } catch (RuntimeException e) {
                error.set(e);
            }
        });
    }

    /** One return-path message: be16 type, be16 length 4, be32 value (SHUT = 1, PONG = 2). */
    private static void sendReturnPath(Transport.Connection c, int type, int value) {
        ByteBuffer b = ByteBuffer.allocate(8);
        b.putShort((short) type).putShort((short) 4).putInt(value).flip();
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

    public Map<String, Object> info() {
        MigrationStatus s = state.get();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("status", s.qmpName);
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
