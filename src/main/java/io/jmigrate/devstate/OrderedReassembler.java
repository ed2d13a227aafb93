package io.jmigrate.devstate;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;

/**
 * The load side's ordered reassembler for one device (QEMU's {@code vfio_multifd_load_state_buffer}
 * and the buffer half of {@code vfio_load_bufs_thread}, PROTOCOL.md §4.5, §4.6): device-state
 * buffers arrive on any multifd receive thread in any order, each with its per-device index;
 * one loader thread takes them strictly in index order.
 *
 * <p>Rules checked by {@link #put} (each error names the device and the idx):
 * <ul>
 *   <li>an index already stored or already taken is refused ("state buffer N already filled");</li>
 *   <li>the buffer flagged {@code last} (VFIO's config packet) must have the highest index: a
 *       buffer with a higher index already received, or arriving later, is refused, and so is
 *       a second {@code last};</li>
 *   <li>the bytes queued (stored, not yet reported {@link #written}) must stay within
 *       {@code maxQueuedBytes} ({@code x-migration-max-queued-buffers-size}); a buffer that
 *       would exceed it is refused before it is copied.</li>
 * </ul>
 *
 * <h2>Memory</h2>
 * Buffers live off-heap, in one shared {@link Arena} that the reassembler (and so the load that
 * owns it) owns, created at the first non-empty {@link #put}. A buffer's segment is drawn from a
 * pool of power-of-two size classes (at least {@value #MIN_CLASS} bytes) and goes back to it when
 * the loader {@link #release}s the buffer, so the arena holds no more than the most buffers
 * queued and held at once, rounded up per buffer; with a finite cap that reserve may not
 * exceed twice the cap plus {@value #RESERVE_SLACK} bytes (a flood of tiny buffers, each rounded
 * up, fails LIMIT rather than growing it). Every length is checked (cap, reserve) before anything is allocated. The
 * arena is closed, all at once, when the last buffer is released, or at {@link #abort} (error,
 * cancel, cleanup) once the loader holds no buffer; after that nothing is allocated again:
 * every later {@link #put} is refused before it allocates. A put checks and reserves under the
 * lock, then allocates (a new segment is zeroed) and copies outside it, so receive threads of
 * one device do not queue behind each other's copies; the loader sees the buffer once its
 * bytes are in, and the arena stays open while a copy runs.
 *
 * <p>Threads: {@link #put} from {@code mig/dst/recv_N} (several at once); {@link #take} and
 * {@link #written} from the device's load thread {@code mig/dst/load_<dev>}; {@link #abort}
 * from whoever cancels (load cleanup). The loader's exit conditions, checked after every
 * wake-up (so spurious wake-ups are harmless): {@link #abort} was called, or the pool's
 * {@code shouldQuit} is true: both end {@link #take} with CANCELLED. {@link #abort} wakes the
 * loader at once; the pool flag is re-read at least every 100 ms while it waits.
 */
public final class OrderedReassembler {

    /**
     * One buffer taken in order. Its {@link #data} is valid until it is {@link #release}d (or the
     * reassembler is closed by {@link #abort} after the release); the taker must release it on
     * every path.
     *
     * @param idx  its index
     * @param data the bytes (off-heap, owned by the taker until released)
     * @param last the buffer flagged last, after which nothing follows
     */
    public record Buffer(long idx, MemorySegment data, boolean last) {
        /** The bytes as a direct ByteBuffer (position 0, limit its length), for a device write. */
        public ByteBuffer byteBuffer() {
            return data.asByteBuffer();
        }

        public int length() {
            return (int) data.byteSize();
        }
    }

    /** How often a waiting {@link #take} re-reads {@code shouldQuit}, which nobody signals. */
    static final long SHOULD_QUIT_RECHECK_MS = 100;
    /** The smallest segment the pool hands out. */
    static final int MIN_CLASS = 64;
    private static final int MIN_SHIFT = Integer.numberOfTrailingZeros(MIN_CLASS);
    private static final MemorySegment EMPTY = MemorySegment.ofArray(new byte[0]);

