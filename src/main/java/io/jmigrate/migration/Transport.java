package io.jmigrate.migration;

import io.jmigrate.channel.IncomingListener;
import io.jmigrate.channel.MigrationUri;
import io.jmigrate.channel.TlsContext;
import io.jmigrate.channel.Transports;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.nio.channels.ByteChannel;
import java.time.Duration;

/**
 * The main channel of one migration on top of the {@code channel} package: a connected TCP or
 * UNIX socket (bidirectional, so a return path is possible), or a file (one direction). Closing
 * a connection from another thread unblocks a blocked read or write, which is how cancellation
 * stops the migration thread.
 */
final class Transport {
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);
    /** Accept waits in slices of this, so that cancellation is noticed. */
    private static final Duration ACCEPT_SLICE = Duration.ofMillis(500);

    private Transport() {
    }

    /** One main-channel connection. */
    record Connection(ByteChannel channel, boolean bidirectional, String description) implements AutoCloseable {
        @Override
        public void close() {
            try {
                channel.close();
            } catch (IOException ignored) {
                // closing after an error: the first error is already recorded
            }
        }
    }

    /** The source side: connects (or creates the file). */
    static Connection connect(MigrationUri uri) {
        return connect(uri, null);
    }

    /** The source side, with a TLS handshake on the connection when {@code tls} is not null. */
    static Connection connect(MigrationUri uri, TlsContext tls) {
        return switch (uri) {
            case MigrationUri.File f -> new Connection(Transports.createFile(f), false, f.text());
            case MigrationUri.Tcp t -> new Connection(secure(Transports.connect(t, CONNECT_TIMEOUT), tls,
                    "main channel to " + t.text()), true, t.text() + (tls != null ? " (TLS)" : ""));
            case MigrationUri.Unix u -> new Connection(secure(Transports.connect(u, CONNECT_TIMEOUT), tls,
                    "main channel to " + u.text()), true, u.text() + (tls != null ? " (TLS)" : ""));
        };
    }

    /** The TLS handshake bound on both sides (a connection that takes longer is refused). */
    static final Duration TLS_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);

    private static java.nio.channels.ByteChannel secure(java.nio.channels.SocketChannel ch, TlsContext tls,
                                                        String description) {
        return tls == null ? ch : tls.handshake(ch, description, TLS_HANDSHAKE_TIMEOUT);
    }

    /** Multifd channel {@code id}, with TLS when {@code tls} is not null. */
    static java.nio.channels.ByteChannel connectMultifd(MigrationUri uri, int id, TlsContext tls) {
        java.nio.channels.SocketChannel ch = connectMultifd(uri, id);
        return secure(ch, tls, "multifd channel " + id + " to " + uri.text());
    }

    /** The source side of multifd channel {@code id}: one more connection to the main channel's address. */
    static java.nio.channels.SocketChannel connectMultifd(MigrationUri uri, int id) {
        return switch (uri) {
            case MigrationUri.File f -> throw new MigrationException(Category.CONFIG, "multifd channels need a tcp: "
                    + "or unix: URI, not " + f.text());
            case MigrationUri.Tcp t -> connectChannel(t, id);
            case MigrationUri.Unix u -> connectChannel(u, id);
        };
    }

    private static java.nio.channels.SocketChannel connectChannel(MigrationUri uri, int id) {
        try {
            return Transports.connect(uri, CONNECT_TIMEOUT);
        } catch (MigrationException e) {
            throw new MigrationException(e.category(), "multifd channel " + id + ": " + e.getMessage(), e);
        }
    }

    static void closeQuietly(java.nio.channels.Channel c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // tearing down after an error
        }
    }

    static String describe(IOException e) {
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }

    /** The destination side: a bound listener (or the file to read), accepting the main channel. */
    static final class Listener implements AutoCloseable {
        private final MigrationUri uri;
        private final IncomingListener listener;
        private volatile boolean closed;

        Listener(MigrationUri uri) {
            this.uri = uri;
            if (uri instanceof MigrationUri.File f) {
                if (!java.nio.file.Files.isReadable(f.path())) {
                    throw new MigrationException(Category.CONFIG, "incoming file '" + f.path()
                            + "' does not exist or is not readable");
                }
                listener = null;
            } else {
                listener = IncomingListener.bind(uri);
            }
        }

        /** The bound address (tcp port 0 resolved). */
        String boundUri() {
            return listener == null ? uri.text() : listener.address().text();
        }

        boolean isFile() {
            return listener == null;
        }

        /** The file of a {@code file:} URI, as the main channel. */
        Connection openFile() {
            return new Connection(Transports.openFile((MigrationUri.File) uri), false, uri.text());
        }

        /**
         * Waits (until {@link #close}) for the next connection, without reading from it.
         *
         * @throws MigrationException CANCELLED once closed
         */
        IncomingListener.Accepted acceptUnclassified() {
            while (true) {
                try {
                    return listener.acceptUnclassified(ACCEPT_SLICE);
                } catch (MigrationException e) {
                    if (closed) {
                        throw new MigrationException(Category.CANCELLED, "incoming migration on " + boundUri()
                                + " stopped listening");
                    }
                    if (e.category() != Category.TIMEOUT) {
                        throw e;
                    }
                }
            }
        }

        /**
         * Waits (until {@link #close}) for the main channel when multifd is off. A connection
         * that does not start with the main stream's magic is a multifd channel, which this
         * destination does not expect: it is refused with an error.
         */
        Connection acceptMain(Duration peekTimeout) {
            IncomingListener.Incoming in = IncomingListener.classify(acceptUnclassified(), peekTimeout);
            if (!in.main()) {
                closeQuietly(in.channel());
                throw new MigrationException(Category.MISMATCH, in.description() + " is a multifd channel, "
                        + "but this destination expects only the main channel (is the multifd capability on "
                        + "at the source only?)");
            }
            return new Connection(in.channel(), true, in.description());
        }

        @Override
        public void close() {
            closed = true;
            if (listener != null) {
                listener.close();
            }
        }
    }
}
