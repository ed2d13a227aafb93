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
