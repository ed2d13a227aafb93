package io.jmigrate.migration;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ByteChannel;
import java.nio.channels.FileChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;

/**
 * The main channel's transport, internal to {@code migration} until the {@code channel} package
 * takes over: a connected TCP or UNIX socket (bidirectional, so a return path is possible), or
 * a file (one direction). Closing a connection from another thread unblocks a blocked read or
 * write, which is how cancellation stops the migration thread.
 */
final class Transport {
    private static final int CONNECT_TIMEOUT_MS = 10_000;

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
        try {
            return switch (uri) {
                case MigrationUri.Tcp t -> {
                    SocketChannel ch = SocketChannel.open();
                    try {
                        ch.socket().connect(new InetSocketAddress(t.host(), t.port()), CONNECT_TIMEOUT_MS);
                        ch.socket().setTcpNoDelay(true);
                    } catch (IOException e) {
                        ch.close();
                        throw e;
                    }
                    yield new Connection(ch, true, uri.toString());
                }
                case MigrationUri.Unix u -> new Connection(SocketChannel.open(UnixDomainSocketAddress.of(u.path())),
                        true, uri.toString());
                case MigrationUri.File f -> new Connection(FileChannel.open(f.path(), StandardOpenOption.CREATE,
                        StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING), false, uri.toString());
            };
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "Failed to connect to '" + uri + "': " + describe(e), e);
        }
    }

    static String describe(IOException e) {
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }

    /** The destination side: a bound listener (or the file to read), accepting one connection. */
    static final class Listener implements AutoCloseable {
        private final MigrationUri uri;
        private final ServerSocketChannel server;

        Listener(MigrationUri uri) {
            this.uri = uri;
            try {
                switch (uri) {
                    case MigrationUri.Tcp t -> {
                        server = ServerSocketChannel.open();
                        server.socket().setReuseAddress(true);
                        server.bind(new InetSocketAddress(t.host(), t.port()));
                    }
                    case MigrationUri.Unix u -> {
                        Files.deleteIfExists(u.path());
                        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                        server.bind(UnixDomainSocketAddress.of(u.path()));
                    }
                    case MigrationUri.File f -> {
                        if (!Files.isReadable(f.path())) {
                            throw new MigrationException(Category.CONFIG, "incoming file '" + f.path()
                                    + "' does not exist or is not readable");
                        }
                        server = null;
                    }
                }
            } catch (IOException e) {
                throw new MigrationException(Category.IO, "Failed to listen on '" + uri + "': " + describe(e), e);
            }
        }

        /** The bound address (for tcp port 0). */
        String boundUri() {
            if (uri instanceof MigrationUri.Tcp t && server != null) {
                return "tcp:" + t.host() + ":" + server.socket().getLocalPort();
            }
            return uri.toString();
        }

        Connection accept() {
            try {
                if (server == null) {
                    MigrationUri.File f = (MigrationUri.File) uri;
                    return new Connection(FileChannel.open(f.path(), StandardOpenOption.READ), false, uri.toString());
                }
                SocketChannel ch = server.accept();
                if (uri instanceof MigrationUri.Tcp) {
                    ch.socket().setTcpNoDelay(true);
                }
                return new Connection(ch, true, uri + " from " + ch.getRemoteAddress());
            } catch (IOException e) {
                throw new MigrationException(Category.IO, "accepting the incoming migration on '" + uri + "' failed: "
                        + describe(e), e);
            }
        }

        @Override
        public void close() {
            try {
                if (server != null) {
                    server.close();
                    if (uri instanceof MigrationUri.Unix u) {
                        Files.deleteIfExists(u.path());
                    }
                }
            } catch (IOException ignored) {
                // best effort
            }
        }
    }
}
