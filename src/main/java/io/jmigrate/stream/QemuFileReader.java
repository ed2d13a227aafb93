package io.jmigrate.stream;

import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.ReadableByteChannel;
import java.nio.charset.StandardCharsets;

/**
 * The read half of QEMU's {@code QEMUFile}: buffered big-endian reads over a channel with a
 * byte-offset position, peeking, a sticky first error, and a bound on every length.
 *
 * <p>Every primitive of PROTOCOL.md §1.1: u8, be16, be32, be64, the counted string (one length
 * byte then that many bytes, no NUL) and raw buffers. A short read is an error that names the
 * offset and what was being read. After the first error every later call throws that same
 * error, so a failure deep inside a loader cannot be papered over by a caller that goes on.
 *
 * <p>Not thread safe: one reader belongs to one thread (the main-stream loader).
 */
public final class QemuFileReader implements AutoCloseable {
    private static final int BUFFER_SIZE = 64 * 1024;
    /**
     * The read buffer of a migration's main stream: large, so one read system call brings many
     * page records (64 KiB holds 16); {@code -Djmigrate.stream.read-buffer=BYTES} changes it.
     */
    public static final int MAIN_STREAM_BUFFER = Integer.getInteger("jmigrate.stream.read-buffer", 512 * 1024);

    private final int bufferSize;

    private final ReadableByteChannel channel;
    private final String name;
    private final StreamLimits limits;
    private final ByteBuffer buf;
    /** {@code buf}'s whole memory as a segment, made once, so page copies slice nothing. */
    private final MemorySegment bufSegment;
    /** Reusable view of guest memory for reads that bypass the buffer (re-made when the segment changes). */
    private MemorySegment directOwner;
    private ByteBuffer directView;
    /** Offset in the stream of {@code buf}'s byte 0. */
    private long bufBase;
    private boolean eof;
    private StreamException error;

    public QemuFileReader(ReadableByteChannel channel, String name, StreamLimits limits) {
        this(channel, name, limits, BUFFER_SIZE);
    }

    /** With a read buffer of {@code bufferSize} bytes (at least 64 KiB; e.g. {@link #MAIN_STREAM_BUFFER}). */
    public QemuFileReader(ReadableByteChannel channel, String name, StreamLimits limits, int bufferSize) {
        this.channel = channel;
        this.name = name;
        this.limits = limits;
        this.bufferSize = Math.max(BUFFER_SIZE, bufferSize);
        this.buf = ByteBuffer.allocateDirect(this.bufferSize).order(ByteOrder.BIG_ENDIAN);
        this.buf.limit(0);
        this.bufSegment = MemorySegment.ofBuffer(buf.duplicate().clear());
    }

    public QemuFileReader(InputStream in, String name, StreamLimits limits) {
        this(Channels.newChannel(in), name, limits);
    }

    /** A reader over bytes already in memory (tests, device-state buffers). */
    public static QemuFileReader of(byte[] bytes, String name) {
        return new QemuFileReader(Channels.newChannel(new java.io.ByteArrayInputStream(bytes)), name,
                StreamLimits.DEFAULT);
    }

    public String name() {
        return name;
    }

    public StreamLimits limits() {
        return limits;
    }

    /** Byte offset of the next byte to be read. */
    public long position() {
        return bufBase + buf.position();
    }

    /** The sticky error, or null. */
    public StreamException error() {
        return error;
    }

    /**
     * Builds (and records as the sticky error) an error at the current position, for callers
     * that decode a value and find it wrong. Throw the result.
     */
    public StreamException fail(Category category, String what) {
        return fail(category, position(), what);
    }

    /** As {@link #fail(Category, String)} at an explicit offset (the start of the bad field). */
    public StreamException fail(Category category, long offset, String what) {
        StreamException e = new StreamException(category, name, offset, what);
        if (error == null) {
            error = e;
        }
        return error == e ? e : error;
    }

    private void checkError() {
        if (error != null) {
            throw error;
        }
    }

    /**
     * Makes at least {@code n} bytes available in the buffer ({@code n <= BUFFER_SIZE}).
     * Returns false on a clean end of stream before {@code n} bytes.
     */
    private boolean fill(int n) {
        checkError();
        if (buf.remaining() >= n) {
            return true;
        }
        bufBase += buf.position();
        buf.compact();
        try {
            while (buf.position() < n && !eof) {
                int r = channel.read(buf);
                if (r < 0) {
                    eof = true;
                }
            }
        } catch (IOException e) {
            buf.flip();
            StreamException se = new StreamException(Category.IO, name, position(),
                    "read failed: " + e.getMessage(), e);
            error = se;
            throw se;
        }
        buf.flip();
        return buf.remaining() >= n;
    }

    private void need(int n, String what) {
        if (!fill(n)) {
            throw fail(Category.PROTOCOL, "truncated stream: expected " + n + " byte(s) of " + what
                    + " but only " + buf.remaining() + " remain");
        }
    }

    /** True if the stream has no more bytes. */
    public boolean atEof() {
        return !fill(1);
    }

    public int readU8(String what) {
        need(1, what);
        return buf.get() & 0xff;
    }

    public int readBe16(String what) {
        need(2, what);
        return buf.getShort() & 0xffff;
    }

    public int readBe32(String what) {
        need(4, what);
        return buf.getInt();
    }

    public long readBe32Unsigned(String what) {
        return readBe32(what) & 0xffff_ffffL;
    }

