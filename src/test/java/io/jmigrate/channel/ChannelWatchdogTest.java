package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.GatheringByteChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;

/** The source's watchdog (writes without progress) and the destination's (a quiet stream). */
class ChannelWatchdogTest {
    // ---- the source: a write call without progress --------------------------------------------

    /** A channel whose writes take everything they are given, or block until released. */
    static final class FakeWriteChannel implements ByteChannel, GatheringByteChannel {
        final List<Long> calls = new CopyOnWriteArrayList<>();
        volatile CountDownLatch block;
        final CountDownLatch entered = new CountDownLatch(1);
        volatile boolean open = true;

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws java.io.IOException {
            entered.countDown();
            CountDownLatch b = block;
            if (b != null) {
                try {
                    b.await();
                } catch (InterruptedException e) {
                    throw new java.io.InterruptedIOException();
                }
            }
            long n = 0;
            for (int i = offset; i < offset + length; i++) {
                n += srcs[i].remaining();
                srcs[i].position(srcs[i].limit());
            }
            calls.add(n);
            return n;
        }

        @Override
        public long write(ByteBuffer[] srcs) throws java.io.IOException {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public int write(ByteBuffer src) throws java.io.IOException {
            return (int) write(new ByteBuffer[] {src}, 0, 1);
        }

        @Override
        public int read(ByteBuffer dst) {
            return -1;
        }

        @Override
        public boolean isOpen() {
            return open;
        }

        @Override
        public void close() {
            open = false;
            CountDownLatch b = block;
            if (b != null) {
                b.countDown();
            }
        }
    }

    @Test
    void aWriteWithoutProgressForTheTimeoutIsReportedOnceNamingTheChannel() throws Exception {
        AtomicLong clock = new AtomicLong(1_000_000_000L);
        List<MigrationException> reported = new ArrayList<>();
        ChannelWatchdog w = ChannelWatchdog.forWrites(Duration.ofSeconds(2), reported::add, clock::get);
        FakeWriteChannel idle = new FakeWriteChannel();
        FakeWriteChannel stuck = new FakeWriteChannel();
        stuck.block = new CountDownLatch(1);
        w.watch(idle, "the main channel");
        ByteChannel ch = w.watch(stuck, "multifd channel 1");
        Thread writer = Thread.ofPlatform().start(() -> {
            try {
                ch.write(ByteBuffer.allocate(100));
            } catch (java.io.IOException e) {
                throw new RuntimeException(e);
            }
        });
        assertThat(stuck.entered.await(30, TimeUnit.SECONDS)).isTrue();
        clock.addAndGet(Duration.ofSeconds(2).toNanos() - 1);
        assertThat(w.check()).isFalse();
        assertThat(reported).isEmpty();
        clock.addAndGet(1);
        assertThat(w.check()).isTrue();
        assertThat(reported).hasSize(1);
        assertThat(reported.getFirst().category()).isEqualTo(MigrationException.Category.TIMEOUT);
        assertThat(reported.getFirst().getMessage()).isEqualTo("multifd channel 1 stalled: the destination stopped "
                + "reading (multifd channel 1 made no progress for 2 s after 0 bytes; x-jmigrate-stall-timeout 2 s)");
        clock.addAndGet(Duration.ofHours(1).toNanos());
        assertThat(w.check()).isTrue();
        assertThat(reported).hasSize(1);
        stuck.close();
        writer.join();
    }

    @Test
    void idleChannelsAndCompletedWritesNeverStall() throws Exception {
        AtomicLong clock = new AtomicLong();
        List<MigrationException> reported = new ArrayList<>();
        ChannelWatchdog w = ChannelWatchdog.forWrites(Duration.ofMillis(100), reported::add, clock::get);
        ByteChannel ch = w.watch(new FakeWriteChannel(), "the main channel");
        ch.write(ByteBuffer.allocate(10));
        clock.addAndGet(Duration.ofDays(1).toNanos());
        assertThat(w.check()).isFalse();
        assertThat(reported).isEmpty();
    }

    @Test
    void writesAreSlicedSoThatProgressIsSeenAtLeastEverySlice() throws Exception {
        FakeWriteChannel inner = new FakeWriteChannel();
        ChannelWatchdog w = ChannelWatchdog.forWrites(Duration.ofSeconds(1), e -> { });
        GatheringByteChannel ch = (GatheringByteChannel) w.watch(inner, "multifd channel 0");
        ByteBuffer big = ByteBuffer.allocate(ChannelWatchdog.SLICE * 2 + 5);
        while (big.hasRemaining()) {
            ch.write(big);
        }
        assertThat(inner.calls).containsExactly((long) ChannelWatchdog.SLICE, (long) ChannelWatchdog.SLICE, 5L);
        assertThat(big.limit()).isEqualTo(ChannelWatchdog.SLICE * 2 + 5);

        inner.calls.clear();
        ByteBuffer[] bufs = {ByteBuffer.allocate(1344), ByteBuffer.allocate(ChannelWatchdog.SLICE),
            ByteBuffer.allocate(4096)};
        long total = 0;
        while (bufs[2].hasRemaining()) {
            total += ch.write(bufs, 0, 3);
        }
        assertThat(total).isEqualTo(1344 + ChannelWatchdog.SLICE + 4096);
        assertThat(inner.calls).containsExactly((long) ChannelWatchdog.SLICE, 1344L + 4096);
        assertThat(bufs[1].limit()).isEqualTo(ChannelWatchdog.SLICE);
    }

    // ---- the destination: nothing read on any channel while one is waited on -------------------

