package io.jmigrate.multifd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.ScatteringByteChannel;

/**
 * A receive channel's reader that offers the kernel one spare buffer after every read, so the
 * bytes that follow what was asked for (usually the next packet's header) arrive in the same
 * system call; later reads take them from the spare first. A RAM packet then costs one
 * {@code readv} (its payload plus the next header) instead of three (header, rest of the
 * packet, payload).
 *
 * <p>Only the spare is ever copied, at most {@code spareSize} bytes a call; the caller's buffers
 * are read into directly, so pages still go straight into guest memory. Reading ahead never
 * blocks for more than the caller asked: a blocking read returns once it has some of the
 * caller's bytes, and the spare takes only what the kernel already had. Not thread safe: owned by
 * one {@code mig/dst/recv_N} thread. Where the channel cannot scatter, reads pass straight through.
 */
final class ReadAhead implements ScatteringByteChannel {
    /** {@code -Djmigrate.multifd.read-ahead=off} turns it off (for an A/B in the benchmark). */
    static final boolean ENABLED = !"off".equals(System.getProperty("jmigrate.multifd.read-ahead", "on"));

    private final ReadableByteChannel in;
    private final ScatteringByteChannel scatter;
    /** Bytes read ahead and not yet handed out, between position and limit. */
    private final ByteBuffer spare;
    /** The caller's buffers plus the spare, for one scattering read (made once). */
    private ByteBuffer[] iov;

    /**
     * @param maxBuffers the most buffers a caller passes to one {@link #read(ByteBuffer[], int, int)}
     */
    ReadAhead(ReadableByteChannel in, int spareSize, int maxBuffers) {
        this.in = in;
        this.scatter = ENABLED && in instanceof ScatteringByteChannel s ? s : null;
        this.spare = ByteBuffer.allocateDirect(spareSize).limit(0);
        this.iov = new ByteBuffer[maxBuffers + 1];
    }

    /** Bytes already read from the channel and not yet handed out. */
    int buffered() {
        return spare.remaining();
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        if (!dst.hasRemaining()) {
            return 0;
        }
        if (spare.hasRemaining()) {
            return drainInto(dst);
        }
        if (scatter == null) {
            return in.read(dst);
        }
        iov[0] = dst;
        return (int) readWithSpare(1);
    }

    @Override
    public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
        if (spare.hasRemaining()) {
            long n = 0;
            for (int i = offset; i < offset + length && spare.hasRemaining(); i++) {
                n += drainInto(dsts[i]);
            }
            return n;
        }
        if (scatter == null) {
            return in instanceof ScatteringByteChannel s ? s.read(dsts, offset, length)
                    : readFirstWithRoom(dsts, offset, length);
        }
        if (length + 1 > iov.length) {
            iov = new ByteBuffer[length + 1];
        }
        System.arraycopy(dsts, offset, iov, 0, length);
        return readWithSpare(length);
    }

    @Override
    public long read(ByteBuffer[] dsts) throws IOException {
        return read(dsts, 0, dsts.length);
    }

    /** One scattering read into {@code iov[0..n)} and then the spare; returns the bytes for the caller. */
    private long readWithSpare(int n) throws IOException {
        iov[n] = spare.clear();
        long r;
        try {
            r = scatter.read(iov, 0, n + 1);
        } finally {
            spare.flip();
            iov[n] = null;
        }
        return r < 0 ? r : r - spare.remaining();
    }

    private int drainInto(ByteBuffer dst) {
        int n = Math.min(dst.remaining(), spare.remaining());
        if (n == 0) {
            return 0;
        }
        int limit = spare.limit();
        spare.limit(spare.position() + n);
        dst.put(spare);
        spare.limit(limit);
        return n;
    }

    private int readFirstWithRoom(ByteBuffer[] dsts, int offset, int length) throws IOException {
        for (int i = offset; i < offset + length; i++) {
            if (dsts[i].hasRemaining()) {
                return in.read(dsts[i]);
            }
        }
        return 0;
    }

    @Override
    public boolean isOpen() {
        return in.isOpen();
    }

    @Override
    public void close() throws IOException {
        in.close();
    }

    @Override
    public String toString() {
        return in.toString();
    }
}