    public long readBe64(String what) {
        need(8, what);
        return buf.getLong();
    }

    /** Peeks the next byte without consuming it, or -1 at the end of the stream. */
    public int peekU8() {
        if (!fill(1)) {
            return -1;
        }
        return buf.get(buf.position()) & 0xff;
    }

    /**
     * Peeks up to {@code n} bytes (n at most 4096) at {@code skip} bytes ahead without consuming
     * them. Returns fewer at the end of the stream.
     */
    public byte[] peek(int skip, int n) {
        if (skip < 0 || n < 0 || skip + n > 4096) {
            throw new IllegalArgumentException("peek window too large");
        }
        fill(skip + n);
        int avail = Math.max(0, Math.min(n, buf.remaining() - skip));
        byte[] out = new byte[avail];
        buf.get(buf.position() + skip, out);
        return out;
    }

    /** A counted string: u8 length then that many bytes (QEMU's {@code qemu_get_counted_string}). */
    public String readCountedString(String what) {
        int len = readU8(what + " length");
        return new String(readBytes(len, what), StandardCharsets.ISO_8859_1);
    }

    /**
     * Reads {@code len} bytes into a new array. The length is checked against the configured
     * maximum before anything is allocated.
     */
    public byte[] readBytes(long len, String what) {
        checkLength(len, limits.maxBuffer(), what);
        byte[] out = new byte[(int) len];
        readFully(out, 0, out.length, what);
        return out;
    }

    /** Fails unless {@code 0 <= len <= max}; names the field and the bound. */
    public void checkLength(long len, long max, String what) {
        checkError();
        if (len < 0 || len > max) {
            throw fail(Category.LIMIT, "length " + Long.toUnsignedString(len) + " of " + what
                    + " exceeds the maximum of " + max + " bytes");
        }
    }

    public void readFully(byte[] dst, int off, int len, String what) {
        long start = position();
        int done = 0;
        while (done < len) {
            int chunk = Math.min(len - done, bufferSize);
            if (!fill(Math.min(chunk, 1))) {
                throw fail(Category.PROTOCOL, start, "truncated stream: expected " + len + " byte(s) of " + what
                        + " but the stream ended after " + done);
            }
            int n = Math.min(chunk, buf.remaining());
            buf.get(dst, off + done, n);
            done += n;
        }
    }

    /**
     * Reads {@code dst.byteSize()} bytes straight into {@code dst} (guest RAM): what is buffered
     * is copied, the rest is read from the channel into the segment without a bounce buffer.
     */
    public void readFully(MemorySegment dst, String what) {
        readFully(dst, 0, dst.byteSize(), what);
    }

    /**
     * Reads {@code len} bytes into {@code dst} at {@code dstOffset} (a page of guest RAM, given as
     * its whole block so that nothing is sliced per page): what is buffered is copied; when the
     * buffer runs dry, the rest is read from the channel straight into the segment if that is at
     * least half a buffer, else the buffer is refilled first (one read syscall serves many small
     * records). {@code what} names the bytes in errors.
     */
    public void readFully(MemorySegment dst, long dstOffset, long len, String what) {
        checkError();
        java.util.Objects.checkFromIndexSize(dstOffset, len, dst.byteSize());
        long start = position();
        long done = 0;
        while (done < len) {
            int avail = buf.remaining();
            if (avail == 0) {
                long left = len - done;
                if (left >= bufferSize / 2) {
                    done += readDirect(dst, dstOffset + done, left);
                    break;
                }
                if (!fill(1)) {
                    break;
                }
                continue;
            }
            int n = (int) Math.min(len - done, avail);
            MemorySegment.copy(bufSegment, buf.position(), dst, dstOffset + done, n);
            buf.position(buf.position() + n);
            done += n;
        }
        if (done < len) {
            throw fail(Category.PROTOCOL, start, "truncated stream: expected " + len + " byte(s) of " + what
                    + " but the stream ended after " + done);
        }
    }

    /** Reads up to {@code len} bytes from the channel into {@code dst} at {@code off}; fewer only at EOF. */
    private long readDirect(MemorySegment dst, long off, long len) {
        ByteBuffer target;
        if (dst.byteSize() <= Integer.MAX_VALUE) {
            if (directOwner != dst) {
                directView = dst.asByteBuffer();
                directOwner = dst;
            }
            target = directView.limit((int) (off + len)).position((int) off);
        } else {
            target = dst.asSlice(off, len).asByteBuffer();
        }
        int begin = target.position();
        try {
            while (target.hasRemaining()) {
                int r = channel.read(target);
                if (r < 0) {
                    eof = true;
                    break;
                }
            }
        } catch (IOException e) {
            bufBase += target.position() - begin;
            StreamException se = new StreamException(Category.IO, name, position(), "read failed: " + e.getMessage(), e);
            error = se;
            throw se;
        }
        long got = target.position() - begin;
        bufBase += got;
        return got;
    }

    /** Skips {@code len} bytes. */
    public void skip(long len, String what) {
        long start = position();
        long left = len;
        while (left > 0) {
            if (!fill(1)) {
                throw fail(Category.PROTOCOL, start, "truncated stream: expected " + len + " byte(s) of " + what
                        + " but the stream ended after " + (len - left));
            }
            int n = (int) Math.min(left, buf.remaining());
            buf.position(buf.position() + n);
            left -= n;
        }
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
