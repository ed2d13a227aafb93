package io.jmigrate.channel;

import io.jmigrate.common.Durations;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.file.StandardOpenOption;
import java.time.Duration;

/** Opening the source side of a channel: connect a socket, or create a file. */
public final class Transports {
    private Transports() {
    }

    /**
     * Connects to a tcp or unix URI within {@code timeout} and returns a blocking channel.
     *
     * @throws MigrationException IO (refused, unreachable), TIMEOUT, CONFIG (file URI)
     */
    public static SocketChannel connect(MigrationUri uri, Duration timeout) {
        if (uri instanceof MigrationUri.File f) {
            throw new MigrationException(Category.CONFIG, "cannot connect to " + f.text() + ": use openFile for file URIs");
        }
        SocketChannel ch = null;
        try {
            ch = SocketChannel.open(uri.socketAddress().getClass() == java.net.UnixDomainSocketAddress.class
                    ? java.net.StandardProtocolFamily.UNIX : protocol(uri));
            ch.configureBlocking(false);
            if (!ch.connect(uri.socketAddress())) {
                try (Selector sel = Selector.open()) {
                    ch.register(sel, SelectionKey.OP_CONNECT);
                    long deadline = System.nanoTime() + timeout.toNanos();
                    while (!ch.finishConnect()) {
                        long left = (deadline - System.nanoTime()) / 1_000_000;
                        if (left <= 0) {
                            throw new MigrationException(Category.TIMEOUT, "connecting to " + uri.text()
                                    + " timed out after " + Durations.human(timeout));
                        }
                        sel.select(left);
                    }
                }
            }
            ch.configureBlocking(true);
            if (uri instanceof MigrationUri.Tcp) {
                ch.setOption(java.net.StandardSocketOptions.TCP_NODELAY, true);
            }
            return ch;
        } catch (IOException e) {
            closeQuietly(ch);
            throw new MigrationException(Category.IO, "cannot connect to " + uri.text() + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
    }

    private static java.net.ProtocolFamily protocol(MigrationUri uri) {
        java.net.InetSocketAddress a = ((MigrationUri.Tcp) uri).address();
        if (a.isUnresolved()) {
            throw new MigrationException(Category.CONFIG, "cannot resolve host of " + uri.text());
        }
        return a.getAddress() instanceof java.net.Inet6Address ? java.net.StandardProtocolFamily.INET6
                : java.net.StandardProtocolFamily.INET;
    }

    /** Creates (truncating) a file for a {@code file:} URI. */
    public static FileChannel createFile(MigrationUri.File uri) {
        try {
            return FileChannel.open(uri.path(), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot create " + uri.text() + ": " + e.getMessage(), e);
        }
    }

    /** Opens a {@code file:} URI for reading. */
    public static FileChannel openFile(MigrationUri.File uri) {
        try {
            return FileChannel.open(uri.path(), StandardOpenOption.READ);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot open " + uri.text() + ": " + e.getMessage(), e);
        }
    }

    /**
     * Whether a failed socket read or write means that the peer closed (or reset) the
     * connection: EPIPE or ECONNRESET, as opposed to our own close (ClosedChannelException) or
     * a network failure. The peer hanging up is then the cause to report, not the write.
     */
    public static boolean peerHungUp(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof java.nio.channels.ClosedChannelException) {
                return false;
            }
            if (c instanceof IOException && c.getMessage() != null
                    && (c.getMessage().contains("Broken pipe") || c.getMessage().contains("Connection reset"))) {
                return true;
            }
        }
        return false;
    }

    static void closeQuietly(java.io.Closeable c) {
        if (c != null) {
            try {
                c.close();
            } catch (IOException ignored) {
                // best effort
            }
        }
    }
}
