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

class StallWatchdogTest {
    /** A channel whose writes take everything they are given, or block until released. */
    static final class FakeChannel implements ByteChannel, GatheringByteChannel {
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
        StallWatchdog w = new StallWatchdog(Duration.ofSeconds(2), reported::add, clock::get);
        FakeChannel idle = new FakeChannel();
        FakeChannel stuck = new FakeChannel();
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
        StallWatchdog w = new StallWatchdog(Duration.ofMillis(100), reported::add, clock::get);
        ByteChannel ch = w.watch(new FakeChannel(), "the main channel");
        ch.write(ByteBuffer.allocate(10));
        clock.addAndGet(Duration.ofDays(1).toNanos());
        assertThat(w.check()).isFalse();
        assertThat(reported).isEmpty();
    }

    @Test
    void writesAreSlicedSoThatProgressIsSeenAtLeastEverySlice() throws Exception {
        FakeChannel inner = new FakeChannel();
        StallWatchdog w = new StallWatchdog(Duration.ofSeconds(1), e -> { });
        GatheringByteChannel ch = (GatheringByteChannel) w.watch(inner, "multifd channel 0");
        ByteBuffer big = ByteBuffer.allocate(StallWatchdog.SLICE * 2 + 5);
        while (big.hasRemaining()) {
            ch.write(big);
        }
        assertThat(inner.calls).containsExactly((long) StallWatchdog.SLICE, (long) StallWatchdog.SLICE, 5L);
        assertThat(big.limit()).isEqualTo(StallWatchdog.SLICE * 2 + 5);

        inner.calls.clear();
        ByteBuffer[] bufs = {ByteBuffer.allocate(1344), ByteBuffer.allocate(StallWatchdog.SLICE),
            ByteBuffer.allocate(4096)};
        long total = 0;
        while (bufs[2].hasRemaining()) {
            total += ch.write(bufs, 0, 3);
        }
        assertThat(total).isEqualTo(1344 + StallWatchdog.SLICE + 4096);
        assertThat(inner.calls).containsExactly((long) StallWatchdog.SLICE, 1344L + 4096);
        assertThat(bufs[1].limit()).isEqualTo(StallWatchdog.SLICE);
    }
}
