package io.jmigrate.migration;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;

/**
 * A man in the middle between a real jmigrate source and a real jmigrate destination (tests):
 * it forwards the main channel both ways untouched and each multifd channel to the destination,
 * spoiling the channel whose init names {@code targetId} as {@link Fault} says. Packets are
 * parsed (init, 12-byte header, fixed RAM packet of 320 + 8 x 128 bytes, payload) so that the
 * first RAM packet carrying pages is the one changed. Any end closing closes both ends of its pair.
 *
 * <p>With {@code gate} = k &gt; 0 the main channel is connected to the destination only after the
 * source's first k multifd connections were (and their init forwarded, or they failed): the
 * destination then sees every multifd channel before the main stream, whichever the source's
 * threads connected first, so a test of a refused channel does not depend on that race.
 */
public final class MultifdFaultProxy implements AutoCloseable {
    static final int INIT = 64;
    static final int PACKET = 320 + 8 * 128;

    public enum Fault {
        NONE, INIT_MAGIC, INIT_VERSION, CHANNEL_ID_OUT_OF_RANGE, DUPLICATE_ID, HEADER_MAGIC, HEADER_VERSION,
        COUNT_ABOVE_CAPACITY, OFFSET_OUTSIDE_BLOCK, UNKNOWN_BLOCK, TRUNCATED_PAYLOAD, DROPPED_MID_PACKET,
        NEVER_CONNECTS,
        /** Device state, on whichever channel carries the first device-state packet: the link breaks mid-payload. */
        DEVICE_STATE_DROPPED,
        /** Device state: the first device-state packet's instance id becomes 7. */
        DEVICE_STATE_UNKNOWN_INSTANCE
    }

    /** Device-state faults hit the first device-state packet of any channel, once. */
    private final java.util.concurrent.atomic.AtomicBoolean deviceFaultDone = new java.util.concurrent.atomic.AtomicBoolean();

    private boolean deviceFault() {
        return fault == Fault.DEVICE_STATE_DROPPED || fault == Fault.DEVICE_STATE_UNKNOWN_INSTANCE;
    }

    private final ServerSocketChannel server;
    private final InetSocketAddress destination;
    private final Fault fault;
    private final int targetId;
    private final int channels;
    private final List<SocketChannel> open = new CopyOnWriteArrayList<>();
    private final CountDownLatch gate;
    private volatile boolean closed;

    public MultifdFaultProxy(InetSocketAddress destination, Fault fault, int targetId, int channels) throws IOException {
        this(destination, fault, targetId, channels, 0);
    }

    public MultifdFaultProxy(InetSocketAddress destination, Fault fault, int targetId, int channels, int gate)
            throws IOException {
        this.gate = new CountDownLatch(gate);
        this.destination = destination;
        this.fault = fault;
        this.targetId = targetId;
        this.channels = channels;
        server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
        Thread.ofPlatform().daemon().name("proxy-accept").start(this::acceptLoop);
    }

    public String uri() throws IOException {
        return "tcp:127.0.0.1:" + ((InetSocketAddress) server.getLocalAddress()).getPort();
    }

    private void acceptLoop() {
        try {
            while (!closed) {
                SocketChannel s = server.accept();
                open.add(s);
                Thread.ofPlatform().daemon().name("proxy-conn").start(() -> handle(s));
            }
        } catch (IOException e) {
            // closed
        }
    }

