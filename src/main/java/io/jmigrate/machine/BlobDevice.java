package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * {@code --device blob}: a generic device whose switchover state travels as multifd device
 * state (PROTOCOL.md §2.7, §3), the first non-VFIO user of it (QEMU has none). It models a slow
 * device with a large stop-copy state, like a VFIO VF, without any kernel interface.
 *
 * <h2>State</h2>
 * {@code size} bytes, filled from {@code seed} at start; while the vCPUs run, the thread
 * {@code blob/<id>} mutates 64 bytes every millisecond (so the state a migration carries is
 * the state at the switchover), unless {@code mutate=off}. {@link #stateDigest} is the SHA-256 of the bytes.
 *
 * <h2>Transfer</h2>
 * Iterable section {@code <id>/blob}, version 1. Multifd transfer is on when multifd device state
 * is in effect <em>and</em> the machine sends SWITCHOVER_START (jm-10.1; off for jm-9.2, as
 * VFIO's {@code x-migration-multifd-transfer} compat); both sides must agree, which the START
 * section checks.
 *
 * <pre>
 * PART:       empty (the state is stop-copy only)
 * START:      be64 TAG_SETUP | be64 size | be32 chunk | u8 transfer (1 multifd, 0 main) | be64 TAG_END
 * END:        multifd: be64 TAG_END
 *             main:    { be64 TAG_DATA | be64 offset | be32 len | len bytes } ... be64 TAG_END
 * device-state packet payload (multifd, one per chunk, any channel, any order):
 *             be32 version 0 | be32 idx | be64 offset = idx × chunk | data (chunk bytes, the last
 *             one shorter)
 * </pre>
 *
 * The save thread {@code mig/src/save_<id>/blob} reads the state chunk by chunk at
 * {@code read-rate} and queues one packet per chunk. The destination's receive threads copy each
 * packet into its slot (index-addressed, bounded by the device size, duplicates refused); the
 * load thread {@code mig/dst/load_<id>/blob}, started at SWITCHOVER_START, writes the slots into
 * the state in index order at {@code write-rate}, waiting for missing ones.
 */
public final class BlobDevice implements Device {
    static final int VERSION = 1;
    static final long TAG_SETUP = 0x6a6d626c6f620001L;
    static final long TAG_DATA = 0x6a6d626c6f620002L;
    static final long TAG_END = 0x6a6d626c6f62ffffL;
    static final int PACKET_HEADER = 16;
    private static final int MUTATION_BYTES = 64;
    private static final long MUTATION_PERIOD_NANOS = 1_000_000;

    private final BlobSpec spec;
    private final byte[] state;
    private final ReentrantLock stateLock = new ReentrantLock();
    private final Condition resumed = stateLock.newCondition();
    private boolean running;
    private boolean closed;
    private long mutations;
    private final Thread mutator;
    /** The save-side test hooks fire in the first migration only. */
    private final java.util.concurrent.atomic.AtomicBoolean saveHooksArmed = new java.util.concurrent.atomic.AtomicBoolean(true);

    public BlobDevice(BlobSpec spec) {
        this.spec = spec;
        this.state = new byte[(int) spec.size()];
        new SplittableRandom(spec.seed()).nextBytes(state);
        this.mutator = Thread.ofPlatform().name("blob/" + spec.id()).daemon(true).unstarted(this::mutate);
        if (spec.mutate()) {
            mutator.start();
        }
    }

    public BlobSpec spec() {
        return spec;
    }

    @Override
    public String idstr() {
        return spec.idstr();
    }

    @Override
    public int instanceId() {
        return 0;
    }

    @Override
    public int versionId() {
        return VERSION;
    }

    /** Mutations applied so far (tests). */
    public long mutations() {
        stateLock.lock();
        try {
            return mutations;
        } finally {
            stateLock.unlock();
        }
    }

    private void mutate() {
        long next = System.nanoTime();
        while (true) {
            stateLock.lock();
            try {
                while (!running && !closed) {
                    resumed.awaitUninterruptibly();
                    next = System.nanoTime();
                }
                if (closed) {
                    return;
                }
                long k = mutations++;
                SplittableRandom r = new SplittableRandom(spec.seed() ^ (k * 0x9e3779b97f4a7c15L));
                int off = r.nextInt(state.length - MUTATION_BYTES + 1);
                for (int i = 0; i < MUTATION_BYTES; i++) {
                    state[off + i] = (byte) r.nextInt();
                }
            } finally {
                stateLock.unlock();
            }
            next += MUTATION_PERIOD_NANOS;
            LockSupport.parkNanos(next - System.nanoTime());
        }
    }

    /** Stopping waits for a mutation in progress: when this returns with {@code false}, the state is quiescent. */
    @Override
    public void runStateChanged(boolean run) {
        stateLock.lock();
        try {
            running = run;
            resumed.signalAll();
        } finally {
            stateLock.unlock();
        }
    }

    @Override
    public String stateDigest() {
        stateLock.lock();
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(state);
            return HexFormat.of().formatHex(md.digest());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        } finally {
            stateLock.unlock();
        }
    }

    @Override
    public void close() {
        stateLock.lock();
        try {
            closed = true;
            resumed.signalAll();
        } finally {
            stateLock.unlock();
        }
    }

    private static boolean multifdTransfer(io.jmigrate.savevm.SaveVmOptions o) {
        return o.multifdDeviceState() && o.switchoverStart();
    }

    @Override
    public SaveVmHandlers.Save saveHandlers(SaveContext ctx) {
        return new Save(multifdTransfer(ctx.options()));
    }

    @Override
    public SaveVmHandlers.Load loadHandlers(LoadContext ctx) {
        return new Load(multifdTransfer(ctx.options()));
    }

    private int chunkLength(int idx) {
        long off = (long) idx * spec.chunk();
        return (int) Math.min(spec.chunk(), spec.size() - off);
    }

    /** Sleeps as needed so that {@code done} bytes take at least done/rate seconds since {@code startNanos}. */
    private static void pace(long rate, long startNanos, long done) {
        if (rate <= 0) {
            return;
        }
        long due = startNanos + (long) (done * 1e9 / rate);
        long wait = due - System.nanoTime();
        if (wait > 0) {
            LockSupport.parkNanos(wait);
        }
    }

    private String where() {
        return "device " + spec.idstr();
    }

    /** Source handlers of one migration. The VM is stopped when the state is read. */
    private final class Save implements SaveVmHandlers.Save {
        private final boolean multifd;

        Save(boolean multifd) {
            this.multifd = multifd;
        }

        @Override
        public boolean isIterable() {
            return true;
        }

        @Override
        public void saveSetup(QemuFileWriter w) {
            w.putBe64(TAG_SETUP).putBe64(spec.size()).putBe32(spec.chunk()).putU8(multifd ? 1 : 0).putBe64(TAG_END);
        }

        private final boolean hooks = saveHooksArmed.getAndSet(false);

        @Override
        public void saveComplete(QemuFileWriter w) {
            if (!multifd) {
                long start = System.nanoTime();
                for (int idx = 0; idx < spec.chunks(); idx++) {
                    if (hooks && idx == spec.failSave()) {
                        throw injected("save", idx);
                    }
                    long off = (long) idx * spec.chunk();
                    int len = chunkLength(idx);
                    pace(spec.readRate(), start, off + len);
                    w.putBe64(TAG_DATA).putBe64(off).putBe32(len).putBytes(state, (int) off, len);
                }
            }
            w.putBe64(TAG_END);
        }

        @Override
        public boolean hasCompletePrecopyThread() {
            return multifd;
        }

        @Override
        public void saveCompletePrecopyThread(DeviceStateOutput out, AbortFlag abort) {
            ByteBuffer packet = ByteBuffer.allocate(PACKET_HEADER + spec.chunk());
            long start = System.nanoTime();
            long done = 0;
            int n = spec.chunks();
            for (int i = 0; i < n; i++) {
                int idx = spec.reverse() ? n - 1 - i : i;
                abort.check(where() + " save thread");
                if (hooks && idx == spec.failSave()) {
                    throw injected("save", idx);
                }
                if (hooks && idx == spec.holdSave()) {
                    while (!abort.isSet()) { // test hook: wait for the cancel or failure under test
                        LockSupport.parkNanos(10_000_000);
                    }
                    abort.check(where() + " save thread (held by hold-at=save:" + idx + ")");
                }
                long off = (long) idx * spec.chunk();
                int len = chunkLength(idx);
                done += len;
                pace(spec.readRate(), start, done);
                packet.clear();
                packet.putInt(0).putInt(idx).putLong(off).put(state, (int) off, len).flip();
                out.queue(packet);
            }
        }
    }

    private MigrationException injected(String side, int idx) {
        return new MigrationException(Category.INTERNAL, where() + ": injected " + side + " failure at chunk "
                + idx + " (test hook fail-at=" + side + ":" + idx + ")");
    }

    /** Destination handlers of one migration: the slots exist from construction (before the receiver starts). */
    private final class Load implements SaveVmHandlers.Load {
        private final boolean multifd;
        private final ReentrantLock lock = new ReentrantLock();
        private final Condition ready = lock.newCondition();
        private final byte[][] slots = new byte[spec.chunks()][];
        private final boolean[] filled = new boolean[spec.chunks()];
        private boolean wantExit;
        private boolean loadThreadStarted;
        private final AtomicInteger maxIdx = new AtomicInteger(-1);
        private final AtomicLong outOfOrder = new AtomicLong();
        private final AtomicLong buffered = new AtomicLong();
        private final AtomicLong maxBuffered = new AtomicLong();
        private volatile int loaded;
        private boolean sawSetup;
        private boolean sawEnd;

        Load(boolean multifd) {
            this.multifd = multifd;
        }

        @Override
        public void loadState(QemuFileReader r, SectionType type, int versionId) {
            switch (type) {
                case START -> loadSetupSection(r);
                case END -> loadEnd(r);
                case PART -> { } // no precopy data: the whole state goes at switchover
                case FULL -> throw r.fail(Category.PROTOCOL, where() + ": unexpected " + type + " section");
                default -> throw r.fail(Category.PROTOCOL, where() + ": unexpected section type " + type);
            }
        }

        private void loadSetupSection(QemuFileReader r) {
            long at = r.position();
            long tag = r.readBe64("blob setup tag");
            if (tag != TAG_SETUP) {
                throw r.fail(Category.PROTOCOL, at, where() + ": setup tag 0x" + Long.toHexString(tag)
                        + ", expected 0x" + Long.toHexString(TAG_SETUP));
            }
            long size = r.readBe64("blob size");
            int chunk = r.readBe32("blob chunk");
            int transfer = r.readU8("blob transfer mode");
            expectEnd(r);
            if (size != spec.size() || chunk != spec.chunk()) {
                throw r.fail(Category.MISMATCH, at, where() + ": the source's state is " + size + " bytes in chunks of "
                        + chunk + ", this device's is " + spec.size() + " in chunks of " + spec.chunk());
            }
            if ((transfer == 1) != multifd) {
                throw r.fail(Category.MISMATCH, at, where() + ": the source sends its state "
                        + (transfer == 1 ? "over multifd" : "on the main channel") + ", this side expects it "
                        + (multifd ? "over multifd" : "on the main channel")
                        + " (multifd, multifd-compression none and send-switchover-start must agree)");
            }
            sawSetup = true;
        }

        private void expectEnd(QemuFileReader r) {
            long at = r.position();
            long tag = r.readBe64("blob end tag");
            if (tag != TAG_END) {
                throw r.fail(Category.PROTOCOL, at, where() + ": tag 0x" + Long.toHexString(tag) + ", expected END 0x"
                        + Long.toHexString(TAG_END));
            }
        }

        private void loadEnd(QemuFileReader r) {
            if (multifd) {
                expectEnd(r);
                sawEnd = true;
                return;
            }
            long start = System.nanoTime();
            long done = 0;
            int idx = 0;
            while (true) {
                long at = r.position();
                long tag = r.readBe64("blob tag");
                if (tag == TAG_END) {
                    break;
                }
                if (tag != TAG_DATA) {
                    throw r.fail(Category.PROTOCOL, at, where() + ": tag 0x" + Long.toHexString(tag)
                            + ", expected DATA or END");
                }
                long off = r.readBe64("blob chunk offset");
                int len = r.readBe32("blob chunk length");
                if (idx >= spec.chunks() || off != (long) idx * spec.chunk() || len != chunkLength(idx)) {
                    throw r.fail(Category.PROTOCOL, at, where() + ": chunk " + idx + " at offset " + off + " of "
                            + len + " bytes, expected offset " + (long) idx * spec.chunk() + " of "
                            + (idx < spec.chunks() ? chunkLength(idx) : 0));
                }
                if (idx == spec.failLoad()) {
                    throw injected("load", idx);
                }
                done += len;
                pace(spec.writeRate(), start, done);
                r.readFully(state, (int) off, len, "blob chunk " + idx);
                idx++;
            }
            loaded = idx;
            sawEnd = true;
        }

        @Override
        public void loadStateBuffer(ByteBuffer data) {
            if (!multifd) {
                throw new MigrationException(Category.PROTOCOL, where() + ": device-state packet, but this device "
                        + "takes its state on the main channel (multifd transfer off)");
            }
            if (data.remaining() < PACKET_HEADER) {
                throw new MigrationException(Category.PROTOCOL, where() + ": device-state packet of "
                        + data.remaining() + " bytes is shorter than its 16-byte header");
            }
            int version = data.getInt();
            int idx = data.getInt();
            long off = data.getLong();
            if (version != 0) {
                throw new MigrationException(Category.PROTOCOL, where() + ": packet version " + version
                        + ", expected 0");
            }
            if (idx < 0 || idx >= spec.chunks()) {
                throw new MigrationException(Category.PROTOCOL, where() + ": packet index " + Integer.toUnsignedString(idx)
                        + " out of range 0.." + (spec.chunks() - 1));
            }
            if (off != (long) idx * spec.chunk() || data.remaining() != chunkLength(idx)) {
                throw new MigrationException(Category.PROTOCOL, where() + ": packet " + idx + " at offset " + off
                        + " with " + data.remaining() + " bytes, expected offset " + (long) idx * spec.chunk()
                        + " with " + chunkLength(idx));
            }
            byte[] copy = new byte[data.remaining()];
            data.get(copy);
            lock.lock();
            try {
                if (filled[idx]) {
                    throw new MigrationException(Category.PROTOCOL, where() + ": state buffer " + idx
                            + " already filled");
                }
                filled[idx] = true;
                slots[idx] = copy;
                long b = buffered.addAndGet(copy.length);
                maxBuffered.accumulateAndGet(b, Math::max);
                if (idx < maxIdx.get()) {
                    outOfOrder.incrementAndGet();
                }
                maxIdx.accumulateAndGet(idx, Math::max);
                ready.signalAll();
            } finally {
                lock.unlock();
            }
        }

        @Override
        public void switchoverStart(LoadThreads threads) {
            if (multifd) {
                lock.lock();
                try {
                    loadThreadStarted = true;
                } finally {
                    lock.unlock();
                }
                threads.start(spec.idstr(), this::loadThread);
            }
        }

        /**
         * Writes the chunks in index order. Exits when all are written; fails "operation
         * cancelled" when cleanup (want-exit) or the pool's abort flag is set, re-checked after
         * every wake-up.
         */
        private void loadThread(AbortFlag shouldQuit) throws InterruptedException {
            long start = System.nanoTime();
            long done = 0;
            for (int idx = 0; idx < spec.chunks(); idx++) {
                byte[] data;
                lock.lock();
                try {
                    while (slots[idx] == null) {
                        if (wantExit) {
                            throw new MigrationException(Category.CANCELLED, where() + " load thread: operation "
                                    + "cancelled");
                        }
                        shouldQuit.check(where() + " load thread");
                        ready.await(20, TimeUnit.MILLISECONDS);
                    }
                    data = slots[idx];
                    slots[idx] = null;
                } finally {
                    lock.unlock();
                }
                if (idx == spec.failLoad()) {
                    throw injected("load", idx);
                }
                done += data.length;
                pace(spec.writeRate(), start, done);
                System.arraycopy(data, 0, state, (int) ((long) idx * spec.chunk()), data.length);
                buffered.addAndGet(-data.length);
                loaded = idx + 1;
            }
        }

        @Override
        public void loadComplete() {
            if (!sawSetup || !sawEnd) {
                throw new MigrationException(Category.PROTOCOL, where() + ": the stream ended without its "
                        + (sawSetup ? "END" : "START") + " section");
            }
            if (loaded != spec.chunks()) {
                throw new MigrationException(Category.PROTOCOL, where() + ": only " + loaded + " of "
                        + spec.chunks() + " chunks were loaded" + (multifd && !loadThreadStarted
                        ? " (no SWITCHOVER_START arrived to start the load thread)" : ""));
            }
        }

        @Override
        public void loadCleanup() {
            lock.lock();
            try {
                wantExit = true;
                java.util.Arrays.fill(slots, null);
                ready.signalAll();
            } finally {
                lock.unlock();
            }
        }

        @Override
        public Map<String, Object> loadStats() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("transfer", multifd ? "multifd" : "main");
            m.put("chunks", spec.chunks());
            m.put("chunks-loaded", loaded);
            m.put("out-of-order", outOfOrder.get());
            m.put("max-buffered-bytes", maxBuffered.get());
            return m;
        }
    }
}
