package io.jmigrate.devstate;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.nio.ByteBuffer;
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
 * <p>Threads: {@link #put} from {@code mig/dst/recv_N} (several at once); {@link #take} and
 * {@link #written} from the device's load thread {@code mig/dst/load_<dev>}; {@link #abort}
 * from whoever cancels (load cleanup). The loader's exit conditions, checked after every
 * wake-up (so spurious wake-ups are harmless): {@link #abort} was called, or the pool's
 * {@code shouldQuit} is true: both end {@link #take} with CANCELLED. {@link #abort} wakes the
 * loader at once; the pool flag is re-read at least every 100 ms while it waits.
 */
public final class OrderedReassembler {

    /**
     * One buffer taken in order.
     *
     * @param idx  its index
     * @param data the bytes (a copy owned by the taker)
     * @param last the buffer flagged last, after which nothing follows
     */
    public record Buffer(long idx, byte[] data, boolean last) {
    }

    /** How often a waiting {@link #take} re-reads {@code shouldQuit}, which nobody signals. */
    static final long SHOULD_QUIT_RECHECK_MS = 100;

    private final String device;
    private final long maxQueuedBytes;
    private final BooleanSupplier shouldQuit;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition ready = lock.newCondition();
    private final Map<Long, byte[]> pending = new HashMap<>();

    private long next;
    private long lastIdx = -1;
    private long maxIdx = -1;
    private long queuedBytes;
    private String aborted;

    private long received;
    private long receivedBytes;
    private long lateArrivals;
    private long maxDisplacement;
    private long peakQueuedBytes;
    private int peakQueuedBuffers;

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
     *                            byte cap, CANCELLED after {@link #abort}
     */
    public void put(long idx, ByteBuffer data, boolean last) {
        if (idx < 0) {
            throw new IllegalArgumentException("negative buffer index " + idx);
        }
        int len = data.remaining();
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
            byte[] copy = new byte[len];
            data.get(data.position(), copy);
            pending.put(idx, copy);
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
            ready.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Blocks until the buffer with the next index is there and hands it over. Its bytes keep
     * counting against the cap until reported {@link #written}.
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
                byte[] b = pending.remove(next);
                if (b != null) {
                    long idx = next++;
                    return new Buffer(idx, b, idx == lastIdx);
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

    /** Wakes the loader and makes it and later {@link #put}s fail with CANCELLED. Idempotent. */
    public void abort(String why) {
        lock.lock();
        try {
            if (aborted == null) {
                aborted = why == null ? "aborted" : why;
            }
            pending.clear();
            queuedBytes = 0;
            ready.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Counters for stats and tests. */
    public Stats stats() {
        lock.lock();
        try {
            return new Stats(received, receivedBytes, lateArrivals, maxDisplacement, peakQueuedBytes,
                    peakQueuedBuffers, next, lastIdx);
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
     */
    public record Stats(long received, long receivedBytes, long lateArrivals, long maxDisplacement,
                        long peakQueuedBytes, int peakQueuedBuffers, long taken, long lastIdx) {
    }
}