    private final String device;
    private final long maxQueuedBytes;
    /** Room the reserve has beyond twice the byte cap, for small buffers rounded up. */
    static final long RESERVE_SLACK = 64 << 10;
    /** The cap on the arena's reserve: twice the byte cap plus the slack, none without a cap. */
    private final long maxReservedBytes;
    private final BooleanSupplier shouldQuit;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition ready = lock.newCondition();
    /** Stored buffers by idx. */
    private final Map<Long, Slot> pending = new HashMap<>();
    /** The pool segments of the buffers the loader holds, by idx. */
    private final Map<Long, MemorySegment> held = new HashMap<>();
    /** Free segments by size class (index: log2 of the size). */
    @SuppressWarnings("unchecked")
    private final ArrayDeque<MemorySegment>[] free = new ArrayDeque[64];

    private Arena arena;
    private boolean arenaClosed;
    /** Puts copying outside the lock: the arena stays open until they are done. */
    private int inFlight;
    private boolean lastReleased;
    private long next;
    private long lastIdx = -1;
    private long maxIdx = -1;
    private long queuedBytes;
    private long reservedBytes;
    private String aborted;

    private long received;
    private long receivedBytes;
    private long lateArrivals;
    private long maxDisplacement;
    private long peakQueuedBytes;
    private int peakQueuedBuffers;
    private long peakReservedBytes;

    /**
     * @param device         the device's name for errors (its idstr)
     * @param maxQueuedBytes the cap on queued bytes; {@link Long#MAX_VALUE} for none
     * @param shouldQuit     the load pool's abort flag, checked after every wake-up
     */
    public OrderedReassembler(String device, long maxQueuedBytes, BooleanSupplier shouldQuit) {
        if (maxQueuedBytes <= 0) {
            throw new IllegalArgumentException("maxQueuedBytes must be positive: " + maxQueuedBytes);
        }
        this.device = device;
        this.maxQueuedBytes = maxQueuedBytes;
        this.maxReservedBytes = maxQueuedBytes > Long.MAX_VALUE / 4 ? Long.MAX_VALUE
                : 2 * maxQueuedBytes + RESERVE_SLACK;
        this.shouldQuit = shouldQuit == null ? () -> false : shouldQuit;
    }

    public String device() {
        return device;
    }

    /**
     * Stores a copy of {@code data} (position to limit; not consumed) as buffer {@code idx}.
     *
     * @param idx  the buffer's index, 0 or more
     * @param last this is the final buffer (VFIO's config packet)
     * @throws MigrationException PROTOCOL for a duplicate or misplaced index, LIMIT above the
     *                            byte cap (or the reserve's), CANCELLED after {@link #abort}
     */
    public void put(long idx, ByteBuffer data, boolean last) {
        if (idx < 0) {
            throw new IllegalArgumentException("negative buffer index " + idx);
        }
        int len = data.remaining();
        Slot slot;
        lock.lock();
        try {
            if (aborted != null) {
                throw new MigrationException(Category.CANCELLED, "device " + device + ": state buffer " + idx
                        + " arrived after the load was cancelled (" + aborted + ")");
            }
            if (idx < next || pending.containsKey(idx)) {
                throw new MigrationException(Category.PROTOCOL, "device " + device + ": state buffer " + idx
                        + " already filled");
            }
            if (last) {
                if (lastIdx >= 0) {
                    throw new MigrationException(Category.PROTOCOL, "device " + device + ": config packet idx " + idx
                            + " but the config packet already came as idx " + lastIdx);
                }
                if (maxIdx > idx) {
                    throw new MigrationException(Category.PROTOCOL, "device " + device + ": config packet idx " + idx
                            + " is not last: state buffer " + maxIdx + " was already received");
                }
            } else if (lastIdx >= 0 && idx > lastIdx) {
                throw new MigrationException(Category.PROTOCOL, "device " + device + ": state buffer " + idx
                        + " comes after the config packet idx " + lastIdx);
            }
            if (len > maxQueuedBytes - queuedBytes) {
                throw new MigrationException(Category.LIMIT, "device " + device + ": queuing state buffer " + idx
                        + " (" + len + " bytes, " + queuedBytes + " queued) would exceed the size max of "
                        + maxQueuedBytes + " (x-migration-max-queued-buffers-size)");
            }
            slot = reserve(idx, len);
            pending.put(idx, slot);
            if (last) {
                lastIdx = idx;
            }
            queuedBytes += len;
            received++;
            receivedBytes += len;
            if (idx < maxIdx) {
                lateArrivals++;
                maxDisplacement = Math.max(maxDisplacement, maxIdx - idx);
            }
            maxIdx = Math.max(maxIdx, idx);
            peakQueuedBytes = Math.max(peakQueuedBytes, queuedBytes);
            peakQueuedBuffers = Math.max(peakQueuedBuffers, pending.size());
            if (len > 0) {
                inFlight++; // the arena stays open until the copy is in
            } else {
                slot.filled = true;
                ready.signalAll();
                return;
            }
        } finally {
            lock.unlock();
        }
        // allocation (a new segment is zeroed) and the copy run outside the lock, so that the
        // receive threads of one device do not queue behind each other's copies
        boolean copied = false;
        try {
            if (slot.segment == null) {
                slot.segment = arena.allocate(1L << slot.sizeClass, 8);
            }
            MemorySegment.copy(MemorySegment.ofBuffer(data), 0, slot.segment, 0, len);
            copied = true;
        } finally {
            lock.lock();
            try {
                inFlight--;
                if (copied) {
                    slot.filled = true;
                } else if (aborted == null) {
                    // the buffer can never be taken: the loader must not wait for it
                    aborted = "device " + device + ": storing state buffer " + idx + " failed";
                    pending.clear();
                    queuedBytes = 0;
                }
                ready.signalAll();
                maybeCloseArena();
            } finally {
                lock.unlock();
            }
        }
    }

