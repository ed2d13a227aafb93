package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.BitSet;
import java.util.EnumSet;
import java.util.HexFormat;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.locks.ReentrantLock;

/**
 * An emulated VFIO migration VF: a {@link VfioDeviceBackend} that stands in for hardware such as
 * a ConnectX-7 virtual function. It has {@code state-size} bytes of device state, off-heap,
 * deterministic from a seed, which the running device keeps rewriting at {@code dirty-rate}; it
 * walks the uAPI v2 FSM through {@link VfioFsm}; and it streams its state through a data fd
 * paced at {@code read-rate} / {@code write-rate} ({@link RatePacer}).
 *
 * <h2>State and mutations</h2>
 * The state is {@code pages = state-size / 4096} pages. At creation word {@code i} (8 bytes) is
 * {@code mix(seed + i * golden)}. While the device is in a running state (RUNNING, RUNNING_P2P,
 * PRE_COPY, PRE_COPY_P2P) it performs {@code dirty-rate / 4096} mutations per second of running
 * time; mutation {@code k} rewrites page {@code mix(seed ^ k) mod pages} with words derived from
 * {@code (seed, k)}. Mutations are applied lazily, whenever the device is touched (any call), in
 * number exactly as many as running time allows, at most {@code pages} per touch (older ones
 * are then skipped). A stopped device never changes. {@link #digest()} is SHA-256 over the
 * state and the config, and is what the destination must reproduce.
 *
 * <h2>The data stream (opaque to the migration driver)</h2>
 * <pre>
 * header record (24 bytes, first in every saving session):
 *   be32 0x4a564648 "JVFH" | be32 version 1 | be64 state-size | be32 page size 4096 | be32 0
 * data record (16 bytes + length):
 *   be32 0x4a564644 "JVFD" | be32 length (pages * 4096, at most 1 MiB) | be64 offset (page aligned) | bytes
 * </pre>
 * In PRE_COPY the device streams the header, then the initial data (the first
 * {@code precopy-size} bytes), then pages of that region it rewrote after sending them
 * ("dirty"); with nothing pending a read returns {@link VfioDataFd#NOTHING_NOW}. Entering
 * STOP_COPY it streams the rest: unsent initial pages, dirty pages, and every page above
 * {@code precopy-size}; then {@link VfioDataFd#END_OF_STREAM}. Records may be cut anywhere
 * between reads; the destination's parser reassembles them from any segmentation. RESUMING to
 * STOP fails unless the stream ended on a record boundary, had its header and wrote every page.
 *
 * <p>Thread safety: one lock guards the state; a paced call waits for its pacer outside it.
 */
public final class EmulatedVf implements VfioDeviceBackend, PciConfigState, AutoCloseable {
    static final int HEADER_MAGIC = 0x4a564648;
    static final int DATA_MAGIC = 0x4a564644;
    static final int STREAM_VERSION = 1;
    static final int HEADER_RECORD = 24;
    static final int DATA_RECORD = 16;
    static final int RUN_PAGES = 256;
    private static final int PAGE = (int) EmulatedVfConfig.PAGE;
    private static final long GOLDEN = 0x9E3779B97F4A7C15L;
    private static final ValueLayout.OfLong WORD = ValueLayout.JAVA_LONG_UNALIGNED;

    private final EmulatedVfConfig initial;
    private volatile EmulatedVfConfig config;
    private final Ticker ticker;
    private final Set<VfioMigrationFlag> flags;
    private final long pages;
    private final long precopyPages;
    private final Arena arena;
    private final MemorySegment image;
    private final byte[] pciConfig;
    private final ReentrantLock lock = new ReentrantLock();

    private VfioDeviceState state = VfioDeviceState.RUNNING;
    private long runningNanos;
    private long runningSince;
    private long mutationsDue;
    private long mutationsApplied;
    private SaveSession save;
    private ResumeSession resume;
    private boolean closed;
    /** Bumped by every change of the state or the config; the digest is cached against it. */
    private long changes;
    private long digestAt = -1;
    private String digest;

