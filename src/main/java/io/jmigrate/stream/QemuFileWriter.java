package io.jmigrate.stream;

import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;

/**
 * The write half of QEMU's {@code QEMUFile}: big-endian puts into a direct buffer, flushed to a
 * channel; guest pages go out with gathering writes straight from their {@link MemorySegment}
 * (no copy into the buffer). The first write error is sticky: later calls throw it again.
 *
 * <p>Not thread safe: one writer belongs to one thread (the migration thread).
 */
public final class QemuFileWriter implements AutoCloseable {
    private static final int BUFFER_SIZE = 64 * 1024;
    /** Page segments queued for one gathering write before the buffer is flushed. */
    private static final int MAX_IOV = 64;
    /**
     * Pages per gathering write on a migration's main stream: 256 (1 MiB of pages and their
     * record headers, 513 iovecs, within Linux's IOV_MAX of 1024);
     * {@code -Djmigrate.stream.write-pages=N} changes it.
     */
    public static final int MAIN_STREAM_PAGES = Math.clamp(Integer.getInteger("jmigrate.stream.write-pages", 256), 1,
            500);

    private final int maxIov;

    private final WritableByteChannel channel;
    private final String name;
    private final ByteBuffer buf;
    private final ByteBuffer[] iov = new ByteBuffer[2];
    // Queued pages (queuePage): views created once and reused, so queuing allocates nothing.
    private final ByteBuffer[] hdrViews;
    private final ByteBuffer[] pageViews;
    private final ByteBuffer[] pageBases;
    private final ByteBuffer[] queue;
    private int queuedPages;
    private int hdrStart;
    private long queuedBytes;
    private long flushed;
    private StreamException error;
    /** Optional byte budget consumer (rate limiting, accounting). */
    private volatile WriteObserver observer;

    /** Notified of every flushed byte count (rate limiting and statistics). */
    @FunctionalInterface
    public interface WriteObserver {
        void written(long bytes);
    }

    public QemuFileWriter(WritableByteChannel channel, String name) {
        this(channel, name, MAX_IOV);
    }

    /** Queued pages leave in gathering writes of up to {@code pagesPerWrite} (e.g. {@link #MAIN_STREAM_PAGES}). */
    public QemuFileWriter(WritableByteChannel channel, String name, int pagesPerWrite) {
        this.channel = channel;
        this.name = name;
        this.maxIov = Math.clamp(pagesPerWrite, 1, 500);
        this.hdrViews = new ByteBuffer[maxIov + 1];
        this.pageViews = new ByteBuffer[maxIov];
        this.pageBases = new ByteBuffer[maxIov];
        this.queue = new ByteBuffer[2 * maxIov + 1];
        this.buf = ByteBuffer.allocateDirect(BUFFER_SIZE).order(ByteOrder.BIG_ENDIAN);
    }

    public QemuFileWriter(OutputStream out, String name) {
        this(Channels.newChannel(out), name);
    }

    public void setObserver(WriteObserver observer) {
        this.observer = observer;
    }

    public String name() {
        return name;
    }

    /** Bytes written so far, including those still buffered. */
    public long position() {
        return flushed + buf.position() + queuedBytes;
    }

    public StreamException error() {
        return error;
    }

    private void room(int n) {
        if (error != null) {
            throw error;
        }
        if (buf.remaining() < n) {
            flush();
        }
    }

    public QemuFileWriter putU8(int v) {
        room(1);
        buf.put((byte) v);
        return this;
    }

    public QemuFileWriter putBe16(int v) {
        room(2);
        buf.putShort((short) v);
        return this;
    }

    public QemuFileWriter putBe32(int v) {
        room(4);
        buf.putInt(v);
        return this;
    }

    public QemuFileWriter putBe64(long v) {
        room(8);
        buf.putLong(v);
        return this;
    }

    /** A counted string: u8 length then the bytes (at most 255). */
    public QemuFileWriter putCountedString(String s) {
        byte[] b = s.getBytes(StandardCharsets.ISO_8859_1);
        if (b.length > 255) {
            throw new IllegalArgumentException("counted string longer than 255 bytes: " + s);
        }
        putU8(b.length);
        return putBytes(b);
    }

