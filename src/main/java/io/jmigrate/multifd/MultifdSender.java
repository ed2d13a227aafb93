package io.jmigrate.multifd;

import io.jmigrate.common.Durations;
import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.ZeroPages;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The source side of multifd (QEMU's multifd_send_*): one platform thread per channel named
 * {@code mig/src/send_N}, payload hand-off by ownership swap, RAM page batching, per-round
 * SYNC, and device-state packets through the same path.
 *
 * <h2>Threads</h2>
 * <ul>
 * <li>{@code mig/src/send_N}: writes its {@link MultifdInit} first, then loops: announce idle
 *     ({@code channelsReady}), wait for work, write one packet (a RAM packet with its pages
 *     straight from guest memory, a device-state packet, or a SYNC packet).</li>
 * <li>Producers: the migration thread ({@link #queuePage}, {@link #flushRam},
 *     {@link #flushAndSync}) and any number of device save threads ({@link #queueDeviceState}).
 *     {@link #send} is serialized by one mutex; it blocks until a channel is idle.</li>
 * </ul>
 *
 * <h2>Errors</h2>
 * The first error (an I/O error on any channel, or {@link #fail}) is recorded in the shared
 * {@link FirstError}, every channel is closed and every waiter released; producers then get
 * that error thrown. Nothing waits without polling the abort flag.
 *
 * <h2>Use</h2>
 * <pre>{@code
 * MultifdSender tx = new MultifdSender(cfg, channels, errors);  // channels: connected, in id order
 * tx.start();
 * tx.queuePage(block, offset);          // migration thread, per dirty page
 * tx.flushAndSync();                    // end of a pass; then write RAM_SAVE_FLAG_MULTIFD_FLUSH on main
 * tx.queueDeviceState("0000:00:05.0/vfio", 0, buf);   // any thread
 * tx.close();                           // drains pending packets, stops threads, closes channels
 * }</pre>
 */
public final class MultifdSender implements AutoCloseable {
    /**
     * Zero-copy send, {@code -Djmigrate.sendfile=on}: normal pages of a block with a file behind
     * it ({@code share=on} file or memfd) go out with {@code FileChannel.transferTo} (sendfile)
     * after the packet header, without compression, on socket transports. Off by default: over
     * TCP loopback it lost to the gathering write (README, Benchmarks).
     */
    public static final boolean SENDFILE = "on".equals(System.getProperty("jmigrate.sendfile", "off"));

    private final MultifdConfig cfg;
    private final FirstError errors;
    private final SendChannel[] channels;
    private final Waits.Permits channelsReady = new Waits.Permits("an idle multifd send channel");
    private final ReentrantLock sendMutex = new ReentrantLock();
    private final ReentrantLock deviceMutex = new ReentrantLock();
    private final AtomicLong packetNum = new AtomicLong();
    private volatile boolean exiting;
    private volatile boolean quit;
    /** Abort conditions of the waits, made once (a method reference or lambda per wait would allocate). */
    private final java.util.function.BooleanSupplier abortedCheck = this::aborted;
    private final java.util.function.BooleanSupplier stopCheck = () -> exiting || quit;
    private int cursor;
    /** The migration thread's RAM payload being filled. */
    private MultifdPayload ramPayload;
    /** Staging payload for device state, guarded by deviceMutex. */
    private MultifdPayload devicePayload;
    /** Empty payloads for {@link #queueDeviceStateOwned}, whose callers do not share one. */
    private final java.util.concurrent.ConcurrentLinkedDeque<MultifdPayload> ownedPayloads =
            new java.util.concurrent.ConcurrentLinkedDeque<>();
    private boolean started;
    private boolean closed;

    /**
     * @param transports one connected channel per id, index = channel id; this object owns and closes them
     */
    public MultifdSender(MultifdConfig cfg, List<? extends WritableByteChannel> transports, FirstError errors) {
        if (transports.size() != cfg.channels()) {
            throw new MigrationException(Category.CONFIG, "multifd sender needs " + cfg.channels()
                    + " channel(s), got " + transports.size());
        }
        this.cfg = cfg;
        this.errors = errors;
        this.channels = new SendChannel[cfg.channels()];
        for (int i = 0; i < channels.length; i++) {
            channels[i] = new SendChannel(i, transports.get(i));
        }
        this.ramPayload = new MultifdPayload(cfg.pageCount());
        this.devicePayload = new MultifdPayload(cfg.pageCount());
    }

    public MultifdConfig config() {
        return cfg;
    }

    /** Starts the channel threads; each writes its init packet first. */
    public synchronized void start() {
        if (started) {
            throw new IllegalStateException("already started");
        }
        started = true;
        for (SendChannel c : channels) {
            c.thread = Thread.ofPlatform().name("mig/src/send_" + c.id).daemon(true).unstarted(c::run);
            c.thread.start();
        }
    }

    private boolean aborted() {
        return exiting;
    }

    private MigrationException error() {
        MigrationException e = errors.get();
        return e != null ? e : new MigrationException(Category.CANCELLED, "multifd send side is shutting down");
    }

    /**
     * Hands a filled payload to an idle channel and returns that channel's empty payload, which
     * the caller owns from now on (QEMU's {@code multifd_send}). Blocks until a channel is idle.
     * Thread safe.
     *
     * @throws MigrationException the first error, if the send side failed
     */
    public MultifdPayload send(MultifdPayload payload) {
        if (payload.isEmpty()) {
            return payload;
        }
        sendMutex.lock();
        try {
            checkRunning();
            if (!Waits.acquire(channelsReady, abortedCheck)) {
                throw error();
            }
            SendChannel c = null;
            for (int i = 0; i < channels.length; i++) {
                SendChannel candidate = channels[(cursor + i) % channels.length];
                if (!candidate.pendingJob) {
                    c = candidate;
                    cursor = (cursor + i + 1) % channels.length;
                    break;
                }
            }
            if (c == null) {
                throw new MigrationException(Category.INTERNAL, "multifd: a channel was ready but none is idle");
            }
            MultifdPayload empty = c.payload;
            c.payload = payload;
            c.pendingJob = true;
            c.sem.release();
            return empty;
        } finally {
            sendMutex.unlock();
        }
    }

    private void checkRunning() {
        if (exiting) {
            throw error();
        }
        if (!started || quit) {
            throw new MigrationException(Category.STATE, "multifd sender is not running");
        }
    }

    /**
     * Queues one RAM page for the channels (QEMU's {@code multifd_queue_page}); the batch goes
     * out when it is full or the block changes. Migration thread only.
     */
    public void queuePage(MultifdBlock block, long offset) {
        if (offset < 0 || offset > block.usedLength() - block.pageSize() || offset % block.pageSize() != 0) {
            throw new IllegalArgumentException("page offset 0x" + Long.toHexString(offset) + " outside " + block);
        }
        if (!ramPayload.addPage(block, offset)) {
            ramPayload = send(ramPayload);
            ramPayload.addPage(block, offset);
        }
        if (ramPayload.isFull()) {
            ramPayload = send(ramPayload);
        }
    }

    /** Sends the queued RAM pages, if any. Migration thread only. */
    public void flushRam() {
        if (!ramPayload.isEmpty()) {
            ramPayload = send(ramPayload);
        }
    }

    /**
     * The per-round barrier (QEMU's {@code multifd_ram_flush_and_sync}): sends queued pages,
     * then one SYNC packet on every channel, and returns once all of them were written. The
     * caller then writes {@code RAM_SAVE_FLAG_MULTIFD_FLUSH} on the main channel (PROTOCOL.md
     * §2.8). Never call it without that pairing flush.
     */
    public void flushAndSync() {
        flushRam();
        sendMutex.lock();
        try {
            checkRunning();
            for (SendChannel c : channels) {
                c.pendingSync = true;
                c.sem.release();
            }
            for (SendChannel c : channels) {
                if (!Waits.acquire(channelsReady, abortedCheck) || !Waits.acquire(c.semSync, abortedCheck)) {
                    throw error();
                }
            }
        } finally {
            sendMutex.unlock();
        }
    }

    /**
     * Sends one device-state packet carrying a copy of {@code data}'s remaining bytes
     * (QEMU's {@code multifd_queue_device_state}). Thread safe; blocks until a channel is idle.
     * Packets of one device may go out on different channels and arrive in any order.
     */
    public void queueDeviceState(String idstr, int instanceId, ByteBuffer data) {
        if (!data.hasRemaining()) {
            throw new IllegalArgumentException("device-state packet for " + idstr + " must not be empty");
        }
        new DeviceStatePacket(idstr, instanceId, data.remaining()); // validates idstr
        deviceMutex.lock();
        try {
            devicePayload.setDeviceState(idstr, instanceId, data);
            try {
                devicePayload = send(devicePayload);
            } catch (RuntimeException e) {
                devicePayload.clear();
                throw e;
            }
        } finally {
            deviceMutex.unlock();
        }
    }

    /**
     * As {@link #queueDeviceState} but without the copy: {@code data} (direct, position to limit)
     * is handed to a channel, which owns it until it is written; the caller must not touch it
     * again. Returns a direct buffer the caller may reuse (one a channel finished writing, of any
     * capacity), or null. What this saves is the copy that {@link #queueDeviceState} makes under
     * the device mutex every device's save thread shares, and that mutex: under CPU contention
     * the save threads queued on it while channels stood idle.
     */
    public ByteBuffer queueDeviceStateOwned(String idstr, int instanceId, ByteBuffer data) {
        if (!data.hasRemaining()) {
            throw new IllegalArgumentException("device-state packet for " + idstr + " must not be empty");
        }
        new DeviceStatePacket(idstr, instanceId, data.remaining()); // validates idstr
        // no device mutex: each caller fills a payload of its own from the pool (at most one
        // per caller and channel exist), so save threads meet only in send()
        MultifdPayload p = ownedPayloads.pollFirst();
        if (p == null) {
            p = new MultifdPayload(cfg.pageCount());
        }
        ByteBuffer spare = p.adoptDeviceState(idstr, instanceId, data);
        MultifdPayload empty;
        try {
            empty = send(p);
        } catch (RuntimeException e) {
            p.clear();
            throw e;
        }
        ownedPayloads.addFirst(empty);
        return spare;
    }

    /** Fails the send side: records {@code t} (if first), closes every channel, wakes every waiter. */
    public void fail(Throwable t) {
        errors.set(t);
        shutdownChannels();
    }

    private void shutdownChannels() {
        exiting = true;
        for (SendChannel c : channels) {
            try {
                c.transport.close();
            } catch (IOException ignored) {
                // the first error is already recorded
            }
            c.sem.release();
        }
    }

    /** Per-channel counters. */
    public List<ChannelStats> stats() {
        List<ChannelStats> out = new ArrayList<>();
        for (SendChannel c : channels) {
            out.add(new ChannelStats(c.id, c.packets, c.syncs, c.devicePackets, c.normalPages, c.zeroPages, c.bytes));
        }
        return out;
    }

    /** Bytes written on every channel so far (init records included); allocates nothing. */
    public long bytesSent() {
        long n = 0;
        for (SendChannel c : channels) {
            n += c.bytes;
        }
        return n;
    }

    /** Pages (normal and zero) written on every channel so far; allocates nothing. */
    public long pagesSent() {
        long n = 0;
        for (SendChannel c : channels) {
            n += c.normalPages + c.zeroPages;
        }
        return n;
    }

    /** Packet numbers handed out so far (the next packet_num). */
    public long packetsNumbered() {
        return packetNum.get();
    }

    /**
     * Drains: waits until every queued packet is written, then stops the threads and closes the
     * channels. Queued-but-unflushed RAM pages are sent first. After an error it just tears down.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        try {
            if (started && !exiting) {
                flushRam();
                sendMutex.lock();
                try {
                    for (SendChannel c : channels) {
                        while (c.pendingJob && !exiting) {
                            Thread.onSpinWait();
                            sleepBriefly();
                        }
                    }
                } finally {
                    sendMutex.unlock();
                }
            }
        } finally {
            quit = true;
            for (SendChannel c : channels) {
                c.sem.release();
            }
            long deadline = System.nanoTime() + cfg.timeout().toNanos();
            for (SendChannel c : channels) {
                if (c.thread != null) {
                    try {
                        long left = deadline - System.nanoTime();
                        if (!c.thread.join(java.time.Duration.ofNanos(Math.max(left, 1)))) {
                            fail(new MigrationException(Category.TIMEOUT, "multifd channel " + c.id
                                    + " did not stop within " + Durations.human(cfg.timeout())));
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
            exiting = true;
            for (SendChannel c : channels) {
                try {
                    c.transport.close();
                } catch (IOException ignored) {
                    // closing after the end
                }
                c.close();
            }
        }
    }

    private static void sleepBriefly() {
        try {
            TimeUnit.MILLISECONDS.sleep(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MigrationException(Category.CANCELLED, "interrupted while draining multifd channels", e);
        }
    }

    /** One channel: its thread's state. Fields other than the volatile flags belong to the thread. */
    private final class SendChannel {
        final int id;
        final WritableByteChannel transport;
        final String name;
        final Waits.Permits sem;
        final Waits.Permits semSync;
        volatile boolean pendingJob;
        volatile boolean pendingSync;
        MultifdPayload payload;
        Thread thread;
        // owned by the thread
        final RamPacket packet;
        final ByteBuffer deviceHeader = ByteBuffer.allocateDirect(DeviceStatePacket.SIZE).order(ByteOrder.BIG_ENDIAN);
        final ByteBuffer[] iov;
        final ByteBuffer[] pageBufs;
        final PageViews views;
        final long[] sorted;
        final MultifdMethods.SendCodec codec;
        final MemorySegment zeroPage;
        volatile long packets;
        volatile long syncs;
        volatile long devicePackets;
        volatile long normalPages;
        volatile long zeroPages;
        volatile long bytes;

        SendChannel(int id, WritableByteChannel transport) {
            this.id = id;
            this.transport = transport;
            this.name = "multifd send channel " + id;
            this.sem = new Waits.Permits("work for " + name);
            this.semSync = new Waits.Permits("the SYNC packet of " + name);
            this.payload = new MultifdPayload(cfg.pageCount());
            this.packet = new RamPacket(cfg.pageSize());
            this.iov = new ByteBuffer[cfg.pageCount() + 2];
            this.pageBufs = new ByteBuffer[cfg.pageCount()];
            this.views = new PageViews(cfg.pageCount(), cfg.compression() == MultifdCompression.NONE);
            this.sorted = new long[cfg.pageCount()];
            this.codec = MultifdMethods.newSend(cfg.compression(), cfg.pageSize(), cfg.level());
            this.zeroPage = Arena.global().allocate(cfg.pageSize());
        }

        void run() {
            try {
                ByteBuffer init = new MultifdInit(cfg.uuid(), id).toBuffer();
                iov[0] = init;
                bytes += ChannelIo.writeFully(transport, iov, 1);
                while (step()) {
                    // next job
                }
            } catch (Throwable t) {
                MigrationException e = t instanceof MigrationException me ? me
                        : io.jmigrate.channel.Transports.peerHungUp(t)
                        ? new MigrationException(Category.IO, "the destination closed multifd channel " + id
                        + " (write failed at byte offset " + bytes + ": " + t.getMessage() + ")", t)
                        : new MigrationException(Category.IO, name + ": write failed: " + t.getMessage(), t);
                fail(e);
            }
        }

        /**
         * Announces this channel idle, waits for its next job and does it: a packet, or a SYNC.
         * False when the channel is to stop. A method of its own, called once per packet, so
         * that the JIT compiles it: {@link #run} is entered once per thread, so it is never
         * compiled and its loop stays in the interpreter for the whole migration (perf put 1.5%
         * of the send threads' samples there, 8 channels).
         */
        private boolean step() throws IOException {
            channelsReady.release();
            if (!Waits.acquire(sem, stopCheck) || exiting) {
                return false;
            }
            if (pendingJob) {
                MultifdPayload p = payload;
                switch (p.type()) {
                    case RAM -> writeRam(p);
                    case DEVICE_STATE -> writeDeviceState(p);
                    case NONE -> { }
                }
                p.clear();
                pendingJob = false;
            } else if (pendingSync) {
                writeSync();
                pendingSync = false;
                semSync.release();
            } else if (quit) {
                return false;
            }
            return true;
        }

        /**
         * One RAM packet and its pages. Kept small, with each per-page loop in a method of its
         * own: C2 then compiles the loops as they get hot, and never has to compile (and
         * on-stack-replace) this whole method around them in the middle of a migration, which
         * took it seconds of compile time on a loaded 2-core machine (JFR, README Benchmarks).
         */
        private void writeRam(MultifdPayload p) throws IOException {
            MultifdBlock block = p.block();
            int n = p.count();
            int ps = cfg.pageSize();
            int normal = cfg.zeroPageDetection() == ZeroPageDetection.MULTIFD
                    ? sortZeroPagesLast(block.memory(), p.offsets(), n, ps)
                    : copyOffsets(p.offsets(), n);
            int zero = n - normal;
            java.nio.channels.FileChannel file = block.file();
            boolean sendfile = file != null && normal > 0 && cfg.compression() == MultifdCompression.NONE
                    && transport instanceof java.nio.channels.SocketChannel;
            int k = 0;
            int size;
            if (sendfile) {
                size = normal * ps;
            } else if (normal > 0) {
                k = preparePayload(block, normal);
                size = codec.nextPacketSize();
            } else {
                size = 0;
            }
            fillPacket(block, n, normal, zero, size);
            long written = ChannelIo.writeFully(transport, iov, 1 + k);
            for (int i = 0; i <= k; i++) {
                iov[i] = null;
            }
            if (sendfile) {
                written += sendRuns(file, normal, ps);
            }
            bytes += written;
            packets++;
            normalPages += normal;
            zeroPages += zero;
        }

        /**
         * Puts the normal pages of {@code offs[0..n)} first, in queue order, into {@link #sorted},
         * and the zero pages last, in queue order (QEMU's multifd_send_zero_page_detect);
         * returns the number of normal pages.
         */
        private int sortZeroPagesLast(MemorySegment mem, long[] offs, int n, int ps) {
            int front = 0;
            int back = n;
            for (int i = 0; i < n; i++) {
                long off = offs[i];
                if (ZeroPages.isZero(mem, off, ps, zeroPage)) {
                    sorted[--back] = off;
                } else {
                    sorted[front++] = off;
                }
            }
            // zero pages were filled from the back: restore their queue order
            for (int i = back, j = n - 1; i < j; i++, j--) {
                long t = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = t;
            }
            return front;
        }

        /** All pages are normal (no zero-page detection here): {@link #sorted} = {@code offs[0..n)}. */
        private int copyOffsets(long[] offs, int n) {
            System.arraycopy(offs, 0, sorted, 0, n);
            return n;
        }

        /** The views of the {@code normal} pages through the codec into {@link #iov} from 1; returns their count. */
        private int preparePayload(MultifdBlock block, int normal) {
            return codec.prepare(pageBufs, views.fill(block, sorted, normal, pageBufs), iov, 1);
        }

        /** The packet header for {@link #sorted}'s {@code n} pages, into {@link #iov}[0]. */
        private void fillPacket(MultifdBlock block, int n, int normal, int zero, int size) {
            packet.reset(cfg.compression().flag())
                    .pagesAlloc(cfg.pageCount())
                    .normalPages(normal)
                    .zeroPages(zero)
                    .nextPacketSize(size)
                    .packetNum(packetNum.getAndIncrement())
                    .blockName(block.nameBytes());
            for (int i = 0; i < n; i++) {
                packet.offset(i, sorted[i]);
            }
            iov[0] = packet.buffer();
        }

        /**
         * The packet's normal pages straight from the block's file, one {@code transferTo}
         * (sendfile) per run of contiguous offsets.
         */
        private long sendRuns(java.nio.channels.FileChannel file, int normal, int ps) throws IOException {
            long total = 0;
            int i = 0;
            while (i < normal) {
                long start = sorted[i];
                int j = i + 1;
                while (j < normal && sorted[j] == sorted[j - 1] + ps) {
                    j++;
                }
                long len = (long) (j - i) * ps;
                long done = 0;
                while (done < len) {
                    long w = file.transferTo(start + done, len - done, transport);
                    if (w <= 0) {
                        throw new IOException("sendfile of guest RAM at offset 0x" + Long.toHexString(start + done)
                                + " made no progress (" + (len - done) + " bytes left)");
                    }
                    done += w;
                }
                total += len;
                i = j;
            }
            return total;
        }

        private void writeDeviceState(MultifdPayload p) throws IOException {
            ByteBuffer data = p.data();
            new DeviceStatePacket(p.idstr(), p.instanceId(), data.remaining()).encode(deviceHeader.clear(), 0);
            deviceHeader.limit(DeviceStatePacket.SIZE);
            iov[0] = deviceHeader;
            iov[1] = data;
            DeviceStateEvents.Sent ev = new DeviceStateEvents.Sent();
            ev.begin();
            int size = data.remaining();
            bytes += ChannelIo.writeFully(transport, iov, 2);
            if (ev.shouldCommit()) {
                ev.channel = id;
                ev.device = p.idstr();
                ev.instanceId = p.instanceId();
                ev.size = size;
                ev.commit();
            }
            iov[0] = null;
            iov[1] = null;
            packets++;
            devicePackets++;
        }

        private void writeSync() throws IOException {
            packet.reset(PacketHeader.FLAG_SYNC).packetNum(packetNum.getAndIncrement());
            iov[0] = packet.buffer();
            bytes += ChannelIo.writeFully(transport, iov, 1);
            iov[0] = null;
            packets++;
            syncs++;
        }

        void close() {
            if (thread == null || !thread.isAlive()) {
                codec.close();
            }
        }
    }
}
