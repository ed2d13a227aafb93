package io.jmigrate.multifd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.ScatteringByteChannel;
import java.nio.channels.WritableByteChannel;

/** Whole-buffer reads and writes on blocking channels, scattering/gathering when the channel can. */
final class ChannelIo {
    private ChannelIo() {
    }

    /** Writes every remaining byte of {@code bufs[0..n)}; returns the byte count. */
    static long writeFully(WritableByteChannel ch, ByteBuffer[] bufs, int n) throws IOException {
        long want = 0;
        for (int i = 0; i < n; i++) {
            want += bufs[i].remaining();
        }
        long done = 0;
        if (ch instanceof GatheringByteChannel g) {
            int first = 0;
            while (done < want) {
                while (first < n && !bufs[first].hasRemaining()) {
                    first++;
                }
                done += g.write(bufs, first, n - first);
            }
        } else {
            for (int i = 0; i < n; i++) {
                while (bufs[i].hasRemaining()) {
                    done += ch.write(bufs[i]);
                }
            }
        }
        return done;
    }

    /**
     * Fills every remaining byte of {@code bufs[0..n)}. Returns the bytes read; less than asked
     * only when the channel ended (the caller decides whether that is an error).
     */
    static long readFully(ReadableByteChannel ch, ByteBuffer[] bufs, int n) throws IOException {
        long done = 0;
        int first = 0;
        while (true) {
            while (first < n && !bufs[first].hasRemaining()) {
                first++;
            }
            if (first == n) {
                return done;
            }
            long r = ch instanceof ScatteringByteChannel s ? s.read(bufs, first, n - first) : ch.read(bufs[first]);
            if (r < 0) {
                return done;
            }
            done += r;
        }
    }

    /** Fills {@code b}; false if the channel ended before the first byte, EOF error if in the middle. */
    static boolean readOrEof(ReadableByteChannel ch, ByteBuffer b) throws IOException {
        int start = b.position();
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) {
                if (b.position() == start) {
                    return false;
                }
                throw new EOFException("channel ended after " + (b.position() - start) + " of "
                        + (b.limit() - start) + " bytes");
            }
        }
        return true;
    }

    static void readExactly(ReadableByteChannel ch, ByteBuffer b) throws IOException {
        int want = b.remaining();
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) {
                throw new EOFException("channel ended after " + (want - b.remaining()) + " of " + want + " bytes");
            }
        }
    }
}
