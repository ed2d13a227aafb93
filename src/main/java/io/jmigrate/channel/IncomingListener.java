package io.jmigrate.channel;

import io.jmigrate.common.Durations;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.time.Duration;

/**
 * The destination's listener (QEMU's {@code migration_ioc_process_incoming}): accepts
 * connections on one address and classifies each by its first 4 bytes: be32 0x5145564d
 * ("QEVM") is the main channel, anything else a multifd channel (PROTOCOL.md §2.2). The 4
 * bytes are kept and replayed by the returned {@link PeekedChannel}.
 */
public final class IncomingListener implements AutoCloseable {
    /** The main stream's file magic, "QEVM". */
    public static final int MAIN_MAGIC = 0x5145564d;

    /** An accepted, classified connection. */
    public record Incoming(PeekedChannel channel, boolean main, String description) {
    }

    private final ServerSocketChannel server;
    private final MigrationUri uri;
    private final MigrationUri bound;
    private int accepted;

    private IncomingListener(ServerSocketChannel server, MigrationUri uri, MigrationUri bound) {
        this.server = server;
        this.uri = uri;
        this.bound = bound;
    }

    /** Binds {@code tcp:HOST:PORT} (port 0 picks a free one, see {@link #address()}) or {@code unix:PATH}. */
    public static IncomingListener bind(MigrationUri uri) {
        ServerSocketChannel s = null;
        try {
            switch (uri) {
                case MigrationUri.Tcp t -> {
                    s = ServerSocketChannel.open();
                    s.setOption(java.net.StandardSocketOptions.SO_REUSEADDR, true);
                    s.bind(t.address(), 64);
                    int port = ((InetSocketAddress) s.getLocalAddress()).getPort();
                    return new IncomingListener(s, uri, new MigrationUri.Tcp(t.host(), port));
                }
                case MigrationUri.Unix u -> {
                    Files.deleteIfExists(u.path());
                    s = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                    s.bind(UnixDomainSocketAddress.of(u.path()), 64);
                    return new IncomingListener(s, uri, uri);
                }
                case MigrationUri.File f -> throw new MigrationException(Category.CONFIG,
                        "cannot listen on " + f.text() + ": incoming file migration reads the file instead");
            }
        } catch (IOException e) {
            Transports.closeQuietly(s);
            throw new MigrationException(Category.IO, "cannot listen on " + uri.text() + ": " + e.getMessage(), e);
        }
    }

    /** The bound address (with the real port when 0 was asked). */
    public MigrationUri address() {
        return bound;
    }

    /**
     * Accepts the next connection within {@code timeout} and classifies it; the 4-byte peek is
     * bounded by the same timeout.
     *
     * @throws MigrationException TIMEOUT if nobody connects or sends 4 bytes in time
     */
    public Incoming accept(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        Accepted a = acceptUnclassified(timeout);
        return classify(a, Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
    }

    /** An accepted connection not classified yet (see {@link #classify}). */
    public record Accepted(SocketChannel channel, String description) {
    }

    /**
     * Accepts the next connection within {@code timeout} without reading from it, so that the
     * caller can classify it on another thread (a silent connection then never holds up the
     * next one).
     *
     * @throws MigrationException TIMEOUT if nobody connects in time
     */
    public Accepted acceptUnclassified(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        SocketChannel ch = null;
        try {
            server.configureBlocking(false);
            try (Selector sel = Selector.open()) {
                server.register(sel, SelectionKey.OP_ACCEPT);
                while ((ch = server.accept()) == null) {
                    long left = (deadline - System.nanoTime()) / 1_000_000;
                    if (left <= 0) {
                        throw new MigrationException(Category.TIMEOUT, "no connection on " + bound.text()
                                + " within " + Durations.human(timeout));
                    }
                    sel.select(left);
                }
            }
            int n;
            synchronized (this) {
                n = ++accepted;
            }
            return new Accepted(ch, bound.text() + " connection " + n);
        } catch (IOException e) {
            Transports.closeQuietly(ch);
            throw new MigrationException(Category.IO, "accepting on " + bound.text() + " failed: " + e.getMessage(), e);
        }
    }

    /**
     * Reads the first 4 bytes of an accepted connection within {@code timeout} and tells the
     * main channel from a multifd channel. The connection is closed if this fails.
     *
     * @throws MigrationException TIMEOUT if the 4 bytes do not come in time, PROTOCOL if it closes first
     */
    public static Incoming classify(Accepted a, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        SocketChannel ch = a.channel();
        String desc = a.description();
        try {
            ch.configureBlocking(false);
            ByteBuffer magic = ByteBuffer.allocate(4);
            try (Selector sel = Selector.open()) {
                ch.register(sel, SelectionKey.OP_READ);
                while (magic.hasRemaining()) {
                    if (ch.read(magic) < 0) {
                        throw new MigrationException(Category.PROTOCOL, desc + " closed after " + magic.position()
                                + " byte(s), before the 4 bytes that tell the main channel from a multifd channel");
                    }
                    long left = (deadline - System.nanoTime()) / 1_000_000;
                    if (magic.hasRemaining()) {
                        if (left <= 0) {
                            throw new MigrationException(Category.TIMEOUT, desc + " sent only " + magic.position()
                                    + " of its first 4 bytes within " + Durations.human(timeout));
                        }
                        sel.select(left);
                    }
                }
                sel.keys().forEach(SelectionKey::cancel);
                sel.selectNow();
            }
            ch.configureBlocking(true);
            boolean main = magic.getInt(0) == MAIN_MAGIC;
            return new Incoming(new PeekedChannel(ch, magic.array()), main, desc + (main ? " (main)" : " (multifd)"));
        } catch (IOException e) {
            Transports.closeQuietly(ch);
            throw new MigrationException(Category.IO, "reading the first bytes of " + desc + " failed: "
                    + e.getMessage(), e);
        } catch (RuntimeException e) {
            Transports.closeQuietly(ch);
            throw e;
        }
    }

    @Override
    public void close() {
        Transports.closeQuietly(server);
        if (uri instanceof MigrationUri.Unix u) {
            try {
                Files.deleteIfExists(u.path());
            } catch (IOException ignored) {
                // best effort
            }
        }
    }
}
