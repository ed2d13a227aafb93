package io.jmigrate.channel;

import io.jmigrate.common.Durations;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSession;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ScatteringByteChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A TLS connection over a blocking {@link SocketChannel} (QEMU's {@code QIOChannelTLS}): an
 * {@link SSLEngine} that encrypts gathering writes straight from the caller's (direct) buffers
 * and decrypts scattering reads straight into the caller's buffers whenever one whole record
 * fits, so that only records larger than the space left go through an internal buffer.
 *
 * <h2>Threads</h2>
 * One reader and one writer may run at once (the main channel's return path reads while the
 * migration thread writes): reads and writes each hold their own lock, and the engine allows
 * wrap and unwrap to run concurrently. A post-handshake message that needs an answer (a TLS 1.3
 * KeyUpdate) is answered under the write lock.
 *
 * <h2>Closing</h2>
 * {@link #close} sends close_notify when no write is in progress (so that the peer sees an
 * orderly end, as QEMU 10's multifd expects), then closes the socket; called from another thread
 * while a write is blocked it just closes the socket, which unblocks that write.
 */
public final class TlsChannel implements ByteChannel, ScatteringByteChannel, GatheringByteChannel {
    /** How many records one socket write carries at most. */
    private static final int RECORDS_PER_WRITE = 4;

    private final SocketChannel socket;
    private final SSLEngine engine;
    private final String description;
    private final ReentrantLock readLock = new ReentrantLock();
    private final ReentrantLock writeLock = new ReentrantLock();
    /** Ciphertext read from the socket, not yet unwrapped (fill mode). */
    private ByteBuffer netIn;
    /** Plaintext unwrapped but not yet returned (read mode). */
    private ByteBuffer appIn;
    /** Ciphertext to write (fill mode between writes). */
    private ByteBuffer netOut;
    private boolean inboundClosed;
    /** A client saw the server's first message after the handshake (it accepted the certificate). */
    private boolean serverAccepted;
    private volatile boolean closed;

    private TlsChannel(SocketChannel socket, SSLEngine engine, String description, ByteBuffer netIn) {
        this.socket = socket;
        this.engine = engine;
        this.description = description;
        SSLSession s = engine.getSession();
        this.netIn = netIn;
        this.appIn = ByteBuffer.allocate(s.getApplicationBufferSize()).flip();
        this.netOut = ByteBuffer.allocateDirect(s.getPacketBufferSize() * RECORDS_PER_WRITE);
    }

    public SocketChannel socket() {
        return socket;
    }

    public SSLSession session() {
        return engine.getSession();
    }

    public String description() {
        return description;
    }

    /**
     * On a client: whether the server's first message after the handshake arrived within the
     * wait, which tells that it accepted this client's certificate (a jmigrate or JDK server sends
     * a session ticket at once); false for a server that sends nothing first.
     */
    public boolean serverAccepted() {
        return serverAccepted;
    }

    /**
     * Runs the handshake on {@code socket} with {@code engine} (configured as client or server by
     * {@link TlsContext}) within {@code timeout}, and returns the channel in blocking mode. On
     * failure the alert, if any, is sent and the socket is closed.
     *
     * @param awaitVerdict a client waits (up to this long) for the server's first message after
     *                     the handshake, so that a server that rejects the client certificate
     *                     (which TLS 1.3 reports only after the client finished) fails the
     *                     handshake here rather than a later write; zero to skip
     * @throws MigrationException PROTOCOL (handshake refused, with the reason), TIMEOUT, IO
     */
    static TlsChannel handshake(SocketChannel socket, SSLEngine engine, String description, Duration timeout,
                                Duration awaitVerdict) {
        long deadline = System.nanoTime() + timeout.toNanos();
        SSLSession s = engine.getSession();
        ByteBuffer netIn = ByteBuffer.allocateDirect(s.getPacketBufferSize());
        ByteBuffer netOut = ByteBuffer.allocateDirect(s.getPacketBufferSize());
        ByteBuffer app = ByteBuffer.allocate(s.getApplicationBufferSize());
        ByteBuffer empty = ByteBuffer.allocate(0);
        boolean ok = false;
        boolean accepted = false;
        long firstBytes = -1;
        try (Selector sel = Selector.open()) {
            socket.configureBlocking(false);
            SelectionKey key = socket.register(sel, 0);
            engine.beginHandshake();
            try {
                loop:
                while (true) {
                    switch (engine.getHandshakeStatus()) {
                        case NEED_WRAP -> {
                            netOut.clear();
                            SSLEngineResult r = engine.wrap(empty, netOut);
                            netOut.flip();
                            flush(socket, key, sel, netOut, deadline, description, timeout);
                            if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                                throw new SSLException("the TLS engine closed during the handshake");
                            }
                        }
                        case NEED_UNWRAP, NEED_UNWRAP_AGAIN -> {
                            netIn.flip();
                            SSLEngineResult r;
                            try {
                                r = engine.unwrap(netIn, app);
                            } finally {
                                netIn.compact();
                            }
                            if (r.getStatus() == SSLEngineResult.Status.BUFFER_UNDERFLOW) {
                                if (!netIn.hasRemaining()) {
                                    throw new SSLException("a TLS record larger than " + netIn.capacity() + " bytes");
                                }
                                int got = fill(socket, key, sel, netIn, deadline, description, timeout);
                                if (firstBytes < 0 && netIn.position() >= 4) {
                                    firstBytes = netIn.getInt(0);
                                }
                                if (got < 0) {
                                    throw new MigrationException(Category.PROTOCOL, description + ": the peer closed the "
                                            + "connection during the TLS handshake (" + (engine.getUseClientMode()
                                            ? "is tls-creds set on the destination? Its log names the reason"
                                            : "it may not trust this host's certificate") + ")");
                                }
                            } else if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                                throw new SSLException("the peer closed the TLS session during the handshake");
                            }
                        }
                        case NEED_TASK -> runTasks(engine);
                        case FINISHED, NOT_HANDSHAKING -> {
                            break loop;
                        }
                    }
                }
                if (!engine.getUseClientMode()) {
                    // a TLS 1.3 server's NewSessionTicket may wait for the next wrap; the client
                    // waits for it (awaitVerdict), and a destination never writes on a multifd channel
                    netOut.clear();
                    engine.wrap(empty, netOut);
                    netOut.flip();
                    flush(socket, key, sel, netOut, deadline, description, timeout);
                }
                if (engine.getUseClientMode() && !awaitVerdict.isZero()) {
                    accepted = awaitVerdict(socket, key, sel, engine, netIn, app,
                            System.nanoTime() + awaitVerdict.toNanos());
                }
            } catch (SSLException e) {
                // the engine may hold an alert for the peer: send it before closing
                sendAlert(engine, socket, key, sel, netOut, empty, deadline, description, timeout);
                throw refused(description, engine, firstBytes, e);
            }
            key.cancel();
            sel.selectNow();
            socket.configureBlocking(true);
            app.flip();
            TlsChannel ch = new TlsChannel(socket, engine, description, netIn);
            ch.serverAccepted = accepted;
            if (app.hasRemaining()) {
                ch.appIn = ByteBuffer.allocate(Math.max(app.remaining(), ch.appIn.capacity())).put(app).flip();
            }
            ok = true;
            return ch;
        } catch (IOException e) {
            throw new MigrationException(Category.IO, description + ": TLS handshake failed: " + e.getMessage(), e);
        } finally {
            if (!ok) {
                Transports.closeQuietly(socket);
            }
        }
    }

    /**
     * After a TLS 1.3 client finished, the server still verifies the client's certificate; a
     * JDK server then sends a NewSessionTicket, a rejecting one an alert (which unwrap throws).
     */
    private static boolean awaitVerdict(SocketChannel socket, SelectionKey key, Selector sel, SSLEngine engine,
                                        ByteBuffer netIn, ByteBuffer app, long deadline) throws IOException {
        while (true) {
            netIn.flip();
            int before = netIn.remaining();
            SSLEngineResult r = engine.unwrap(netIn, app);
            netIn.compact();
            while (engine.getHandshakeStatus() == SSLEngineResult.HandshakeStatus.NEED_TASK) {
                runTasks(engine);
            }
            if (r.getStatus() == SSLEngineResult.Status.CLOSED || r.bytesProduced() > 0
                    || (r.getStatus() == SSLEngineResult.Status.OK && r.bytesConsumed() > 0 && before > 0)) {
                return true; // a ticket, data or close_notify: the server accepted this client
            }
            if (r.getStatus() != SSLEngineResult.Status.BUFFER_UNDERFLOW) {
                return false;
            }
            key.interestOps(SelectionKey.OP_READ);
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                return false; // a server that sends nothing first (e.g. without session tickets)
            }
            sel.select(left);
            if (socket.read(netIn) < 0) {
                throw new SSLException("the server closed the connection right after the handshake");
            }
        }
    }

    private static void sendAlert(SSLEngine engine, SocketChannel socket, SelectionKey key, Selector sel,
                                  ByteBuffer netOut, ByteBuffer empty, long deadline, String description,
                                  Duration timeout) {
        try {
            engine.closeOutbound();
            for (int i = 0; i < 4 && !engine.isOutboundDone(); i++) {
                netOut.clear();
                engine.wrap(empty, netOut);
                netOut.flip();
                flush(socket, key, sel, netOut, Math.min(deadline, System.nanoTime() + 1_000_000_000L), description,
                        timeout);
            }
        } catch (IOException | RuntimeException ignored) {
            // the alert is a courtesy: the handshake failed anyway
        }
    }

    /** The handshake failed: name the reason as the people at either end will understand it. */
    private static MigrationException refused(String description, SSLEngine engine, long firstBytes, SSLException e) {
        boolean client = engine.getUseClientMode();
        String side = client ? "" : " from a client";
        String reason = TlsTrust.reason(e);
        String msg = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        if (!client && reason == null) {
            if (firstBytes == IncomingListener.MAIN_MAGIC || firstBytes == 0x11223344L) {
                reason = "the peer sent plaintext migration data (" + (firstBytes == IncomingListener.MAIN_MAGIC
                        ? "the QEVM stream magic" : "a multifd init packet") + ") but TLS is configured here "
                        + "(tls-creds): set tls-creds on the source too";
            } else if (msg.contains("Unrecognized SSL message") || msg.contains("Unsupported or unrecognized")) {
                reason = "the peer did not start a TLS handshake (it sent plaintext or random bytes) but TLS is "
                        + "configured here (tls-creds)";
            } else if (msg.contains("Empty client certificate chain")) {
                reason = "the client sent no certificate, but tls-creds has verify-peer=on (give the source "
                        + "client-cert.pem and client-key.pem)";
            }
        }
        int alert = msg.indexOf("Received fatal alert: ");
        if (reason == null && alert >= 0) {
            String what = msg.substring(alert + "Received fatal alert: ".length());
            reason = client ? "the destination refused the TLS session (" + what + " alert): it did not accept "
                    + "this host's certificate (its CA, its validity, or its DN under tls-authz); the destination's "
                    + "log names the reason"
                    : "the peer refused the TLS session (" + what + " alert)";
        }
        return new MigrationException(Category.PROTOCOL, description + ": TLS handshake" + side + " failed: "
                + (reason != null ? reason : msg), e);
    }

    private static void runTasks(SSLEngine engine) {
        Runnable t;
        while ((t = engine.getDelegatedTask()) != null) {
            t.run();
        }
    }

    private static void flush(SocketChannel socket, SelectionKey key, Selector sel, ByteBuffer b, long deadline,
                              String description, Duration timeout) throws IOException {
        while (b.hasRemaining()) {
            if (socket.write(b) == 0) {
                key.interestOps(SelectionKey.OP_WRITE);
                waitFor(sel, deadline, description, timeout);
            }
        }
    }

    private static int fill(SocketChannel socket, SelectionKey key, Selector sel, ByteBuffer b, long deadline,
                            String description, Duration timeout) throws IOException {
        while (true) {
            int n = socket.read(b);
            if (n != 0) {
                return n;
            }
            key.interestOps(SelectionKey.OP_READ);
            waitFor(sel, deadline, description, timeout);
        }
    }

    private static void waitFor(Selector sel, long deadline, String description, Duration timeout) throws IOException {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        if (left <= 0) {
            throw new MigrationException(Category.TIMEOUT, description + ": the TLS handshake did not complete within "
                    + Durations.human(timeout));
        }
        sel.select(left);
        sel.selectedKeys().clear();
    }

    // ---------------------------------------------------------------- reads

    @Override
    public int read(ByteBuffer dst) throws IOException {
        return (int) read(new ByteBuffer[]{dst}, 0, 1);
    }

    @Override
    public long read(ByteBuffer[] dsts) throws IOException {
        return read(dsts, 0, dsts.length);
    }

    @Override
    public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
        readLock.lock();
        try {
            long want = 0;
            for (int i = offset; i < offset + length; i++) {
                want += dsts[i].remaining();
            }
            if (want == 0) {
                return 0;
            }
            while (true) {
                if (appIn.hasRemaining()) {
                    return drainAppIn(dsts, offset, length);
                }
                if (inboundClosed) {
                    return -1;
                }
                netIn.flip();
                SSLEngineResult r;
                try {
                    r = engine.unwrap(netIn, dsts, offset, length);
                    if (r.getStatus() == SSLEngineResult.Status.BUFFER_OVERFLOW) {
                        appIn.clear();
                        r = engine.unwrap(netIn, appIn);
                        appIn.flip();
                    }
                } finally {
                    netIn.compact();
                }
                afterUnwrap();
                switch (r.getStatus()) {
                    case OK -> {
                        if (r.bytesProduced() > 0 && !appIn.hasRemaining()) {
                            return r.bytesProduced();
                        }
                    }
                    case CLOSED -> inboundClosed = true;
                    case BUFFER_UNDERFLOW -> {
                        if (!netIn.hasRemaining()) {
                            ByteBuffer bigger = ByteBuffer.allocateDirect(netIn.capacity() * 2);
                            netIn.flip();
                            netIn = bigger.put(netIn);
                        }
                        if (socket.read(netIn) < 0) {
                            inboundClosed = true; // EOF without close_notify: the stream's framing tells truncation
                        }
                    }
                    case BUFFER_OVERFLOW -> throw new IOException(description + ": TLS record larger than "
                            + appIn.capacity() + " bytes of plaintext");
                }
            }
        } catch (SSLException e) {
            throw new IOException(description + ": TLS: " + e.getMessage(), e);
        } finally {
            readLock.unlock();
        }
    }

    private long drainAppIn(ByteBuffer[] dsts, int offset, int length) {
        long n = 0;
        for (int i = offset; i < offset + length && appIn.hasRemaining(); i++) {
            ByteBuffer d = dsts[i];
            int k = Math.min(d.remaining(), appIn.remaining());
            d.put(d.position(), appIn, appIn.position(), k);
            d.position(d.position() + k);
            appIn.position(appIn.position() + k);
            n += k;
        }
        return n;
    }

    /** Post-handshake messages: a KeyUpdate wants our own in reply. */
    private void afterUnwrap() throws IOException {
        SSLEngineResult.HandshakeStatus hs = engine.getHandshakeStatus();
        while (hs == SSLEngineResult.HandshakeStatus.NEED_TASK) {
            runTasks(engine);
            hs = engine.getHandshakeStatus();
        }
        if (hs == SSLEngineResult.HandshakeStatus.NEED_WRAP) {
            writeLock.lock();
            try {
                wrapAndWrite(new ByteBuffer[0], 0, 0);
            } finally {
                writeLock.unlock();
            }
        }
    }

    // ---------------------------------------------------------------- writes

    @Override
    public int write(ByteBuffer src) throws IOException {
        return (int) write(new ByteBuffer[]{src}, 0, 1);
    }

    @Override
    public long write(ByteBuffer[] srcs) throws IOException {
        return write(srcs, 0, srcs.length);
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        writeLock.lock();
        try {
            return wrapAndWrite(srcs, offset, length);
        } finally {
            writeLock.unlock();
        }
    }

    /** Wraps everything remaining in {@code srcs} (or one handshake message if empty) and writes it. */
    private long wrapAndWrite(ByteBuffer[] srcs, int offset, int length) throws IOException {
        if (closed) {
            throw new ClosedChannelException();
        }
        long consumed = 0;
        int packet = engine.getSession().getPacketBufferSize();
        try {
            do {
                netOut.clear();
                while (true) {
                    SSLEngineResult r = engine.wrap(srcs, offset, length, netOut);
                    if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                        throw new ClosedChannelException();
                    }
                    if (r.getStatus() == SSLEngineResult.Status.BUFFER_OVERFLOW) {
                        if (netOut.position() > 0) {
                            break;
                        }
                        netOut = ByteBuffer.allocateDirect(netOut.capacity() * 2);
                        continue;
                    }
                    consumed += r.bytesConsumed();
                    while (engine.getHandshakeStatus() == SSLEngineResult.HandshakeStatus.NEED_TASK) {
                        runTasks(engine);
                    }
                    if (!remaining(srcs, offset, length) || netOut.remaining() < packet) {
                        break;
                    }
                }
                netOut.flip();
                while (netOut.hasRemaining()) {
                    socket.write(netOut);
                }
            } while (remaining(srcs, offset, length));
        } catch (IOException e) {
            if (e instanceof SSLException) {
                throw new IOException(description + ": TLS: " + e.getMessage(), e);
            }
            throw withPeerAlert(e);
        }
        return consumed;
    }

    private static boolean remaining(ByteBuffer[] srcs, int offset, int length) {
        for (int i = offset; i < offset + length; i++) {
            if (srcs[i].hasRemaining()) {
                return true;
            }
        }
        return false;
    }

    /**
     * A write failed (the peer closed): if the peer sent an alert first, and no read is in
     * progress to see it, read it here so that the error names it instead of "Broken pipe".
     */
    private IOException withPeerAlert(IOException e) {
        if (closed || !readLock.tryLock()) {
            return e;
        }
        try {
            // no read or write is in progress (we hold both locks), so the mode may change
            socket.configureBlocking(false);
            try {
                socket.read(netIn);
            } finally {
                socket.configureBlocking(true);
            }
            netIn.flip();
            try {
                engine.unwrap(netIn, appIn.compact());
            } finally {
                appIn.flip();
                netIn.compact();
            }
        } catch (SSLException alert) {
            return new IOException(description + ": " + alert.getMessage() + " (the peer ended the TLS session; "
                    + e.getMessage() + ")", e);
        } catch (IOException | RuntimeException ignored) {
            // nothing better to say
        } finally {
            readLock.unlock();
        }
        return e;
    }

    @Override
    public boolean isOpen() {
        return !closed && socket.isOpen();
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        if (writeLock.tryLock()) {
            try {
                if (!closed && socket.isOpen() && socket.isBlocking()) {
                    engine.closeOutbound();
                    netOut.clear();
                    engine.wrap(new ByteBuffer[0], netOut);
                    netOut.flip();
                    while (netOut.hasRemaining()) {
                        socket.write(netOut);
                    }
                }
            } catch (IOException | RuntimeException ignored) {
                // the peer is gone: close_notify is a courtesy
            } finally {
                closed = true;
                writeLock.unlock();
            }
        }
        closed = true;
        Transports.closeQuietly(socket);
    }
}