    /** Reads deliver {@code chunk} bytes, or block until released when {@code block} is set. */
    static final class FakeReadChannel implements ByteChannel {
        volatile CountDownLatch block;
        final CountDownLatch entered = new CountDownLatch(1);

        @Override
        public int read(ByteBuffer dst) throws java.io.IOException {
            CountDownLatch b = block;
            if (b != null) {
                entered.countDown();
                try {
                    b.await();
                } catch (InterruptedException e) {
                    throw new java.io.InterruptedIOException();
                }
                return -1;
            }
            int n = dst.remaining();
            dst.position(dst.limit());
            return n;
        }

        @Override
        public int write(ByteBuffer src) {
            int n = src.remaining();
            src.position(src.limit());
            return n;
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
            CountDownLatch b = block;
            if (b != null) {
                b.countDown();
            }
        }
    }

    @Test
    void nothingOnAnyChannelForTheTimeoutWhileOneIsWaitedOnIsAStallNamingThatChannel() throws Exception {
        AtomicLong clock = new AtomicLong(5_000_000_000L);
        List<MigrationException> reported = new ArrayList<>();
        ChannelWatchdog w = ChannelWatchdog.forReads(Duration.ofSeconds(6), reported::add, clock::get);
        FakeReadChannel main = new FakeReadChannel();
        FakeReadChannel mf1 = new FakeReadChannel();
        ByteChannel m = w.watch(main, "the main channel");
        ByteChannel c1 = w.watch(mf1, "tcp:127.0.0.1:1 connection 2 (multifd)");
        ChannelWatchdog.rename(c1, "multifd channel 1");
        m.read(ByteBuffer.allocate(100));
        clock.addAndGet(Duration.ofSeconds(5).toNanos());
        c1.read(ByteBuffer.allocate(1000)); // progress on any channel counts
        mf1.block = new CountDownLatch(1);
        Thread reader = Thread.ofPlatform().start(() -> {
            try {
                c1.read(ByteBuffer.allocate(10));
            } catch (java.io.IOException e) {
                throw new RuntimeException(e);
            }
        });
        assertThat(mf1.entered.await(30, TimeUnit.SECONDS)).isTrue();
        clock.addAndGet(Duration.ofSeconds(6).toNanos() - 1);
        assertThat(w.check()).isFalse();
        clock.addAndGet(1);
        assertThat(w.check()).isTrue();
        assertThat(reported).hasSize(1);
        assertThat(reported.getFirst().category()).isEqualTo(MigrationException.Category.TIMEOUT);
        assertThat(reported.getFirst().getMessage()).isEqualTo("the incoming migration stalled: nothing arrived on "
                + "any channel for 6 s (x-jmigrate-stall-timeout 6 s); waiting for multifd channel 1 (at byte 1000)");
        assertThat(w.check()).isTrue();
        assertThat(reported).hasSize(1);
        mf1.close();
        reader.join();
    }

    @Test
    void aQuietStreamThatNobodyWaitsOnIsNotAStall() throws Exception {
        AtomicLong clock = new AtomicLong();
        List<MigrationException> reported = new ArrayList<>();
        ChannelWatchdog w = ChannelWatchdog.forReads(Duration.ofMillis(100), reported::add, clock::get);
        ByteChannel m = w.watch(new FakeReadChannel(), "the main channel");
        m.read(ByteBuffer.allocate(10));
        clock.addAndGet(Duration.ofDays(1).toNanos());
        assertThat(w.check()).isFalse(); // the loader is busy (e.g. a device loads), no read is blocked
        w.close();
        assertThat(w.check()).isFalse();
        assertThat(reported).isEmpty();
    }

    // ---- each side watches only its own direction ---------------------------------------------

    @Test
    void aWritesWatchdogIgnoresABlockedReadAndAReadsWatchdogABlockedWrite() throws Exception {
        AtomicLong clock = new AtomicLong();
        List<MigrationException> reported = new ArrayList<>();
        // the source: its return path blocks in a read for a day, which is not a stall
        ChannelWatchdog src = ChannelWatchdog.forWrites(Duration.ofMillis(100), reported::add, clock::get);
        FakeReadChannel rp = new FakeReadChannel();
        rp.block = new CountDownLatch(1);
        ByteChannel r = src.watch(rp, "the main channel");
        Thread reader = Thread.ofPlatform().start(() -> {
            try {
                r.read(ByteBuffer.allocate(10));
            } catch (java.io.IOException e) {
                throw new RuntimeException(e);
            }
        });
        assertThat(rp.entered.await(30, TimeUnit.SECONDS)).isTrue();
        clock.addAndGet(Duration.ofDays(1).toNanos());
        assertThat(src.check()).isFalse();
        rp.close();
        reader.join();

        // the destination: a write blocked for a day with no read waiting is not a stall, and
        // its writes are not sliced (there is no write progress to observe)
        ChannelWatchdog dst = ChannelWatchdog.forReads(Duration.ofMillis(100), reported::add, clock::get);
        FakeWriteChannel out = new FakeWriteChannel();
        out.block = new CountDownLatch(1);
        ByteChannel w = dst.watch(out, "the main channel");
        Thread writer = Thread.ofPlatform().start(() -> {
            try {
                w.write(ByteBuffer.allocate(ChannelWatchdog.SLICE * 2));
            } catch (java.io.IOException e) {
                throw new RuntimeException(e);
            }
        });
        assertThat(out.entered.await(30, TimeUnit.SECONDS)).isTrue();
        clock.addAndGet(Duration.ofDays(1).toNanos());
        assertThat(dst.check()).isFalse();
        out.close();
        writer.join();
        assertThat(out.calls).containsExactly((long) ChannelWatchdog.SLICE * 2);
        assertThat(reported).isEmpty();
    }
}
