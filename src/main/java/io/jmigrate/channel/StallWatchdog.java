package io.jmigrate.channel;

import io.jmigrate.common.Durations;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ScatteringByteChannel;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * Stall detection for the channels of one outgoing migration ({@code x-jmigrate-stall-timeout};
 * QEMU has no equivalent: its source blocks in a write for as long as the peer keeps the
 * connection open without reading).
 *
 * <p>Every watched channel splits each write into calls of at most {@link #SLICE} bytes and
 * records when the call in progress began. A blocking socket write returns once its bytes are in
 * the socket buffer, so a call that has not returned after {@code timeout} means the peer
 * accepted nothing for that long: the peer stopped reading (or the path to it is gone without a
 * reset). The watchdog thread {@code mig/src/stall} then reports a TIMEOUT naming the channel
 * once, through {@code onStall}; the owner records it as the migration's first error and closes
 * the channels, which unblocks the stalled write. A channel between writes (idle: nothing to
 * send) is never stalled.
 *
 * <p>Detection happens between {@code timeout} and {@code timeout × 5/4} after the last progress
 * (the watchdog looks every {@code timeout / 4}, at least every second).
 */
public final class StallWatchdog implements AutoCloseable {
    /** The most bytes one underlying write call is given: progress is observed at least this often. */
    public static final int SLICE = 256 << 10;
    private static final long IDLE = Long.MIN_VALUE;

    private final Duration timeout;
    private final LongSupplier clock;
    private final Consumer<MigrationException> onStall;
    private final List<Watched> channels = new CopyOnWriteArrayList<>();
    private final CountDownLatch closed = new CountDownLatch(1);
    private volatile boolean fired;
    private Thread thread;

    /**
     * @param timeout how long a write may make no progress
     * @param onStall called once, on {@code mig/src/stall}, with the TIMEOUT naming the stalled channel
     */
    public StallWatchdog(Duration timeout, Consumer<MigrationException> onStall) {
        this(timeout, onStall, System::nanoTime);
    }

    /** With an injected clock (nanoseconds), for tests that call {@link #check} themselves. */
    StallWatchdog(Duration timeout, Consumer<MigrationException> onStall, LongSupplier clock) {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("stall timeout must be positive");
        }
        this.timeout = timeout;
        this.onStall = onStall;
        this.clock = clock;
    }

    public Duration timeout() {
        return timeout;
    }

    /**
     * Wraps {@code ch}: writes through the result are watched, reads pass straight through.
     *
     * @param name what the error calls it, e.g. "the main channel" or "multifd channel 1"
     */
    public ByteChannel watch(ByteChannel ch, String name) {
        Watched w = new Watched(ch, name);
        channels.add(w);
        return w;
    }

    /** Starts {@code mig/src/stall}, which runs {@link #check} until {@link #close}. */
    public synchronized void start() {
        if (thread != null) {
            throw new IllegalStateException("already started");
        }
        long period = Math.clamp(timeout.toMillis() / 4, 1, 1000);
        thread = Thread.ofPlatform().name("mig/src/stall").daemon(true).start(() -> {
            try {
                while (!closed.await(period, TimeUnit.MILLISECONDS)) {
                    if (check()) {
                        return;
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
    }

    /**
     * Looks at every watched channel once; reports the first one whose write has made no
     * progress for the timeout. Returns true once a stall was reported (then never again).
     */
    boolean check() {
        if (fired) {
            return true;
        }
        long now = clock.getAsLong();
        // every channel stalled, oldest first: one stall often stops the destination reading others
        List<Watched> stalled = new java.util.ArrayList<>();
        for (Watched w : channels) {
            long since = w.writingSince;
            if (since != IDLE && now - since >= timeout.toNanos()) {
                stalled.add(w);
            }
        }
        if (stalled.isEmpty()) {
            return false;
        }
        stalled.sort(java.util.Comparator.comparingLong(w -> w.writingSince));
        fired = true;
        java.util.StringJoiner sj = new java.util.StringJoiner("; ");
        for (Watched w : stalled) {
            long since = w.writingSince;
            sj.add(w.name + " made no progress for " + Durations.human(Duration.ofNanos(now - Math.min(since, now)))
                    + " after " + w.written + " bytes");
        }
        String names = stalled.stream().map(w -> w.name).reduce((a, b) -> a + ", " + b).orElseThrow();
        onStall.accept(new MigrationException(Category.TIMEOUT, names + " stalled: the destination stopped reading ("
                + sj + "; x-jmigrate-stall-timeout " + Durations.human(timeout) + ")"));
        return true;
    }

    /** Stops the watchdog thread; the channels stay open (their owner closes them). */
    @Override
    public void close() {
        closed.countDown();
    }

    /** A watched channel: a write call in progress has {@code writingSince} set. */
    private final class Watched implements ByteChannel, GatheringByteChannel, ScatteringByteChannel {
        final ByteChannel inner;
        final String name;
        volatile long writingSince = IDLE;
        volatile long written;

        Watched(ByteChannel inner, String name) {
            this.inner = inner;
            this.name = name;
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            int limit = src.limit();
            if (src.remaining() > SLICE) {
                src.limit(src.position() + SLICE);
            }
            writingSince = clock.getAsLong();
            try {
                int n = inner.write(src);
                written += n;
                return n;
            } finally {
                writingSince = IDLE;
                src.limit(limit);
            }
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
            // the first buffers holding at most SLICE bytes; the one that crosses it is cut there
            long sum = 0;
            int end = offset;
            int cut = -1;
            int cutLimit = 0;
            while (end < offset + length) {
                ByteBuffer b = srcs[end++];
                long r = b.remaining();
                if (sum + r > SLICE) {
                    cut = end - 1;
                    cutLimit = b.limit();
                    b.limit(b.position() + (int) (SLICE - sum));
                    break;
                }
                sum += r;
                if (sum == SLICE) {
                    break;
                }
            }
            writingSince = clock.getAsLong();
            try {
                long n;
                if (inner instanceof GatheringByteChannel g) {
                    n = g.write(srcs, offset, end - offset);
                } else {
                    n = 0;
                    for (int i = offset; i < end; i++) {
                        while (srcs[i].hasRemaining()) {
                            n += inner.write(srcs[i]);
                        }
                    }
                }
                written += n;
                return n;
            } finally {
                writingSince = IDLE;
                if (cut >= 0) {
                    srcs[cut].limit(cutLimit);
                }
            }
        }

        @Override
        public long write(ByteBuffer[] srcs) throws IOException {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            return inner.read(dst);
        }

        @Override
        public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
            if (inner instanceof ScatteringByteChannel s) {
                return s.read(dsts, offset, length);
            }
            for (int i = offset; i < offset + length; i++) {
                if (dsts[i].hasRemaining()) {
                    return inner.read(dsts[i]);
                }
            }
            return 0;
        }

        @Override
        public long read(ByteBuffer[] dsts) throws IOException {
            return read(dsts, 0, dsts.length);
        }

        @Override
        public boolean isOpen() {
            return inner.isOpen();
        }

        @Override
        public void close() throws IOException {
            inner.close();
        }

        @Override
        public String toString() {
            return name + " (" + inner + ")";
        }
    }
}
