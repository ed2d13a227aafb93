package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;

class QuietWatchdogTest {
    /** Reads deliver {@code chunk} bytes, or block until released when {@code block} is set. */
    static final class FakeChannel implements ByteChannel {
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
        QuietWatchdog w = new QuietWatchdog(Duration.ofSeconds(6), reported::add, clock::get);
        FakeChannel main = new FakeChannel();
        FakeChannel mf1 = new FakeChannel();
        ByteChannel m = w.watch(main, "the main channel");
        ByteChannel c1 = w.watch(mf1, "tcp:127.0.0.1:1 connection 2 (multifd)");
        QuietWatchdog.rename(c1, "multifd channel 1");
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
        QuietWatchdog w = new QuietWatchdog(Duration.ofMillis(100), reported::add, clock::get);
        ByteChannel m = w.watch(new FakeChannel(), "the main channel");
        m.read(ByteBuffer.allocate(10));
        clock.addAndGet(Duration.ofDays(1).toNanos());
        assertThat(w.check()).isFalse(); // the loader is busy (e.g. a device loads), no read is blocked
        w.close();
        assertThat(w.check()).isFalse();
        assertThat(reported).isEmpty();
    }
}