    public EmulatedVf(EmulatedVfConfig config) {
        this(config, Ticker.SYSTEM);
    }

    public EmulatedVf(EmulatedVfConfig config, Ticker ticker) {
        this.initial = config;
        this.config = config;
        this.ticker = ticker;
        this.pages = config.stateSize() / PAGE;
        this.precopyPages = config.precopySize() / PAGE;
        EnumSet<VfioMigrationFlag> f = EnumSet.of(VfioMigrationFlag.STOP_COPY);
        if (config.p2p()) {
            f.add(VfioMigrationFlag.P2P);
        }
        if (config.precopySize() > 0) {
            f.add(VfioMigrationFlag.PRE_COPY);
        }
        this.flags = Set.copyOf(f);
        this.arena = Arena.ofShared();
        this.image = arena.allocate(config.stateSize(), 8);
        long seed = config.seed();
        for (long i = 0, words = config.stateSize() / 8; i < words; i++) {
            image.setAtIndex(WORD, i, mix(seed + i * GOLDEN));
        }
        this.pciConfig = new byte[config.configSize()];
        long x = mix(seed ^ 0xC0FF1CL);
        for (int i = 0; i < pciConfig.length; i++) {
            if ((i & 7) == 0) {
                x = mix(x + GOLDEN);
            }
            pciConfig[i] = (byte) (x >>> ((i & 7) * 8));
        }
        this.runningSince = ticker.nanoTime();
    }

    // ---- properties -----------------------------------------------------------------------------

    public EmulatedVfConfig config() {
        return config;
    }

