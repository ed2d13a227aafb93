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
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.StringJoiner;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * Stall detection for the channels of one migration ({@code x-jmigrate-stall-timeout}; QEMU has
 * no equivalent: it waits for as long as the connections stay open). The owner wraps each of its
 * channels with {@link #watch}; the watchdog thread looks every {@code timeout / 4} (at least
 * every second), so a stall is reported between {@code timeout} and {@code timeout × 5/4} after
 * the last progress, once, through {@code onStall}, as a TIMEOUT that names the stalled channels
 * and the parameter. The owner records it as the migration's first error and closes the
 * channels, which unblocks the stalled call. What is watched depends on the side:
 *
 * <ul>
 *   <li>{@link #forWrites} (the source, thread {@code mig/src/stall}): every write is split into
 *       calls of at most {@link #SLICE} bytes, and each call records when it began. A blocking
 *       socket write returns once its bytes are in the socket buffer, so a call that has not
 *       returned after the timeout means the peer accepted nothing for that long: the destination
 *       stopped reading (or the path to it is gone without a reset). A channel between writes
 *       (idle: nothing to send) is never stalled. Reads pass straight through.</li>
 *   <li>{@link #forReads} (the destination while its stream loads, thread
 *       {@code mig/dst/stall}): the stream has stalled when nothing has arrived on any of its
 *       channels for the timeout while at least one of them is being waited on. A single quiet
 *       channel is not a stall (multifd channels idle while others carry the pages, the main
 *       channel is quiet while device state flows); the whole migration going quiet is: a source
 *       that is alive always sends something within a rate-limit window. The error names the
 *       channels the destination is blocked reading, which are the stalled ones. Writes pass
 *       straight through.</li>
 * </ul>
 */
public final class ChannelWatchdog implements AutoCloseable {
    /**
     * The most bytes one underlying write call is given: progress is observed at least this often.
     * Larger than a multifd packet (512 KiB of pages and its header), so that a packet is one
     * gathering write, as QEMU's: at 256 KiB every packet took three calls.
     */
    public static final int SLICE = 1 << 20;
    private static final long IDLE = Long.MIN_VALUE;

    /** What a watchdog watches: which direction of its channels is expected to make progress. */
    private enum Direction {
        WRITES("mig/src/stall"),
        READS("mig/dst/stall");

        final String threadName;

        Direction(String threadName) {
            this.threadName = threadName;
        }
    }

    private final Direction direction;
    private final Duration timeout;
    private final LongSupplier clock;
    private final Consumer<MigrationException> onStall;
    private final List<Watched> channels = new CopyOnWriteArrayList<>();
    private final CountDownLatch closed = new CountDownLatch(1);
    /** When a byte last arrived on any channel (reads only). */
    private volatile long lastByte;
    private volatile boolean fired;
    private Thread thread;

    /**
     * The source's watchdog: a write call that makes no progress for {@code timeout} is a stall.
     *
     * @param onStall called once, on {@code mig/src/stall}, with the TIMEOUT naming the stalled channels
     */
    public static ChannelWatchdog forWrites(Duration timeout, Consumer<MigrationException> onStall) {
        return new ChannelWatchdog(Direction.WRITES, timeout, onStall, System::nanoTime);
    }

    /**
     * The destination's watchdog: nothing read on any channel for {@code timeout} while a read
     * waits is a stall.
     *
     * @param onStall called once, on {@code mig/dst/stall}, with the TIMEOUT naming the waited-on channels
     */
    public static ChannelWatchdog forReads(Duration timeout, Consumer<MigrationException> onStall) {
        return new ChannelWatchdog(Direction.READS, timeout, onStall, System::nanoTime);
    }

    /** {@link #forWrites} with an injected clock (nanoseconds), for tests that call {@link #check} themselves. */
    static ChannelWatchdog forWrites(Duration timeout, Consumer<MigrationException> onStall, LongSupplier clock) {
        return new ChannelWatchdog(Direction.WRITES, timeout, onStall, clock);
    }

    /** {@link #forReads} with an injected clock (nanoseconds), for tests that call {@link #check} themselves. */
    static ChannelWatchdog forReads(Duration timeout, Consumer<MigrationException> onStall, LongSupplier clock) {
        return new ChannelWatchdog(Direction.READS, timeout, onStall, clock);
    }

    private ChannelWatchdog(Direction direction, Duration timeout, Consumer<MigrationException> onStall,
                            LongSupplier clock) {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("stall timeout must be positive");
        }
        this.direction = direction;
        this.timeout = timeout;
        this.onStall = onStall;
        this.clock = clock;
        this.lastByte = clock.getAsLong();
    }

    public Duration timeout() {
        return timeout;
    }

    /**
     * Wraps {@code ch}: the watched direction counts as progress, the other passes straight through.
     *
     * @param name what the error calls it, e.g. "the main channel" or "multifd channel 1"
     */
    public ByteChannel watch(ByteChannel ch, String name) {
        Watched w = new Watched(ch, name);
        channels.add(w);
        return w;
    }

    /** Renames a channel {@link #watch} returned (e.g. once a multifd channel's init gave its id). */
    public static void rename(java.nio.channels.Channel watched, String name) {
        if (watched instanceof Watched w) {
            w.name = name;
        }
    }

    /** Starts the watchdog thread (a quiet period counts from now), which runs {@link #check} until {@link #close}. */
    public synchronized void start() {
        if (thread != null) {
            throw new IllegalStateException("already started");
        }
        lastByte = clock.getAsLong();
        long period = Math.clamp(timeout.toMillis() / 4, 1, 1000);
        thread = Thread.ofPlatform().name(direction.threadName).daemon(true).start(() -> {
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
     * Looks at every watched channel once; reports (once) and returns true when a stall is found,
     * and true ever after. A closed watchdog reports nothing.
     */
    boolean check() {
        if (fired) {
            return true;
        }
        if (closed.getCount() == 0) {
            return false;
        }
        long now = clock.getAsLong();
        MigrationException stall = direction == Direction.WRITES ? stalledWrites(now) : quietStream(now);
        if (stall == null) {
            return false;
        }
        fired = true;
        onStall.accept(stall);
        return true;
    }

    /** Every channel whose write call made no progress for the timeout, oldest first, or null. */
    private MigrationException stalledWrites(long now) {
        // every channel stalled, oldest first: one stall often stops the destination reading others
        List<Watched> stalled = new ArrayList<>();
        for (Watched w : channels) {
            long since = w.writingSince;
            if (since != IDLE && now - since >= timeout.toNanos()) {
                stalled.add(w);
            }
        }
        if (stalled.isEmpty()) {
            return null;
        }
        stalled.sort(Comparator.comparingLong(w -> w.writingSince));
        StringJoiner details = new StringJoiner("; ");
        StringJoiner names = new StringJoiner(", ");
        for (Watched w : stalled) {
            long since = w.writingSince;
            details.add(w.name + " made no progress for "
                    + Durations.human(Duration.ofNanos(now - Math.min(since, now))) + " after " + w.written + " bytes");
            names.add(w.name);
        }
        return new MigrationException(Category.TIMEOUT, names + " stalled: the destination stopped reading ("
                + details + "; x-jmigrate-stall-timeout " + Durations.human(timeout) + ")");
    }

    /** Nothing read on any channel for the timeout while at least one read waits, or null. */
    private MigrationException quietStream(long now) {
        long quiet = now - lastByte;
        if (quiet < timeout.toNanos()) {
            return null;
        }
        StringJoiner waiting = new StringJoiner(", ");
        for (Watched w : channels) {
            if (w.reading) {
                waiting.add(w.name + " (at byte " + w.read + ")");
            }
        }
        if (waiting.length() == 0) {
            return null; // nobody waits for data: the loader is busy, not stalled
        }
        return new MigrationException(Category.TIMEOUT, "the incoming migration stalled: nothing arrived "
                + "on any channel for " + Durations.human(Duration.ofNanos(quiet)) + " (x-jmigrate-stall-timeout "
                + Durations.human(timeout) + "); waiting for " + waiting);
    }

    /** Stops the watchdog thread; the channels stay open (their owner closes them). */
    @Override
    public void close() {
        closed.countDown();
    }

    /**
     * A watched channel. Watching writes: a write call in progress has {@code writingSince} set.
     * Watching reads: a read in progress has {@code reading} set, and every byte read is progress.
     */
    private final class Watched implements ByteChannel, GatheringByteChannel, ScatteringByteChannel {
        final ByteChannel inner;
        volatile String name;
        volatile long writingSince = IDLE;
        volatile long written;
        volatile boolean reading;
        volatile long read;

        Watched(ByteChannel inner, String name) {
            this.inner = inner;
            this.name = name;
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            if (direction != Direction.WRITES) {
                return inner.write(src);
            }
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
            if (direction != Direction.WRITES) {
                return writeAll(srcs, offset, length);
            }
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
                long n = writeAll(srcs, offset, end - offset);
                written += n;
                return n;
            } finally {
                writingSince = IDLE;
                if (cut >= 0) {
                    srcs[cut].limit(cutLimit);
                }
            }
        }

        /** One gathering write, or each buffer written whole where the inner channel cannot gather. */
        private long writeAll(ByteBuffer[] srcs, int offset, int length) throws IOException {
            if (inner instanceof GatheringByteChannel g) {
                return g.write(srcs, offset, length);
            }
            long n = 0;
            for (int i = offset; i < offset + length; i++) {
                while (srcs[i].hasRemaining()) {
                    n += inner.write(srcs[i]);
                }
            }
            return n;
        }

        @Override
        public long write(ByteBuffer[] srcs) throws IOException {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (direction != Direction.READS) {
                return inner.read(dst);
            }
            reading = true;
            try {
                return (int) arrived(inner.read(dst));
            } finally {
                reading = false;
            }
        }

        @Override
        public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
            if (direction != Direction.READS) {
                return readSome(dsts, offset, length);
            }
            reading = true;
            try {
                return arrived(readSome(dsts, offset, length));
            } finally {
                reading = false;
            }
        }

        /** One scattering read, or a read into the first buffer with room where the inner channel cannot scatter. */
        private long readSome(ByteBuffer[] dsts, int offset, int length) throws IOException {
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

        private long arrived(long n) {
            if (n > 0) {
                read += n;
                lastByte = clock.getAsLong();
            }
            return n;
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