    public QemuFileWriter putBytes(byte[] b) {
        return putBytes(b, 0, b.length);
    }

    public QemuFileWriter putBytes(byte[] b, int off, int len) {
        while (len > 0) {
            room(1);
            int n = Math.min(len, buf.remaining());
            buf.put(b, off, n);
            off += n;
            len -= n;
        }
        return this;
    }

    /**
     * Writes guest memory without copying it into the buffer: the buffered header bytes and the
     * segment go out in one gathering write.
     */
    public QemuFileWriter putSegment(MemorySegment segment) {
        if (error != null) {
            throw error;
        }
        if (queuedPages > 0) {
            flush();
        }
        if (segment.byteSize() <= 256) {
            byte[] small = segment.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            return putBytes(small);
        }
        buf.flip();
        iov[0] = buf;
        iov[1] = segment.asByteBuffer();
        writeAll(iov, 2);
        iov[1] = null;
        buf.clear();
        return this;
    }

    private void writeAll(ByteBuffer[] bufs, int count) {
        long total = 0;
        try {
            if (channel instanceof GatheringByteChannel g) {
                long want = 0;
                for (int i = 0; i < count; i++) {
                    want += bufs[i].remaining();
                }
                while (total < want) {
                    total += g.write(bufs, 0, count);
                }
            } else {
                for (int i = 0; i < count; i++) {
                    while (bufs[i].hasRemaining()) {
                        total += channel.write(bufs[i]);
                    }
                }
            }
        } catch (IOException e) {
            error = new StreamException(Category.IO, name, flushed + total, "write failed: " + e.getMessage(), e);
            throw error;
        } finally {
            flushed += total;
        }
        WriteObserver o = observer;
        if (o != null) {
            o.written(total);
        }
    }

    /**
     * Queues {@code length} bytes at {@code offset} of {@code base} (a view of guest memory that
     * stays valid) to go out after everything put so far, without copying them: bytes put before
     * and after are sliced out of the buffer, and up to the writer's pages per write (64 unless
     * the constructor said otherwise) leave in one gathering write.
     * Nothing is allocated once the views for {@code base} exist.
     */
    public QemuFileWriter queuePage(ByteBuffer base, int offset, int length) {
        if (error != null) {
            throw error;
        }
        int i = queuedPages;
        ByteBuffer h = hdrViews[i];
        if (h == null) {
            h = buf.duplicate();
            hdrViews[i] = h;
        }
        h.clear().position(hdrStart);
        h.limit(buf.position());
        ByteBuffer p = pageViews[i];
        if (pageBases[i] != base) {
            p = base.duplicate();
            pageViews[i] = p;
            pageBases[i] = base;
        }
        p.clear().position(offset);
        p.limit(offset + length);
        queue[2 * i] = h;
        queue[2 * i + 1] = p;
        hdrStart = buf.position();
        queuedPages = i + 1;
        queuedBytes += length;
        if (queuedPages == maxIov) {
            flush();
        }
        return this;
    }

    private void flushQueued() {
        int n = 2 * queuedPages;
        if (buf.position() > hdrStart) {
            ByteBuffer tail = hdrViews[queuedPages];
            if (tail == null) {
                tail = buf.duplicate();
                hdrViews[queuedPages] = tail;
            }
            tail.clear().position(hdrStart);
            tail.limit(buf.position());
            queue[n++] = tail;
        }
        queuedPages = 0;
        queuedBytes = 0;
        hdrStart = 0;
        try {
            writeAll(queue, n);
        } finally {
            buf.clear();
        }
    }

    /** Sends everything buffered (and queued) to the channel. */
    public void flush() {
        if (error != null) {
            throw error;
        }
        if (queuedPages > 0) {
            flushQueued();
            return;
        }
        if (buf.position() == 0) {
            return;
        }
        buf.flip();
        iov[0] = buf;
        writeAll(iov, 1);
        buf.clear();
    }

    /** Records an error from elsewhere (a peer, another thread) as this stream's sticky error. */
    public void setError(StreamException e) {
        if (error == null) {
            error = e;
        }
    }

    @Override
    public void close() throws IOException {
        try {
            if (error == null) {
                flush();
            }
        } finally {
            channel.close();
        }
    }
}
