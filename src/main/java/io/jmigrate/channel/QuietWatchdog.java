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
import java.util.StringJoiner;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * Stall detection for the channels of one incoming migration while its stream loads
 * ({@code x-jmigrate-stall-timeout} of the destination): the stream has stalled when nothing has
 * arrived on any of its channels for the timeout while at least one of them is being waited on.
 * A single quiet channel is not a stall (multifd channels idle while others carry the pages, the
 * main channel is quiet while device state flows); the whole migration going quiet is: a source
 * that is alive always sends something within a rate-limit window. The TIMEOUT names the
 * channels the destination is blocked reading, which are the stalled ones (e.g. the multifd
 * channel whose SYNC a barrier waits for, or the main channel once the multifd channels ended).
 *
 * <p>QEMU has no equivalent: its destination waits for as long as the connections stay open.
 * Detection happens between {@code timeout} and {@code timeout × 5/4} after the last byte.
 */
public final class QuietWatchdog implements AutoCloseable {
    private final Duration timeout;
    private final LongSupplier clock;
    private final Consumer<MigrationException> onStall;
    private final List<Watched> channels = new CopyOnWriteArrayList<>();
    private final CountDownLatch closed = new CountDownLatch(1);
    private volatile long lastByte;
    private volatile boolean fired;
    private Thread thread;

    public QuietWatchdog(Duration timeout, Consumer<MigrationException> onStall) {
        this(timeout, onStall, System::nanoTime);
    }

    /** With an injected clock (nanoseconds), for tests that call {@link #check} themselves. */
    QuietWatchdog(Duration timeout, Consumer<MigrationException> onStall, LongSupplier clock) {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("stall timeout must be positive");
        }
        this.timeout = timeout;
        this.onStall = onStall;
        this.clock = clock;
        this.lastByte = clock.getAsLong();
    }

    /** Wraps {@code ch}: its reads count as progress and its blocked reads are reported by name. */
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

    /** Starts watching (the quiet period counts from now) on thread {@code mig/dst/stall}. */
    public synchronized void start() {
        if (thread != null) {
            throw new IllegalStateException("already started");
        }
        lastByte = clock.getAsLong();
        long period = Math.clamp(timeout.toMillis() / 4, 1, 1000);
        thread = Thread.ofPlatform().name("mig/dst/stall").daemon(true).start(() -> {
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

    /** Looks once; reports (once) and returns true when the stream has stalled. */
    boolean check() {
        if (fired) {
            return true;
        }
        if (closed.getCount() == 0) {
            return false;
        }
        long now = clock.getAsLong();
        long quiet = now - lastByte;
        if (quiet < timeout.toNanos()) {
            return false;
        }
        StringJoiner waiting = new StringJoiner(", ");
        for (Watched w : channels) {
            if (w.reading) {
                waiting.add(w.name + " (at byte " + w.read + ")");
            }
        }
        if (waiting.length() == 0) {
            return false; // nobody waits for data: the loader is busy, not stalled
        }
        fired = true;
        onStall.accept(new MigrationException(Category.TIMEOUT, "the incoming migration stalled: nothing arrived "
                + "on any channel for " + Durations.human(Duration.ofNanos(quiet)) + " (x-jmigrate-stall-timeout "
                + Durations.human(timeout) + "); waiting for " + waiting));
        return true;
    }

    /** Stops watching (the stream ended, or failed). */
    @Override
    public void close() {
        closed.countDown();
    }

    private final class Watched implements ByteChannel, ScatteringByteChannel, GatheringByteChannel {
        final ByteChannel inner;
        volatile String name;
        volatile boolean reading;
        volatile long read;

        Watched(ByteChannel inner, String name) {
            this.inner = inner;
            this.name = name;
        }

        private long done(long n) {
            if (n > 0) {
                read += n;
                lastByte = clock.getAsLong();
            }
            return n;
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            reading = true;
            try {
                return (int) done(inner.read(dst));
            } finally {
                reading = false;
            }
        }

        @Override
        public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
            reading = true;
            try {
                if (inner instanceof ScatteringByteChannel s) {
                    return done(s.read(dsts, offset, length));
                }
                for (int i = offset; i < offset + length; i++) {
                    if (dsts[i].hasRemaining()) {
                        return done(inner.read(dsts[i]));
                    }
                }
                return 0;
            } finally {
                reading = false;
            }
        }

        @Override
        public long read(ByteBuffer[] dsts) throws IOException {
            return read(dsts, 0, dsts.length);
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            return inner.write(src);
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
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