    /** Size class of {@code len} bytes: log2 of the segment size; lock held. */
    private static int sizeClass(int len) {
        return Math.max(MIN_SHIFT, 64 - Long.numberOfLeadingZeros(len - 1L));
    }

    /** A stored buffer: its pool segment (null until allocated), size class, length, and whether its bytes are in. */
    private static final class Slot {
        MemorySegment segment;
        final int sizeClass;
        final int len;
        boolean filled;

        Slot(MemorySegment segment, int sizeClass, int len) {
            this.segment = segment;
            this.sizeClass = sizeClass;
            this.len = len;
        }
    }

    /**
     * A slot for {@code len} bytes: a pooled segment of its size class, or room in the reserve
     * for a new one (allocated by the caller outside the lock); lock held.
     */
    private Slot reserve(long idx, int len) {
        if (len == 0) {
            return new Slot(EMPTY, -1, 0);
        }
        int c = sizeClass(len);
        ArrayDeque<MemorySegment> q = free[c];
        MemorySegment seg = q == null ? null : q.pollFirst();
        if (seg == null) {
            long size = 1L << c;
            if (size > maxReservedBytes - reservedBytes) {
                throw new MigrationException(Category.LIMIT, "device " + device + ": state buffer " + idx + " ("
                        + len + " bytes) needs " + size + " bytes of buffer space, but " + reservedBytes
                        + " are already reserved and at most " + maxReservedBytes + " may be (twice "
                        + "x-migration-max-queued-buffers-size, plus " + RESERVE_SLACK + ")");
            }
            if (arenaClosed) {
                throw new IllegalStateException("device " + device + ": buffer arena already closed");
            }
            if (arena == null) {
                arena = Arena.ofShared();
            }
            reservedBytes += size;
            peakReservedBytes = Math.max(peakReservedBytes, reservedBytes);
        }
        return new Slot(seg, c, len);
    }

    /** Frees the arena once the load is over (aborted, or the last buffer released) and nobody uses it; lock held. */
    private void maybeCloseArena() {
        if ((aborted != null || lastReleased) && held.isEmpty() && inFlight == 0) {
            closeArena();
        }
    }

    /** Returns a buffer's segment to the pool; lock held. */
    private void recycle(MemorySegment seg) {
        if (seg.byteSize() == 0 || arenaClosed) {
            return;
        }
        int c = Long.numberOfTrailingZeros(seg.byteSize());
        ArrayDeque<MemorySegment> q = free[c];
        if (q == null) {
            q = free[c] = new ArrayDeque<>();
        }
        q.addFirst(seg);
    }

    /** Frees the whole arena (every segment, pooled or pending) at once; lock held. */
    private void closeArena() {
        pending.clear();
        held.clear();
        java.util.Arrays.fill(free, null);
        if (arena != null && !arenaClosed) {
            arena.close();
        }
        arenaClosed = true;
        reservedBytes = 0;
    }