    /**
     * Changes a property at run time (QMP {@code qom-set}); only the {@code x-test-*} hooks may
     * change after creation.
     */
    public void setProperty(String key, String value) {
        if (!key.startsWith("x-test-")) {
            throw new MigrationException(Category.CONFIG, "vfio-emu '" + initial.id() + "': property '" + key
                    + "' cannot be changed after the device is created");
        }
        lock.lock();
        try {
            config = config.with(key, value);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public String name() {
        return initial.id();
    }

    @Override
    public Set<VfioMigrationFlag> migrationFlags() {
        return flags;
    }

    /** Total mutations performed so far (observability, tests). */
    public long mutations() {
        lock.lock();
        try {
            catchUp();
            return mutationsApplied;
        } finally {
            lock.unlock();
        }
    }

    // ---- FSM ------------------------------------------------------------------------------------

    @Override
    public VfioDeviceState deviceState() {
        lock.lock();
        try {
            return state;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public Optional<VfioDataFd> transition(VfioDeviceState target) {
        lock.lock();
        try {
            checkOpen();
            catchUp();
            VfioDataFd[] opened = new VfioDataFd[1];
            VfioDeviceState before = state;
            try {
                VfioFsm.walk(name(), state, target, flags, (from, to) -> {
                    arc(from, to, opened);
                    setState(to);
                });
            } catch (VfioFsm.TransitionFailed e) {
                setState(e.state());
                if (e.state() == VfioDeviceState.ERROR) {
                    dropSessions();
                } else if (opened[0] != null && !state.isSaving() && state != VfioDeviceState.RESUMING) {
                    opened[0].close();
                }
                throw e;
            }
            assert state == target || before == target;
            return Optional.ofNullable(opened[0]);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void reset() {
        lock.lock();
        try {
            checkOpen();
            catchUp();
            dropSessions();
            setState(VfioDeviceState.RUNNING);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public long stopCopySize() {
        lock.lock();
        try {
            checkOpen();
            catchUp();
            if (save != null) {
                return save.remaining();
            }
            return HEADER_RECORD + pages * PAGE + ((pages + RUN_PAGES - 1) / RUN_PAGES) * DATA_RECORD;
        } finally {
            lock.unlock();
        }
    }

    /** One arc, as a driver executes it; called by the walk with the lock held. */
    private void arc(VfioDeviceState from, VfioDeviceState to, VfioDataFd[] opened) {
        EmulatedVfConfig.FailArc fail = config.failArc();
        if (fail != null && fail.into() == to) {
            config = config.with("x-test-fail-arc", "");
            throw new VfioFsm.ArcFailure("injected failure of the arc into " + to + " (x-test-fail-arc)",
                    fail.leaveError());
        }
        if (VfioFsm.closesDataSession(from, to)) {
            if (from == VfioDeviceState.RESUMING) {
                ResumeSession r = resume;
                if (r != null) {
                    r.finish();
                    r.closed = true;
                    resume = null;
                }
            } else if (save != null) {
                save.closed = true;
                save = null;
            }
        }
        if (VfioFsm.opensDataSession(from, to)) {
            if (to == VfioDeviceState.RESUMING) {
                resume = new ResumeSession();
                opened[0] = resume;
            } else {
                save = new SaveSession();
                opened[0] = save;
            }
        }
        if (to == VfioDeviceState.STOP_COPY && save != null && !save.stopCopy) {
            save.enterStopCopy();
        }
    }

    private void setState(VfioDeviceState s) {
        long now = ticker.nanoTime();
        if (state.isRunning()) {
            runningNanos += now - runningSince;
        }
        state = s;
        runningSince = now;
    }

    private void dropSessions() {
        if (save != null) {
            save.closed = true;
            save = null;
        }
        if (resume != null) {
            resume.closed = true;
            resume = null;
        }
    }

    // ---- mutations ------------------------------------------------------------------------------

    /** Applies the mutations running time owes; lock held. */
    private void catchUp() {
        long rate = config.dirtyRate();
        if (rate == 0 || !state.isRunning()) {
            return;
        }
        long total = runningNanos + (ticker.nanoTime() - runningSince);
        long due = (long) ((double) total * rate / 1e9 / PAGE);
        long owed = due - mutationsDue;
        if (owed <= 0) {
            return;
        }
        long from = due - Math.min(owed, pages);
        for (long k = from; k < due; k++) {
            mutate(k);
        }
        mutationsDue = due;
    }

    private void mutate(long k) {
        long seed = config.seed();
        long page = Long.remainderUnsigned(mix(seed ^ (k * GOLDEN + 1)), pages);
        long base = page * PAGE;
        long x = mix(seed + k);
        for (int w = 0; w < PAGE / 8; w++) {
            x = mix(x + GOLDEN);
            image.set(WORD, base + w * 8L, x);
        }
        mutationsApplied++;
        changes++;
        if (save != null) {
            save.dirtied(page);
        }
    }

    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    // ---- config and digest ----------------------------------------------------------------------

    @Override
    public byte[] saveConfig() {
        lock.lock();
        try {
            return pciConfig.clone();
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void loadConfig(byte[] bytes) {
        lock.lock();
        try {
            if (bytes.length != pciConfig.length) {
                throw new MigrationException(Category.MISMATCH, "vfio-emu '" + name() + "': config state of "
                        + bytes.length + " bytes, but this device's config-size is " + pciConfig.length);
            }
            System.arraycopy(bytes, 0, pciConfig, 0, bytes.length);
            changes++;
        } finally {
            lock.unlock();
        }
    }

    /**
     * SHA-256 (hex) over the device state and the config, as the destination must reproduce it.
     * Computed once per state: a device that did not change since (stopped, or loaded and not
     * yet running) answers from the last one, so asking at completion and again in
     * {@code x-jmigrate-query-digest} hashes its state once.
     */
    public String digest() {
        lock.lock();
        try {
            checkOpen();
            catchUp();
            if (digestAt == changes) {
                return digest;
            }
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update("vfio-emu".getBytes(StandardCharsets.US_ASCII));
            md.update(ByteBuffer.allocate(8).putLong(0, image.byteSize()));
            for (long off = 0; off < image.byteSize(); off += 1 << 20) {
                md.update(image.asSlice(off, Math.min(1 << 20, image.byteSize() - off)).asByteBuffer());
            }
            md.update(pciConfig);
            digest = HexFormat.of().formatHex(md.digest());
            digestAt = changes;
            return digest;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void close() {
        lock.lock();
        try {
            if (!closed) {
                closed = true;
                dropSessions();
                arena.close();
            }
        } finally {
            lock.unlock();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new MigrationException(Category.STATE, "vfio-emu '" + name() + "' is closed");
        }
    }

    private String where() {
        return "vfio-emu '" + name() + "'";
    }

    // ---- saving session -------------------------------------------------------------------------

    /** The data fd of a saving session (PRE_COPY, PRE_COPY_P2P, STOP_COPY). */
    private final class SaveSession implements VfioDataFd {
        private final RatePacer pacer = new RatePacer(config.readRate(), ticker);
        private final long initialTotal = HEADER_RECORD + precopyPages * PAGE
                + ((precopyPages + RUN_PAGES - 1) / RUN_PAGES) * DATA_RECORD;
        private final BitSet dirty = new BitSet();
        private BitSet toSend;
        private boolean headerSent;
        private long initialCursor;
        private long initialReturned;
        private long stopCopyReturned;
        private boolean stopCopy;
        boolean closed;

        // the record being returned: header bytes, then payload from the image
        private final byte[] recHeader = new byte[HEADER_RECORD];
        private int recHeaderLen;
        private int recHeaderPos;
        private long recOffset;
        private long recLen;
        private long recPos;
        private boolean recInitial;
        private boolean inRecord;

        void dirtied(long page) {
            if (!stopCopy && page < initialCursor) {
                dirty.set((int) page);
            }
        }

        void enterStopCopy() {
            toSend = new BitSet((int) pages);
            toSend.set((int) initialCursor, (int) pages);
            toSend.or(dirty);
            dirty.clear();
            stopCopy = true;
        }

        long remaining() {
            long inFlight = inRecord ? (recHeaderLen - recHeaderPos) + (recLen - recPos) : 0;
            long pending = stopCopy ? toSend.cardinality()
                    : (pages - initialCursor) + dirty.cardinality();
            return inFlight + (headerSent ? 0 : HEADER_RECORD) + pending * PAGE
                    + ((pending + RUN_PAGES - 1) / RUN_PAGES) * DATA_RECORD;
        }

        @Override
        public int read(ByteBuffer dst) {
            int n;
            lock.lock();
            try {
                checkFd();
                if (!state.isSaving()) {
                    throw new MigrationException(Category.STATE, where() + ": data fd read in " + state);
                }
                catchUp();
                int start = dst.position();
                while (dst.hasRemaining() && (inRecord || nextRecord())) {
                    copy(dst);
                }
                n = dst.position() - start;
                if (n == 0) {
                    return stopCopy ? END_OF_STREAM : NOTHING_NOW;
                }
                if (stopCopy) {
                    long errAt = config.testReadErrorAt();
                    long before = stopCopyReturned;
                    stopCopyReturned += n;
                    if (errAt >= 0 && before <= errAt && errAt < stopCopyReturned) {
                        config = config.with("x-test-read-error-at", "-1");
                        closed = true;
                        throw new MigrationException(Category.IO, where() + ": read of the STOP_COPY data fd failed"
                                + " (EIO) at stop-copy stream byte " + errAt + " (injected by x-test-read-error-at)");
                    }
                }
            } finally {
                lock.unlock();
            }
            pacer.account(n);
            return n;
        }

        private void copy(ByteBuffer dst) {
            int take;
            if (recHeaderPos < recHeaderLen) {
                take = Math.min(dst.remaining(), recHeaderLen - recHeaderPos);
                dst.put(recHeader, recHeaderPos, take);
                recHeaderPos += take;
            } else {
                take = (int) Math.min(dst.remaining(), recLen - recPos);
                MemorySegment.copy(image, recOffset + recPos, MemorySegment.ofBuffer(dst), 0, take);
                dst.position(dst.position() + take);
                recPos += take;
            }
            if (recInitial) {
                initialReturned += take;
            }
            if (recHeaderPos == recHeaderLen && recPos == recLen) {
                inRecord = false;
            }
        }

        /** Starts the next record; false when nothing is pending now. */
        private boolean nextRecord() {
            ByteBuffer h = ByteBuffer.wrap(recHeader);
            if (!headerSent) {
                headerSent = true;
                h.putInt(HEADER_MAGIC).putInt(STREAM_VERSION).putLong(image.byteSize()).putInt(PAGE).putInt(0);
                start(HEADER_RECORD, 0, 0, true);
                return true;
            }
            long first;
            int run;
            boolean isInitial = false;
            if (!stopCopy && initialCursor < precopyPages) {
                first = initialCursor;
                run = (int) Math.min(RUN_PAGES, precopyPages - initialCursor);
                initialCursor += run;
                isInitial = true;
            } else {
                BitSet set = stopCopy ? toSend : dirty;
                int p = set.nextSetBit(0);
                if (p < 0) {
                    return false;
                }
                int end = set.nextClearBit(p);
                run = Math.min(RUN_PAGES, end - p);
                set.clear(p, p + run);
                first = p;
            }
            h.putInt(DATA_MAGIC).putInt(run * PAGE).putLong(first * PAGE);
            start(DATA_RECORD, first * PAGE, (long) run * PAGE, isInitial);
            return true;
        }

        private void start(int headerLen, long offset, long len, boolean initialPart) {
            recHeaderLen = headerLen;
            recHeaderPos = 0;
            recOffset = offset;
            recLen = len;
            recPos = 0;
            recInitial = initialPart;
            inRecord = true;
        }

        @Override
        public int write(ByteBuffer src) {
            throw new MigrationException(Category.STATE, where() + ": the data fd of a saving session is read-only");
        }

        @Override
        public PrecopyInfo precopyInfo() {
            lock.lock();
            try {
                checkFd();
                if (!state.isPrecopy()) {
                    throw new MigrationException(Category.STATE, where() + ": VFIO_MIG_GET_PRECOPY_INFO in " + state
                            + " (EINVAL): only valid in PRE_COPY and PRE_COPY_P2P");
                }
                catchUp();
                long dirtyInFlight = inRecord && !recInitial ? (recHeaderLen - recHeaderPos) + (recLen - recPos) : 0;
                long d = dirty.cardinality();
                return new PrecopyInfo(initialTotal - initialReturned,
                        dirtyInFlight + d * PAGE + ((d + RUN_PAGES - 1) / RUN_PAGES) * DATA_RECORD);
            } finally {
                lock.unlock();
            }
        }

        private void checkFd() {
            checkOpen();
            if (closed) {
                throw new MigrationException(Category.STATE, where() + ": data fd of an ended saving session used");
            }
        }

        @Override
        public void close() {
            lock.lock();
            try {
                closed = true;
            } finally {
                lock.unlock();
            }
        }
    }

    // ---- resuming session -----------------------------------------------------------------------

    /** The data fd of a RESUMING session: parses the stream from any segmentation into the state. */
    private final class ResumeSession implements VfioDataFd {
        private final RatePacer pacer = new RatePacer(config.writeRate(), ticker);
        private final BitSet received = new BitSet((int) pages);
        private final byte[] hdr = new byte[HEADER_RECORD];
        private int hdrFill;
        private int hdrNeed = 4;
        private boolean inPayload;
        private long recOffset;
        private long recLen;
        private long recPos;
        private boolean headerSeen;
        private long streamPos;
        private MigrationException failed;
        boolean closed;

        @Override
        public int write(ByteBuffer src) {
            int n = src.remaining();
            lock.lock();
            try {
                checkOpen();
                if (closed) {
                    throw new MigrationException(Category.STATE, where() + ": data fd of an ended resuming session used");
                }
                if (state != VfioDeviceState.RESUMING) {
                    throw new MigrationException(Category.STATE, where() + ": data fd write in " + state);
                }
                if (failed != null) {
                    throw failed;
                }
                try {
                    while (src.hasRemaining()) {
                        parse(src);
                    }
                } catch (MigrationException e) {
                    failed = e;
                    throw e;
                }
            } finally {
                lock.unlock();
            }
            pacer.account(n);
            return n;
        }

        private void parse(ByteBuffer src) {
            if (inPayload) {
                int take = (int) Math.min(src.remaining(), recLen - recPos);
                MemorySegment.copy(MemorySegment.ofBuffer(src), 0, image, recOffset + recPos, take);
                changes++;
                src.position(src.position() + take);
                recPos += take;
                streamPos += take;
                if (recPos == recLen) {
                    received.set((int) (recOffset / PAGE), (int) ((recOffset + recLen) / PAGE));
                    inPayload = false;
                }
                return;
            }
            int take = Math.min(src.remaining(), hdrNeed - hdrFill);
            src.get(hdr, hdrFill, take);
            hdrFill += take;
            streamPos += take;
            if (hdrFill < hdrNeed) {
                return;
            }
            ByteBuffer h = ByteBuffer.wrap(hdr);
            int magic = h.getInt(0);
            long at = streamPos - hdrFill;
            if (hdrNeed == 4) {
                if (magic == HEADER_MAGIC) {
                    hdrNeed = HEADER_RECORD;
                } else if (magic == DATA_MAGIC) {
                    hdrNeed = DATA_RECORD;
                } else {
                    throw bad(at, String.format("unknown record magic 0x%08x", magic));
                }
                return;
            }
            hdrFill = 0;
            hdrNeed = 4;
            if (magic == HEADER_MAGIC) {
                if (headerSeen) {
                    throw bad(at, "second stream header");
                }
                int version = h.getInt(4);
                long size = h.getLong(8);
                int page = h.getInt(16);
                if (version != STREAM_VERSION) {
                    throw bad(at, "stream version " + version + ", expected " + STREAM_VERSION);
                }
                if (size != image.byteSize() || page != PAGE) {
                    throw new MigrationException(Category.MISMATCH, where() + ": RESUMING stream byte " + at
                            + ": source state-size " + size + " (page " + page + "), but this device has state-size "
                            + image.byteSize() + " (page " + PAGE + ")");
                }
                headerSeen = true;
                return;
            }
            if (!headerSeen) {
                throw bad(at, "data record before the stream header");
            }
            long len = h.getInt(4) & 0xffff_ffffL;
            long off = h.getLong(8);
            if (len == 0 || len % PAGE != 0 || len > (long) RUN_PAGES * PAGE) {
                throw bad(at, "data record length " + len + " is not 1.." + RUN_PAGES + " pages");
            }
            if (off < 0 || off % PAGE != 0 || off > image.byteSize() - len) {
                throw bad(at, "data record at offset " + off + " + " + len + " is outside the state of "
                        + image.byteSize() + " bytes");
            }
            recOffset = off;
            recLen = len;
            recPos = 0;
            inPayload = true;
        }

        /** RESUMING -&gt; STOP: the stream must be complete. Throws an ArcFailure otherwise. */
        void finish() {
            String why = null;
            if (failed != null) {
                why = "the stream was rejected: " + failed.getMessage();
            } else if (inPayload || hdrFill > 0) {
                why = "the stream ended inside a record at byte " + streamPos;
            } else if (!headerSeen) {
                why = "no stream header was written";
            } else if (received.cardinality() != pages) {
                why = (pages - received.cardinality()) + " of " + pages + " pages were never written (first: page "
                        + received.nextClearBit(0) + ")";
            }
            if (why != null) {
                throw new VfioFsm.ArcFailure(where() + ": cannot load the resumed state: " + why, false);
            }
        }

        private MigrationException bad(long at, String what) {
            return new MigrationException(Category.PROTOCOL, where() + ": RESUMING stream byte " + at + ": " + what);
        }

        @Override
        public int read(ByteBuffer dst) {
            throw new MigrationException(Category.STATE, where() + ": the data fd of a resuming session is write-only");
        }

        @Override
        public PrecopyInfo precopyInfo() {
            throw new MigrationException(Category.STATE, where() + ": VFIO_MIG_GET_PRECOPY_INFO in RESUMING (EINVAL)");
        }

        @Override
        public void close() {
            lock.lock();
            try {
                closed = true;
            } finally {
                lock.unlock();
            }
        }
    }
}
