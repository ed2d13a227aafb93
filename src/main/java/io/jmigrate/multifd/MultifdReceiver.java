package io.jmigrate.multifd;

import io.jmigrate.common.Durations;
import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.StreamException;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ReadableByteChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The destination side of multifd (QEMU's multifd_recv_*): one platform thread per channel
 * named {@code mig/dst/recv_N}, which reads and validates each packet before touching memory,
 * writes normal pages straight into guest memory through the {@link PageSink}, clears zero pages
 * that were received before, hands device-state payloads to the {@link DeviceStateSink}, and
 * stops at every SYNC until the main loader calls {@link #recvSyncMain()}.
 *
 * <h2>Use</h2>
 * <pre>{@code
 * MultifdReceiver rx = new MultifdReceiver(cfg, pageSink, deviceSink, errors);
 * rx.addChannel(channel, "tcp 127.0.0.1:4711 #2");  // per accepted multifd connection (reads the init)
 * rx.awaitChannels();               // all N present, or a TIMEOUT error
 * ... main loader: on RAM_SAVE_FLAG_MULTIFD_FLUSH -> rx.recvSyncMain();
 * rx.close();
 * }</pre>
 *
 * <h2>Errors</h2>
 * The first error (bad packet, I/O, a sink throwing, {@link #fail}) is recorded in the shared
 * {@link FirstError}; every channel is closed and every blocked thread released; the main
 * loader's {@link #recvSyncMain()} then throws it.
 */
public final class MultifdReceiver implements AutoCloseable {
    private final MultifdConfig cfg;
    private final PageSink pages;
    private final DeviceStateSink devices;
    private final FirstError errors;
    private final RecvChannel[] slots;
    private final Waits.Permits semSync = new Waits.Permits("the multifd channels' SYNC");
    private final Semaphore connected = new Semaphore(0);
    private final AtomicLong maxPacketNum = new AtomicLong(-1);
    private final List<ReadableByteChannel> unassigned = new ArrayList<>();
    private volatile boolean exiting;
    /** Abort conditions of the waits, made once (not one lambda per packet). */
    private final java.util.function.BooleanSupplier exitingCheck = () -> exiting;
    private final java.util.function.BooleanSupplier syncHopelessCheck = this::syncHopeless;

    public MultifdReceiver(MultifdConfig cfg, PageSink pages, DeviceStateSink devices, FirstError errors) {
        this.cfg = cfg;
        this.pages = pages;
        this.devices = devices;
        this.errors = errors;
        this.slots = new RecvChannel[cfg.channels()];
    }

    public MultifdConfig config() {
        return cfg;
    }

    /**
     * Takes a new multifd connection: reads its 64-byte init record (blocking on the caller's
     * thread), validates it, and starts the channel's receive thread. On a bad init the
     * connection is closed and the whole receive side fails (as QEMU does).
     *
     * @param name describes the connection in errors (e.g. "tcp 127.0.0.1:4711 connection 2")
     * @return the channel id
     */
    public int addChannel(ReadableByteChannel ch, String name) {
        if (exiting) {
            closeQuietly(ch);
            throw error();
        }
        synchronized (this) {
            unassigned.add(ch);
        }
        try {
            ByteBuffer b = ByteBuffer.allocate(MultifdInit.SIZE);
            try {
                ChannelIo.readExactly(ch, b);
            } catch (EOFException e) {
                throw new StreamException(Category.PROTOCOL, name, b.position(),
                        "multifd channel closed before its 64-byte init packet was complete (" + e.getMessage() + ")");
            } catch (IOException e) {
                throw new StreamException(Category.IO, name, b.position(), "reading the multifd init packet failed: "
                        + e.getMessage(), e);
            }
            MultifdInit init = MultifdInit.decode(b.flip(), name).validate(cfg.uuid(), cfg.channels(), name);
            RecvChannel c;
            synchronized (this) {
                if (slots[init.id()] != null) {
                    throw new StreamException(Category.PROTOCOL, name, 24, "duplicate multifd channel id "
                            + init.id() + ": already received on " + slots[init.id()].source);
                }
                unassigned.remove(ch);
                c = new RecvChannel(init.id(), ch, name);
                slots[init.id()] = c;
                if (exiting) {
                    closeQuietly(ch);
                    throw error();
                }
                c.thread = Thread.ofPlatform().name("mig/dst/recv_" + init.id()).daemon(true).unstarted(c::run);
                c.thread.start();
            }
            connected.release();
            return init.id();
        } catch (RuntimeException e) {
            // record first, then close: the source sees the closed channel, fails and closes the
            // main channel, and the truncated main stream must not become the first error
            fail(e);
            closeQuietly(ch);
            throw error();
        }
    }

    /** Waits until every channel has connected and sent its init, or fails with a TIMEOUT error. */
    public void awaitChannels() {
        awaitChannels(cfg.timeout());
    }

    public void awaitChannels(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            if (!connected.tryAcquire(cfg.channels(), 0, TimeUnit.MILLISECONDS)) {
                while (true) {
                    if (exiting) {
                        throw error();
                    }
                    if (connected.tryAcquire(cfg.channels(), 20, TimeUnit.MILLISECONDS)) {
                        break;
                    }
                    if (System.nanoTime() > deadline) {
                        StringBuilder missing = new StringBuilder();
                        synchronized (this) {
                            for (int i = 0; i < slots.length; i++) {
                                if (slots[i] == null) {
                                    missing.append(missing.isEmpty() ? "" : ", ").append(i);
                                }
                            }
                        }
                        fail(new MigrationException(Category.TIMEOUT, "multifd channel(s) " + missing
                                + " did not connect within " + Durations.human(timeout) + " (expected " + cfg.channels()
                                + " channel(s))"));
                        throw error();
                    }
                }
            }
            connected.release(cfg.channels());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MigrationException(Category.CANCELLED, "interrupted while waiting for multifd channels", e);
        }
    }

    /**
     * The main loader's side of the SYNC barrier (QEMU's {@code multifd_recv_sync_main}), called
     * on RAM_SAVE_FLAG_MULTIFD_FLUSH (or on EOS in legacy mode): waits until every channel has
     * reached a SYNC packet, so every page sent before the flush is in guest memory, then
     * releases them all.
     *
     * @throws MigrationException the first error, or PROTOCOL if a channel ended before its SYNC
     */
    public void recvSyncMain() {
        int got = 0;
        while (got < cfg.channels()) {
            if (Waits.acquire(semSync, syncHopelessCheck)) {
                if (exiting) {
                    throw error();
                }
                got++;
                continue;
            }
            if (!exiting) {
                // a channel ended without its SYNC: this barrier can never complete
                String which = endedChannels();
                fail(new MigrationException(Category.PROTOCOL, "multifd channel(s) " + which
                        + " ended before reaching the SYNC that pairs with the main channel's MULTIFD_FLUSH"));
            }
            throw error();
        }
        if (exiting) {
            throw error();
        }
        for (RecvChannel c : slots) {
            c.semSync.release();
        }
    }

    private boolean syncHopeless() {
        if (exiting) {
            return true;
        }
        for (RecvChannel c : slots) {
            if (c == null || c.ended) {
                return semSync.availablePermits() == 0;
            }
        }
        return false;
    }

    private synchronized String endedChannels() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < slots.length; i++) {
            if (slots[i] == null || slots[i].ended) {
                sb.append(sb.isEmpty() ? "" : ", ").append(i)
                        .append(slots[i] == null ? " (never connected)" : " (" + slots[i].source + ")");
            }
        }
        return sb.toString();
    }

    /** The largest packet_num seen so far on any channel, or -1. */
    public long maxPacketNum() {
        return maxPacketNum.get();
    }

    /** Per-channel counters (null entries for channels that never connected are skipped). */
    public synchronized List<ChannelStats> stats() {
        List<ChannelStats> out = new ArrayList<>();
        for (RecvChannel c : slots) {
            if (c != null) {
                out.add(new ChannelStats(c.id, c.packets, c.syncs, c.devicePackets, c.normalPages, c.zeroPages,
                        c.bytes));
            }
        }
        return out;
    }

    /**
     * Waits until every connected channel's thread has ended (its peer closed the channel after
     * the last packet), or the timeout passes. Returns true when all ended.
     */
    public boolean awaitEnd(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        for (RecvChannel c : slotsSnapshot()) {
            if (c == null) {
                continue;
            }
            try {
                long left = deadline - System.nanoTime();
                if (left <= 0 || !c.thread.join(Duration.ofNanos(left))) {
                    return false;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        errors.throwIfSet();
        return true;
    }

    private synchronized RecvChannel[] slotsSnapshot() {
        return slots.clone();
    }

    /** Fails the receive side: records {@code t} (if first), closes all channels, releases every waiter. */
    public void fail(Throwable t) {
        errors.set(t);
        shutdown();
    }

    private void shutdown() {
        exiting = true;
        List<ReadableByteChannel> toClose = new ArrayList<>();
        synchronized (this) {
            toClose.addAll(unassigned);
            for (RecvChannel c : slots) {
                if (c != null) {
                    toClose.add(c.transport);
                    c.semSync.release();
                }
            }
        }
        toClose.forEach(MultifdReceiver::closeQuietly);
        semSync.release(cfg.channels());
    }

    private MigrationException error() {
        MigrationException e = errors.get();
        return e != null ? e : new MigrationException(Category.CANCELLED, "multifd receive side is shutting down");
    }

    /**
     * Closes every channel and wakes every receive thread, without waiting for them to end
     * ({@link #close} joins them): once the last SYNC was passed they write nothing more.
     */
    public void stop() {
        shutdown();
    }

    /** Closes every channel and joins the threads. */
    @Override
    public void close() {
        shutdown();
        for (RecvChannel c : slotsSnapshot()) {
            if (c != null && c.thread != null) {
                try {
                    c.thread.join(cfg.timeout());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                c.codec.close();
            }
        }
    }

    private static void closeQuietly(ReadableByteChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // already failing or done
        }
    }

    /** One receive channel: its thread's state. */
    private final class RecvChannel {
        final int id;
        final ReadableByteChannel transport;
        final String source;
        final String name;
        final Waits.Permits semSync;
        Thread thread;
        volatile boolean ended;
        final RamPacket packet = new RamPacket(cfg.pageSize());
        /** What a truncated RAM packet is called in errors, made once (not a String per packet). */
        final String ramPacketWhat = "RAM packet of " + packet.length() + " bytes";
        final ByteBuffer[] pageBufs = new ByteBuffer[cfg.pageCount()];
        final PageViews views = new PageViews(cfg.pageCount(), cfg.compression() == MultifdCompression.NONE);
        final long[] offs = new long[cfg.pageCount()];
        final MultifdMethods.RecvCodec codec = MultifdMethods.newRecv(cfg.compression(), cfg.pageSize());
        ByteBuffer deviceData;
        long pos = MultifdInit.SIZE;
        volatile long packets;
        volatile long syncs;
        volatile long devicePackets;
        volatile long normalPages;
        volatile long zeroPages;
        volatile long bytes = MultifdInit.SIZE;

        RecvChannel(int id, ReadableByteChannel transport, String source) {
            this.id = id;
            this.transport = transport;
            this.source = source;
            this.name = "multifd channel " + id + " (" + source + ")";
            this.semSync = new Waits.Permits("the main channel's MULTIFD_FLUSH on " + name);
        }

        void run() {
            try {
                while (!exiting && readPacket()) {
                    // next
                }
            } catch (Throwable t) {
                if (!exiting) {
                    MigrationException e = t instanceof MigrationException me ? me
                            : t instanceof EOFException
                            ? new StreamException(Category.PROTOCOL, name, pos, "channel dropped in the middle of a packet: "
                            + t.getMessage())
                            : t instanceof IOException
                            ? new StreamException(Category.IO, name, pos, "read failed: " + t.getMessage(), t)
                            : new MigrationException(Category.INTERNAL, name + ": " + t, t);
                    fail(e);
                }
            } finally {
                ended = true;
            }
        }

        /** Reads, validates and applies one packet; false at a clean end of the channel. */
        private boolean readPacket() throws IOException {
            long at = pos;
            ByteBuffer b = packet.buffer();
            b.limit(PacketHeader.SIZE);
            if (!ChannelIo.readOrEof(transport, b)) {
                return false;
            }
            rejectSyncOnDeviceState(b, at);
            int flags = PacketHeader.decodeFlags(b, 0, name, at);
            if ((flags & PacketHeader.FLAG_DEVICE_STATE) != 0) {
                b.limit(DeviceStatePacket.SIZE);
                readBody(b, at, "device-state packet header");
                DeviceStatePacket h = DeviceStatePacket.decode(b, 0, cfg.maxDeviceStatePacket(), name, at);
                pos = at + DeviceStatePacket.SIZE;
                int len = h.nextPacketSize();
                if (deviceData == null || deviceData.capacity() < len) {
                    deviceData = ByteBuffer.allocateDirect(Math.max(len, 64 * 1024)).order(ByteOrder.BIG_ENDIAN);
                }
                deviceData.clear().limit(len);
                readBody(deviceData, pos, "device-state payload of " + len + " bytes");
                pos += len;
                deviceData.flip();
                DeviceStateEvents.Received ev = new DeviceStateEvents.Received();
                ev.begin();
                devices.loadStateBuffer(id, h.idstr(), h.instanceId(), deviceData.asReadOnlyBuffer());
                if (ev.shouldCommit()) {
                    ev.channel = id;
                    ev.device = h.idstr();
                    ev.instanceId = h.instanceId();
                    ev.size = len;
                    ev.commit();
                }
                packets++;
                devicePackets++;
                bytes = pos;
                return true;
            }
            b.limit(packet.length());
            readBody(b, at, ramPacketWhat);
            pos = at + packet.length();
            int comp = cfg.compression().flag();
            MultifdBlock block = packet.validate(pages, comp, name, at);
            maxPacketNum.accumulateAndGet(packet.packetNum(), Math::max);
            if (block != null) {
                int normal = (int) packet.normalPages();
                int zero = (int) packet.zeroPages();
                long payload = packet.payloadLength(comp);
                int used = normal + zero;
                for (int i = 0; i < used; i++) {
                    offs[i] = packet.offset(i);
                }
                if (normal > 0) {
                    codec.receive(transport, payload, pageBufs, views.fill(block, offs, normal, pageBufs), name, pos);
                    block.markReceived(offs, 0, normal);
                }
                pos += payload;
                if (zero > 0) {
                    block.receiveZeroPages(offs, normal, used);
                }
                normalPages += normal;
                zeroPages += zero;
            }
            packets++;
            bytes = pos;
            if ((flags & PacketHeader.FLAG_SYNC) != 0) {
                syncs++;
                return awaitRelease();
            }
            return true;
        }

        /**
         * A well-formed header with DEVICE_STATE and SYNC: read the device-state header too, so
         * the error names the device the packet was for (PROTOCOL.md §2.7: SYNC is never set there).
         */
        private void rejectSyncOnDeviceState(ByteBuffer b, long at) throws IOException {
            int raw = b.getInt(8);
            if ((raw & PacketHeader.FLAG_DEVICE_STATE) == 0 || (raw & PacketHeader.FLAG_SYNC) == 0
                    || b.getInt(0) != PacketHeader.MAGIC || b.getInt(4) != PacketHeader.VERSION) {
                return;
            }
            b.limit(DeviceStatePacket.SIZE);
            readBody(b, at, "device-state packet header");
            int n = 0;
            while (n < DeviceStatePacket.IDSTR_LEN - 1 && b.get(DeviceStatePacket.IDSTR + n) != 0) {
                n++;
            }
            byte[] id = new byte[n];
            b.get(DeviceStatePacket.IDSTR, id);
            throw new StreamException(Category.PROTOCOL, name, at + 8, "device-state packet for \""
                    + new String(id, java.nio.charset.StandardCharsets.ISO_8859_1) + "\" instance "
                    + Integer.toUnsignedString(b.getInt(DeviceStatePacket.INSTANCE_ID))
                    + " has the SYNC flag set: SYNC is only valid on RAM packets");
        }

        private boolean awaitRelease() {
            MultifdReceiver.this.semSync.release();
            return Waits.acquire(semSync, exitingCheck) && !exiting;
        }

        private void readBody(ByteBuffer b, long at, String what) throws IOException {
            try {
                ChannelIo.readExactly(transport, b);
            } catch (EOFException e) {
                throw new StreamException(Category.PROTOCOL, name, at, "channel dropped in the middle of a packet: "
                        + "truncated " + what + " (" + e.getMessage() + ")");
            }
        }
    }
}