    /**
     * Blocks until the buffer with the next index is there and hands it over. Its bytes keep
     * counting against the cap until reported {@link #written}; its segment stays the taker's
     * until {@link #release}.
     *
     * @throws MigrationException CANCELLED after {@link #abort}, when {@code shouldQuit} is true,
     *                            or when the thread is interrupted
     */
    public Buffer take() {
        lock.lock();
        try {
            while (true) {
                if (aborted != null) {
                    throw new MigrationException(Category.CANCELLED, "device " + device
                            + ": load cancelled while waiting for state buffer " + next + " (" + aborted + ")");
                }
                if (shouldQuit.getAsBoolean()) {
                    throw new MigrationException(Category.CANCELLED, "device " + device
                            + ": operation cancelled while waiting for state buffer " + next);
                }
                if (lastIdx >= 0 && next > lastIdx) {
                    throw new MigrationException(Category.STATE, "device " + device
                            + ": take after the last buffer (idx " + lastIdx + ")");
                }
                Slot b = pending.get(next);
                if (b != null && b.filled) {
                    pending.remove(next);
                    long idx = next++;
                    held.put(idx, b.segment);
                    return new Buffer(idx, b.len == b.segment.byteSize() ? b.segment : b.segment.asSlice(0, b.len),
                            idx == lastIdx);
                }
                try {
                    // signalled by put and abort; the pool's flag wakes nobody, so it is also
                    // re-read at least every SHOULD_QUIT_RECHECK_MS while waiting
                    ready.await(SHOULD_QUIT_RECHECK_MS, java.util.concurrent.TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new MigrationException(Category.CANCELLED, "device " + device
                            + ": interrupted while waiting for state buffer " + next);
                }
            }
        } finally {
            lock.unlock();
        }
    }

    /** The loader has written {@code n} bytes of a taken buffer into the device. */
    public void written(long n) {
        lock.lock();
        try {
            queuedBytes = Math.max(0, queuedBytes - n);
        } finally {
            lock.unlock();
        }
    }

    /**
     * The loader is done with {@code b} (written, or failed): its segment goes back to the pool.
     * Releasing the last buffer, or the last held one after {@link #abort}, frees the arena.
     */
    public void release(Buffer b) {
        lock.lock();
        try {
            MemorySegment seg = held.remove(b.idx());
            if (seg == null) {
                throw new IllegalStateException("device " + device + ": release of buffer " + b.idx()
                        + ", which is not held");
            }
            if (b.last()) {
                lastReleased = true;
            }
            if (aborted == null && !b.last()) {
                recycle(seg);
            }
            maybeCloseArena();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Wakes the loader and makes it and later {@link #put}s fail with CANCELLED; frees every
     * queued buffer (the arena, once the loader holds none). Idempotent.
     */
    public void abort(String why) {
        lock.lock();
        try {
            if (aborted == null) {
                aborted = why == null ? "aborted" : why;
            }
            pending.clear();
            queuedBytes = 0;
            maybeCloseArena();
            ready.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Off-heap bytes the arena holds now (0 once it is closed). */
    public long reservedBytes() {
        lock.lock();
        try {
            return reservedBytes;
        } finally {
            lock.unlock();
        }
    }

    /** Whether the arena was freed (or never needed and can no longer be). */
    public boolean closed() {
        lock.lock();
        try {
            return arenaClosed;
        } finally {
            lock.unlock();
        }
    }

    /** Counters for stats and tests. */
    public Stats stats() {
        lock.lock();
        try {
            return new Stats(received, receivedBytes, lateArrivals, maxDisplacement, peakQueuedBytes,
                    peakQueuedBuffers, next, lastIdx, peakReservedBytes);
        } finally {
            lock.unlock();
        }
    }

    /**
     * @param received          buffers stored
     * @param receivedBytes     their bytes
     * @param lateArrivals      buffers that arrived after one with a higher index (out of order)
     * @param maxDisplacement   the largest (highest index seen - index) at an arrival
     * @param peakQueuedBytes   the most bytes queued at once
     * @param peakQueuedBuffers the most buffers stored and not yet taken at once
     * @param taken             buffers taken so far (the next index)
     * @param lastIdx           the last buffer's index, -1 while unknown
     * @param peakReservedBytes the most off-heap bytes the arena held at once
     */
    public record Stats(long received, long receivedBytes, long lateArrivals, long maxDisplacement,
                        long peakQueuedBytes, int peakQueuedBuffers, long taken, long lastIdx,
                        long peakReservedBytes) {
    }
}
