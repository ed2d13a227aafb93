package io.jmigrate.it;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A TCP man in the middle between a jmigrate source and destination (fault matrix): it forwards
 * every connection both ways and, when it sees the migration reach a {@link Phase} on the wire,
 * does its {@link Action} to one connection (the main channel, or multifd channel k). Phases are
 * recognised from the bytes, never from time:
 * <ul>
 *   <li>{@link Phase#SETUP}: the target's opening went through (the main stream's 8-byte header,
 *       or channel k's 64-byte init) and nothing else yet;</li>
 *   <li>{@link Phase#RAM_ITERATION}: RAM packets with pages have gone through (2 on channel k;
 *       4 on all channels for the main channel);</li>
 *   <li>{@link Phase#SWITCHOVER}: the main channel carried MIG_CMD_SWITCHOVER_START right after a
 *       section footer ({@code 7e <id> 08 00 0b 00 00}): the source's VM is stopped and device
 *       state is about to go;</li>
 *   <li>{@link Phase#COMPLETION}: the main channel reached the end of the device stream: a section
 *       footer followed by QEMU_VM_EOF and the vmdesc ({@code 7e <id> 00 06 00 00 <len16> 7b}).
 *       The proxy forwards up to the footer only, so the destination has not seen EOF when the
 *       action happens; with another target the held bytes go on afterwards. With a multifd
 *       target, that channel's packets since SWITCHOVER_START (its final SYNC among them) are held
 *       back too: the source has sent everything, the channel's tail is still in flight.</li>
 * </ul>
 * Actions: {@link Action#DROP} closes both ends of the target; {@link Action#STALL} stops
 * reading the target from the source (nothing is closed: the source's writes block once the
 * socket buffers are full); {@link Action#FREEZE} stops forwarding on every connection, counts
 * {@link #fired} down and waits for {@link #release} (a test kills a process in between).
 * Multifd packets are parsed (12-byte header; RAM packets of 320 + 8 × 128 bytes plus
 * next_packet_size, device-state packets of 276 bytes plus their size).
 */
final class PhaseFaultProxy implements AutoCloseable {
    static final int MAIN = -1;
    private static final int INIT = 64;
    private static final int RAM_PACKET = 320 + 8 * 128;
    private static final int DEVICE_PACKET = 276;
    private static final int FLAG_DEVICE_STATE = 0x40;
    private static final int[] SWITCHOVER_START = {0x7e, 0, 0, 0, -1, 0x08, 0x00, 0x0b, 0x00, 0x00};
    private static final int[] END_OF_STREAM = {0x7e, 0, 0, 0, -1, 0x00, 0x06, 0x00, 0x00, -1, -1, 0x7b};

    enum Phase { SETUP, RAM_ITERATION, SWITCHOVER, COMPLETION }

    enum Action { DROP, STALL, FREEZE }

    private final ServerSocketChannel server;
    private final InetSocketAddress destination;
    private final Phase phase;
    private final Action action;
    private final int target;
    private final List<SocketChannel> open = new CopyOnWriteArrayList<>();
    private final List<Pair> pairs = new CopyOnWriteArrayList<>();
    private final AtomicInteger ramPackets = new AtomicInteger();
    /** The target's packets held back (COMPLETION with a multifd target), in order. */
    private final List<ByteBuffer> held = new CopyOnWriteArrayList<>();
    private final CountDownLatch fired = new CountDownLatch(1);
    private final CountDownLatch released = new CountDownLatch(1);
    private final CountDownLatch closedLatch = new CountDownLatch(1);
    private volatile boolean triggered;
    /** COMPLETION with a multifd target: the target's packets after SWITCHOVER_START are held back. */
    private volatile boolean holdTarget;
    private volatile boolean closed;
    private volatile String firedAt = "";

    /** Both ends of one proxied connection. */
    private static final class Pair {
        final SocketChannel src;
        final SocketChannel dst;
        final int channel;
        volatile boolean stalled;

        Pair(SocketChannel src, SocketChannel dst, int channel) {
            this.src = src;
            this.dst = dst;
            this.channel = channel;
        }
    }

    /**
     * @param target {@link #MAIN} or a multifd channel id (ignored by {@link Action#FREEZE}, which
     *               watches the main channel for the phase, or channel 0 in RAM iteration)
     */
    PhaseFaultProxy(InetSocketAddress destination, Phase phase, Action action, int target) throws IOException {
        this.destination = destination;
        this.phase = phase;
        this.action = action;
        this.target = target;
        server = ServerSocketChannel.open();
        // small receive buffers: a stalled channel blocks the source's writes soon
        server.setOption(StandardSocketOptions.SO_RCVBUF, 64 << 10);
        server.bind(new InetSocketAddress("127.0.0.1", 0));
        Thread.ofPlatform().daemon().name("proxy-accept").start(this::acceptLoop);
    }

    String uri() throws IOException {
        return "tcp:127.0.0.1:" + ((InetSocketAddress) server.getLocalAddress()).getPort();
    }

    /** Waits until the phase was reached and the action done; false on timeout. */
    boolean awaitFired(long seconds) throws InterruptedException {
        return fired.await(seconds, TimeUnit.SECONDS);
    }

    boolean hasFired() {
        return fired.getCount() == 0;
    }

    /** What the proxy saw when it acted (for messages). */
    String firedAt() {
        return firedAt;
    }

    /** After {@link Action#FREEZE}: forwarding resumes. */
    void release() {
        released.countDown();
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

    private boolean watches(int channel) {
        if (action == Action.FREEZE) {
            return phase == Phase.RAM_ITERATION ? channel == 0 : channel == MAIN;
        }
        return channel == target;
    }

    private void handle(SocketChannel src) {
        SocketChannel dst = null;
        try {
            ByteBuffer first = read(src, 4);
            boolean main = first.getInt(0) == 0x5145564d;
            ByteBuffer opening;
            int channel;
            if (main) {
                opening = ByteBuffer.allocate(8).put(first.rewind()).put(read(src, 4)).flip();
                channel = MAIN;
            } else {
                opening = ByteBuffer.allocate(INIT).put(first.rewind()).put(read(src, INIT - 4)).flip();
                channel = opening.get(24) & 0xff;
            }
            dst = SocketChannel.open(destination);
            open.add(dst);
            Pair p = new Pair(src, dst, channel);
            register(p);
            forward(p, opening);
            Thread.ofPlatform().daemon().name("proxy-back-" + channel).start(() -> pumpBack(p));
            if (phase == Phase.SETUP && watches(channel)) {
                fire(channel == MAIN ? "the main stream's header" : "multifd channel " + channel + "'s init");
            }
            if (main) {
                pumpMain(p);
            } else {
                pumpMultifd(p);
            }
        } catch (IOException e) {
            // an end closed, or the drop
        } finally {
            closeQuietly(src);
            closeQuietly(dst);
        }
    }

    /** The action, once, at the phase. */
    private synchronized void fire(String where) throws IOException {
        if (triggered) {
            return;
        }
        triggered = true;
        firedAt = where;
        for (Pair p : pairs) {
            act(p);
        }
        fired.countDown();
    }

    /**
     * Adds a connection. One whose handler ran late (the main channel's, under load, after the
     * multifd channels had already carried the RAM packets that fire RAM_ITERATION) still gets
     * the action if it is the target: without this the drop missed it and the migration completed.
     */
    private synchronized void register(Pair p) {
        pairs.add(p);
        if (triggered) {
            act(p);
        }
    }

    /** The action on one connection, if it is the target. */
    private void act(Pair p) {
        if (p.channel != target) {
            return;
        }
        switch (action) {
            case DROP -> {
                closeQuietly(p.src);
                closeQuietly(p.dst);
            }
            case STALL -> p.stalled = true;
            case FREEZE -> { }
        }
    }

    /** Before each forward: the frozen wait for release, a stalled connection waits for the end. */
    private void gate(Pair p) throws IOException {
        gate(p, true);
    }

    /** @param forward source to destination (a stall stops only this direction: the peer stops reading) */
    private void gate(Pair p, boolean forward) throws IOException {
        try {
            if (triggered && action == Action.FREEZE) {
                released.await();
            }
            if (closed) {
                throw new IOException("proxy closed"); // nothing held is delivered after the end
            }
            if (forward && p.stalled) {
                closedLatch.await();
                throw new IOException("proxy closed");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        }
    }

    private void forward(Pair p, ByteBuffer b) throws IOException {
        gate(p);
        while (b.hasRemaining()) {
            p.dst.write(b);
        }
    }

    /** Destination to source (the return path, or nothing), gated like the forward direction. */
    private void pumpBack(Pair p) {
        ByteBuffer b = ByteBuffer.allocate(1 << 16);
        try {
            while (p.dst.read(b.clear()) >= 0) {
                b.flip();
                gate(p, false);
                while (b.hasRemaining()) {
                    p.src.write(b);
                }
            }
        } catch (IOException e) {
            // the other side went away
        } finally {
            closeQuietly(p.src);
            closeQuietly(p.dst);
        }
    }

    /** The main channel: scans for the switchover and end-of-stream patterns, holding back a partial match. */
    private void pumpMain(Pair p) throws IOException {
        // COMPLETION looks for SWITCHOVER_START first (then a multifd target's packets are held back)
        int[] pattern = phase == Phase.SWITCHOVER || phase == Phase.COMPLETION ? SWITCHOVER_START : null;
        // act after the whole SWITCHOVER_START command; before EOF (after the footer) at completion
        int actAt = pattern == null ? 0 : pattern.length;
        byte[] carry = new byte[0];
        ByteBuffer in = ByteBuffer.allocate(1 << 16);
        boolean rescan = false;
        while (true) {
            gate(p);
            in.clear();
            if (rescan) {
                rescan = false; // the next pattern may already be in the carry: look (in stays empty)
            } else if (p.src.read(in) < 0) {
                if (carry.length > 0) {
                    forward(p, ByteBuffer.wrap(carry));
                }
                gate(p); // a stalled peer never sees the end either
                return;
            }
            in.flip();
            if (pattern == null || triggered) {
                if (carry.length > 0) {
                    forward(p, ByteBuffer.wrap(carry));
                    carry = new byte[0];
                }
                forward(p, in);
                continue;
            }
            byte[] buf = new byte[carry.length + in.remaining()];
            System.arraycopy(carry, 0, buf, 0, carry.length);
            in.get(buf, carry.length, in.remaining());
            int match = find(buf, pattern);
            if (match >= 0 && pattern == SWITCHOVER_START && phase == Phase.COMPLETION) {
                // not yet: the end of the stream comes next; hold a multifd target's tail from here
                holdTarget = target != MAIN && action != Action.FREEZE;
                forward(p, ByteBuffer.wrap(buf, 0, match + pattern.length));
                carry = java.util.Arrays.copyOfRange(buf, match + pattern.length, buf.length);
                pattern = END_OF_STREAM;
                actAt = 5;
                rescan = true;
                continue;
            }
            if (match >= 0) {
                forward(p, ByteBuffer.wrap(buf, 0, match + actAt));
                fire(phase == Phase.SWITCHOVER ? "MIG_CMD_SWITCHOVER_START on the main channel"
                        : "the end of the device stream (before QEMU_VM_EOF) on the main channel");
                carry = new byte[0];
                ByteBuffer rest = ByteBuffer.wrap(buf, match + actAt, buf.length - match - actAt);
                if (action == Action.DROP && target == MAIN) {
                    return;
                }
                forward(p, rest); // gated: frozen or stalled until the end, else goes on
                continue;
            }
            int keep = partialSuffix(buf, pattern);
            forward(p, ByteBuffer.wrap(buf, 0, buf.length - keep));
            carry = java.util.Arrays.copyOfRange(buf, buf.length - keep, buf.length);
        }
    }

    private static boolean matchesAt(byte[] buf, int at, int[] pattern, int len) {
        for (int i = 0; i < len; i++) {
            if (pattern[i] >= 0 && (buf[at + i] & 0xff) != pattern[i]) {
                return false;
            }
        }
        return true;
    }

    private static int find(byte[] buf, int[] pattern) {
        for (int at = 0; at + pattern.length <= buf.length; at++) {
            if (matchesAt(buf, at, pattern, pattern.length)) {
                return at;
            }
        }
        return -1;
    }

    /** The length of the longest suffix of {@code buf} that is a proper prefix of {@code pattern}. */
    private static int partialSuffix(byte[] buf, int[] pattern) {
        for (int len = Math.min(pattern.length - 1, buf.length); len > 0; len--) {
            if (matchesAt(buf, buf.length - len, pattern, len)) {
                return len;
            }
        }
        return 0;
    }

    /** A multifd channel, packet by packet. */
    private void pumpMultifd(Pair p) throws IOException {
        int mine = 0;
        while (true) {
            gate(p);
            ByteBuffer h;
            try {
                h = readOrEnd(p.src, 12);
            } catch (IOException e) {
                gate(p); // a stalled peer never sees the end either
                throw e;
            }
            if (h == null) {
                gate(p);
                return;
            }
            int flags = h.getInt(8);
            boolean device = (flags & FLAG_DEVICE_STATE) != 0;
            ByteBuffer rest = read(p.src, (device ? DEVICE_PACKET : RAM_PACKET) - 12);
            ByteBuffer packet = ByteBuffer.allocate(h.capacity() + rest.capacity()).put(h.rewind()).put(rest).flip();
            int payload = device ? packet.getInt(272) : packet.getInt(20);
            int normal = device ? 0 : packet.getInt(16);
            ByteBuffer body = read(p.src, payload);
            if (holdTarget && p.channel == target && !triggered) {
                held.add(packet);
                held.add(body);
                continue;
            }
            if (p.channel == target && !held.isEmpty()) {
                for (ByteBuffer b : held) {
                    forward(p, b); // after a drop this fails; after a stall it waits for the end
                }
                held.clear();
            }
            forward(p, packet);
            forward(p, body);
            if (normal > 0) {
                mine++;
                int all = ramPackets.incrementAndGet();
                if (phase == Phase.RAM_ITERATION && watches(p.channel)
                        && (p.channel == MAIN ? all >= 4 : mine >= 2)) {
                    fire("RAM packet " + mine + " on multifd channel " + p.channel);
                }
                if (phase == Phase.RAM_ITERATION && target == MAIN && action != Action.FREEZE && all >= 4) {
                    fire(all + " RAM packets on the multifd channels");
                }
            }
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

    private static ByteBuffer readOrEnd(SocketChannel s, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (s.read(b) < 0) {
                if (b.position() == 0) {
                    return null;
                }
                throw new IOException("EOF inside a packet header");
            }
        }
        return b.flip();
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
        closed = true;
        released.countDown();
        closedLatch.countDown();
        server.close();
        for (SocketChannel s : open) {
            closeQuietly(s);
        }
    }
}