    private void handle(SocketChannel src) {
        SocketChannel dst = null;
        boolean multifd = false;
        try {
            ByteBuffer first = read(src, 4);
            if (first.getInt(0) == 0x5145564d) { // main channel: both ways, untouched
                try {
                    gate.await();
                } catch (InterruptedException e) {
                    return;
                }
                dst = connect();
                write(dst, first);
                SocketChannel d = dst;
                Thread.ofPlatform().daemon().name("proxy-rp").start(() -> pump(d, src));
                pump(src, dst);
                return;
            }
            multifd = true;
            ByteBuffer init = ByteBuffer.allocate(INIT);
            init.put(first.rewind());
            init.put(read(src, INIT - 4)).flip();
            int id = init.get(24) & 0xff;
            boolean target = id == targetId;
            if (target) {
                switch (fault) {
                    case INIT_MAGIC -> init.putInt(0, 0xdeadbeef);
                    case INIT_VERSION -> init.putInt(4, 2);
                    case CHANNEL_ID_OUT_OF_RANGE -> init.put(24, (byte) channels);
                    case DUPLICATE_ID -> init.put(24, (byte) (id == 0 ? 1 : 0));
                    case NEVER_CONNECTS -> {
                        ByteBuffer sink = ByteBuffer.allocate(1 << 16);
                        while (src.read(sink.clear()) >= 0) {
                            // swallow: this channel never reaches the destination
                        }
                        return;
                    }
                    default -> { }
                }
            }
            dst = connect();
            write(dst, init);
            gate.countDown();
            multifd = false;
            if (deviceFault()) {
                deviceStateLoop(src, dst);
                return;
            }
            if (!target || fault == Fault.NONE) {
                pump(src, dst);
                return;
            }
            while (true) {
                ByteBuffer p = read(src, PACKET);
                int normal = p.getInt(16);
                int next = p.getInt(20);
                if (normal == 0) {
                    write(dst, p);
                    write(dst, read(src, next));
                    continue;
                }
                switch (fault) {
                    case HEADER_MAGIC -> p.putInt(0, 0x11223345);
                    case HEADER_VERSION -> p.putInt(4, 7);
                    case COUNT_ABOVE_CAPACITY -> p.putInt(16, 129);
                    case OFFSET_OUTSIDE_BLOCK -> p.putLong(320, 1L << 40);
                    case UNKNOWN_BLOCK -> p.put(64, (byte) 'X');
                    case TRUNCATED_PAYLOAD -> p.putInt(20, next - 4096);
                    case DROPPED_MID_PACKET -> {
                        // the link to the destination breaks half-way through a payload; the
                        // source only learns of it when the destination gives up
                        write(dst, p);
                        write(dst, read(src, next / 2));
                        dst.close();
                        ByteBuffer sink = ByteBuffer.allocate(1 << 16);
                        while (src.read(sink.clear()) >= 0) {
                            // swallow
                        }
                        return;
                    }
                    default -> { }
                }
                write(dst, p);
                pump(src, dst);
                return;
            }
        } catch (IOException e) {
            // one end closed (or the drop): close both
        } finally {
            if (multifd) {
                gate.countDown(); // failed before its init reached the destination
            }
            closeQuietly(src);
            closeQuietly(dst);
        }
    }

    /** Parses every packet (RAM or device state) and spoils the first device-state packet seen on any channel. */
    private void deviceStateLoop(SocketChannel src, SocketChannel dst) throws IOException {
        while (true) {
            ByteBuffer h = read(src, 12);
            int flags = h.getInt(8);
            if ((flags & 0x40) == 0) {
                ByteBuffer p = read(src, PACKET - 12);
                int next = p.getInt(20 - 12);
                write(dst, h);
                write(dst, p);
                write(dst, read(src, next));
                continue;
            }
            ByteBuffer d = read(src, 276 - 12);
            int len = d.getInt(272 - 12);
            ByteBuffer payload = read(src, len);
            if (deviceFaultDone.compareAndSet(false, true)) {
                if (fault == Fault.DEVICE_STATE_UNKNOWN_INSTANCE) {
                    d.putInt(268 - 12, 7);
                } else {
                    write(dst, h);
                    write(dst, d);
                    payload.limit(len / 2);
                    write(dst, payload);
                    dst.close();
                    ByteBuffer sink = ByteBuffer.allocate(1 << 16);
                    while (src.read(sink.clear()) >= 0) {
                        // swallow
                    }
                    return;
                }
            }
            write(dst, h);
            write(dst, d);
            write(dst, payload);
        }
    }

    private SocketChannel connect() throws IOException {
        SocketChannel d = SocketChannel.open(destination);
        open.add(d);
        return d;
    }

    private void pump(SocketChannel from, SocketChannel to) {
        ByteBuffer b = ByteBuffer.allocateDirect(1 << 16);
        try {
            while (from.read(b.clear()) >= 0) {
                b.flip();
                while (b.hasRemaining()) {
                    to.write(b);
                }
            }
        } catch (IOException e) {
            // the other side went away
        } finally {
            closeQuietly(from);
            closeQuietly(to);
        }
    }

    private static ByteBuffer read(SocketChannel s, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (s.read(b) < 0) {
                throw new IOException("EOF");
            }
        }
        return b.flip();
    }

    private static void write(SocketChannel s, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            s.write(b);
        }
    }

    private static void closeQuietly(SocketChannel s) {
        if (s != null) {
            try {
                s.close();
            } catch (IOException ignored) {
                // best effort
            }
        }
    }

    @Override
    public void close() throws IOException {
        closeAll();
    }

    private void closeAll() throws IOException {
        closed = true;
        while (gate.getCount() > 0) {
            gate.countDown();
        }
        server.close();
        for (SocketChannel s : open) {
            closeQuietly(s);
        }
    }
}
