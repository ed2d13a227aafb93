package io.jmigrate.channel;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ScatteringByteChannel;
import java.nio.channels.SocketChannel;

/**
 * A socket whose first bytes were already read to classify it (Java has no MSG_PEEK): reads
 * return those bytes first, then go to the socket, scattering reads included.
 */
public final class PeekedChannel implements ByteChannel, ScatteringByteChannel, GatheringByteChannel {
    private final SocketChannel socket;
    private final ByteBuffer prefix;

    public PeekedChannel(SocketChannel socket, byte[] prefix) {
        this.socket = socket;
        this.prefix = ByteBuffer.wrap(prefix.clone());
    }

    public SocketChannel socket() {
        return socket;
    }

    /** The peeked bytes not yet read, as a read-only view (for a caller that decodes them first). */
    public ByteBuffer unread() {
        return prefix.slice().asReadOnlyBuffer();
    }

    /**
     * Peeks further: a channel whose unread prefix is {@code total} bytes, reading what is missing
     * from the socket within {@code timeout}. The prefix of {@code ch} must not have been read yet.
     *
     * @throws MigrationException TIMEOUT if the bytes do not come in time, PROTOCOL if the peer closes first
     */
    public static PeekedChannel extend(PeekedChannel ch, int total, String description, java.time.Duration timeout) {
        ByteBuffer b = ByteBuffer.allocate(total);
        b.put(ch.prefix.slice(ch.prefix.position(), Math.min(total, ch.prefix.remaining())));
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            ch.socket.configureBlocking(false);
            try (java.nio.channels.Selector sel = java.nio.channels.Selector.open()) {
                ch.socket.register(sel, java.nio.channels.SelectionKey.OP_READ);
                while (b.hasRemaining()) {
                    if (ch.socket.read(b) < 0) {
                        throw new io.jmigrate.common.MigrationException(io.jmigrate.common.MigrationException.Category.PROTOCOL,
                                description + " closed after " + b.position() + " of its first " + total + " bytes");
                    }
                    long left = (deadline - System.nanoTime()) / 1_000_000;
                    if (b.hasRemaining()) {
                        if (left <= 0) {
                            throw new io.jmigrate.common.MigrationException(io.jmigrate.common.MigrationException.Category.TIMEOUT,
                                    description + " sent only " + b.position() + " of its first " + total + " bytes within "
                                    + io.jmigrate.common.Durations.human(timeout));
                        }
                        sel.select(left);
                        sel.selectedKeys().clear();
                    }
                }
                sel.keys().forEach(java.nio.channels.SelectionKey::cancel);
                sel.selectNow();
            }
            ch.socket.configureBlocking(true);
        } catch (IOException e) {
            throw new io.jmigrate.common.MigrationException(io.jmigrate.common.MigrationException.Category.IO,
                    "reading the first bytes of " + description + " failed: " + e.getMessage(), e);
        }
        return new PeekedChannel(ch.socket, b.array());
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        if (prefix.hasRemaining()) {
            int n = Math.min(dst.remaining(), prefix.remaining());
            ByteBuffer slice = prefix.slice(prefix.position(), n);
            dst.put(slice);
            prefix.position(prefix.position() + n);
            return n;
        }
        return socket.read(dst);
    }

    @Override
    public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
        if (prefix.hasRemaining()) {
            long n = 0;
            for (int i = offset; i < offset + length && prefix.hasRemaining(); i++) {
                n += read(dsts[i]);
            }
            return n;
        }
        return socket.read(dsts, offset, length);
    }

    @Override
    public long read(ByteBuffer[] dsts) throws IOException {
        return read(dsts, 0, dsts.length);
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        return socket.write(src);
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        return socket.write(srcs, offset, length);
    }

    @Override
    public long write(ByteBuffer[] srcs) throws IOException {
        return socket.write(srcs);
    }

    @Override
    public boolean isOpen() {
        return socket.isOpen();
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
