package io.jmigrate.devstate;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class OrderedReassemblerTest {

    private static ByteBuffer bytes(int n, int fill) {
        byte[] b = new byte[n];
        java.util.Arrays.fill(b, (byte) fill);
        return ByteBuffer.wrap(b);
    }

    private static byte[] bytesOf(OrderedReassembler.Buffer b) {
        return b.data().toArray(ValueLayout.JAVA_BYTE);
    }

    /** Takes the next buffer, reports it written and released, and returns its bytes. */
    private static byte[] takeAll(OrderedReassembler r) {
        OrderedReassembler.Buffer b = r.take();
        byte[] d = bytesOf(b);
        r.written(d.length);
        r.release(b);
        return d;
    }

    @Test
    void takesInIndexOrderWhateverTheArrivalOrder() {
        OrderedReassembler r = new OrderedReassembler("vf0/vfio", Long.MAX_VALUE, null);
        r.put(2, bytes(3, 2), false);
        r.put(0, bytes(1, 0), false);
        r.put(3, bytes(2, 9), true);
        r.put(1, bytes(2, 1), false);
        List<OrderedReassembler.Buffer> got = new ArrayList<>();
        OrderedReassembler.Buffer b;
        List<Byte> first = new ArrayList<>();
        do {
            b = r.take();
            got.add(b);
            first.add(bytesOf(b)[0]);
            r.written(b.length());
            r.release(b);
        } while (!b.last());
        assertThat(got).extracting(OrderedReassembler.Buffer::idx).containsExactly(0L, 1L, 2L, 3L);
        assertThat(first).containsExactly((byte) 0, (byte) 1, (byte) 2, (byte) 9);
        assertThat(r.closed()).as("the last release frees the arena").isTrue();
        assertThat(r.reservedBytes()).isZero();
        OrderedReassembler.Stats s = r.stats();
        assertThat(s.received()).isEqualTo(4);
        assertThat(s.receivedBytes()).isEqualTo(8);
        assertThat(s.lateArrivals()).isEqualTo(2);
        assertThat(s.maxDisplacement()).isEqualTo(2);
        assertThat(s.peakQueuedBuffers()).isEqualTo(4);
        assertThat(s.taken()).isEqualTo(4);
        assertThat(s.lastIdx()).isEqualTo(3);
        assertThatThrownBy(r::take).hasMessageContaining("take after the last buffer");
    }

    @Test
    void theBufferIsCopied() {
        OrderedReassembler r = new OrderedReassembler("d", Long.MAX_VALUE, null);
        ByteBuffer src = bytes(4, 5);
        r.put(0, src, true);
        assertThat(src.remaining()).isEqualTo(4);
        src.put(0, (byte) 77);
        assertThat(takeAll(r)).containsExactly(5, 5, 5, 5);
    }

    @Test
    void duplicates() {
        OrderedReassembler r = new OrderedReassembler("vf1/vfio", Long.MAX_VALUE, null);
        r.put(1, bytes(1, 1), false);
        expect(() -> r.put(1, bytes(1, 1), false), Category.PROTOCOL, "device vf1/vfio: state buffer 1 already filled");
        r.put(0, bytes(1, 0), false);
        takeAll(r);
        expect(() -> r.put(0, bytes(1, 0), false), Category.PROTOCOL, "state buffer 0 already filled");
    }

    @Test
    void configMustBeLast() {
        OrderedReassembler r = new OrderedReassembler("vf2/vfio", Long.MAX_VALUE, null);
        r.put(5, bytes(1, 0), false);
        expect(() -> r.put(3, bytes(1, 0), true), Category.PROTOCOL,
                "device vf2/vfio: config packet idx 3 is not last: state buffer 5 was already received");
        OrderedReassembler q = new OrderedReassembler("vf3/vfio", Long.MAX_VALUE, null);
        q.put(2, bytes(1, 0), true);
        expect(() -> q.put(4, bytes(1, 0), false), Category.PROTOCOL,
                "device vf3/vfio: state buffer 4 comes after the config packet idx 2");
        expect(() -> q.put(3, bytes(1, 0), true), Category.PROTOCOL, "config packet already came as idx 2");
        q.put(1, bytes(1, 0), false);
    }

    @Test
    void byteCapCountsUntilWritten() {
        OrderedReassembler r = new OrderedReassembler("vf4/vfio", 10, null);
        r.put(1, bytes(6, 0), false);
        r.put(0, bytes(4, 0), false);
        expect(() -> r.put(2, bytes(1, 0), false), Category.LIMIT,
                "device vf4/vfio: queuing state buffer 2 (1 bytes, 10 queued) would exceed the size max of 10");
        OrderedReassembler.Buffer b = r.take();
        expect(() -> r.put(2, bytes(1, 0), false), Category.LIMIT, "state buffer 2");
        r.written(b.length());
        r.release(b);
        r.put(2, bytes(4, 0), true);
        assertThat(r.stats().peakQueuedBytes()).isEqualTo(10);
    }

    @Test
    void abortWakesTheLoaderAndRefusesLaterBuffers() throws Exception {
        OrderedReassembler r = new OrderedReassembler("vf5/vfio", Long.MAX_VALUE, null);
        CompletableFuture<Throwable> loader = new CompletableFuture<>();
        CountDownLatch started = new CountDownLatch(1);
        Thread t = Thread.ofPlatform().name("mig/dst/load_vf5").start(() -> {
            started.countDown();
            try {
                r.take();
                loader.complete(null);
            } catch (Throwable e) {
                loader.complete(e);
            }
        });
        started.await();
        r.abort("load cleanup");
        assertThat(loader.get(30, TimeUnit.SECONDS)).isInstanceOfSatisfying(MigrationException.class, e -> {
            assertThat(e.category()).isEqualTo(Category.CANCELLED);
            assertThat(e).hasMessageContaining("device vf5/vfio: load cancelled while waiting for state buffer 0")
                    .hasMessageContaining("load cleanup");
        });
        t.join();
        expect(() -> r.put(0, bytes(1, 0), false), Category.CANCELLED, "after the load was cancelled");
    }

    @Test
    void poolAbortFlagIsCheckedOnEveryWakeUp() {
        AtomicBoolean quit = new AtomicBoolean();
        OrderedReassembler r = new OrderedReassembler("vf6/vfio", Long.MAX_VALUE, quit::get);
        r.put(0, bytes(1, 0), false);
        takeAll(r);
        quit.set(true);
        r.put(1, bytes(1, 0), false);
        expect(r::take, Category.CANCELLED, "operation cancelled while waiting for state buffer 1");
    }

    @Test
    void manyReceiveThreadsOneLoader() throws Exception {
        int n = 2000;
        OrderedReassembler r = new OrderedReassembler("vf7/vfio", 1 << 20, null);
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            order.add(i);
        }
        Collections.shuffle(order, new Random(42));
        try (ExecutorService recv = Executors.newFixedThreadPool(4)) {
            List<Future<?>> fs = new ArrayList<>();
            for (int c = 0; c < 4; c++) {
                int ch = c;
                fs.add(recv.submit(() -> {
                    for (int i = ch; i < n; i += 4) {
                        int idx = order.get(i);
                        r.put(idx, ByteBuffer.allocate(8).putLong(0, idx * 31L), false);
                    }
                }));
            }
            long expected = 0;
            for (int i = 0; i < n; i++) {
                OrderedReassembler.Buffer b = r.take();
                assertThat(b.idx()).isEqualTo(expected);
                assertThat(b.byteBuffer().getLong()).isEqualTo(expected * 31);
                r.written(b.length());
                r.release(b);
                expected++;
            }
            for (Future<?> f : fs) {
                f.get();
            }
        }
        assertThat(r.stats().received()).isEqualTo(n);
        assertThat(r.stats().lateArrivals()).isPositive();
    }

    @Test
    void buffersAreOffHeapAndTheirSegmentsAreReused() {
        OrderedReassembler r = new OrderedReassembler("vf8/vfio", Long.MAX_VALUE, null);
        for (int i = 0; i < 100; i++) {
            r.put(i, bytes(1 << 20, i), false);
            OrderedReassembler.Buffer b = r.take();
            assertThat(b.data().isNative()).isTrue();
            assertThat(b.byteBuffer().isDirect()).isTrue();
            assertThat(b.data().get(ValueLayout.JAVA_BYTE, (1 << 20) - 1)).isEqualTo((byte) i);
            r.written(b.length());
            r.release(b);
        }
        assertThat(r.stats().peakReservedBytes()).as("one 1 MiB segment, recycled").isEqualTo(1 << 20);
        r.put(100, bytes(3000, 7), true);
        assertThat(r.reservedBytes()).isEqualTo((1 << 20) + 4096);
        assertThat(takeAll(r)).hasSize(3000).containsOnly(7);
        assertThat(r.closed()).isTrue();
        assertThat(r.reservedBytes()).isZero();
    }

    @Test
    void abortFreesTheArenaOnceTheLoaderReleasesItsBuffer() {
        OrderedReassembler r = new OrderedReassembler("vf9/vfio", Long.MAX_VALUE, null);
        r.put(0, bytes(100, 1), false);
        r.put(2, bytes(100, 2), false);
        OrderedReassembler.Buffer b = r.take();
        r.abort("load cleanup");
        assertThat(r.closed()).as("the loader still writes buffer 0").isFalse();
        assertThat(b.data().get(ValueLayout.JAVA_BYTE, 99)).isEqualTo((byte) 1);
        r.release(b);
        assertThat(r.closed()).isTrue();
        assertThat(r.reservedBytes()).isZero();
        expect(() -> r.put(1, bytes(1, 0), false), Category.CANCELLED, "after the load was cancelled");
        OrderedReassembler idle = new OrderedReassembler("vf10/vfio", Long.MAX_VALUE, null);
        idle.put(3, bytes(10, 0), false);
        idle.abort("error");
        assertThat(idle.closed()).isTrue();
        assertThat(idle.reservedBytes()).isZero();
    }

    @Test
    void tinyBuffersCannotGrowTheReserveBeyondTwiceTheCapPlusSlack() {
        OrderedReassembler r = new OrderedReassembler("vf11/vfio", 4096, null);
        long limit = 2 * 4096 + OrderedReassembler.RESERVE_SLACK;
        int fit = (int) (limit / OrderedReassembler.MIN_CLASS);
        for (int i = 1; i <= fit; i++) {
            r.put(i, bytes(1, 0), false); // 1 data byte each, in a segment of 64 bytes
        }
        assertThat(r.reservedBytes()).isEqualTo(limit);
        expect(() -> r.put(fit + 1, bytes(1, 0), false), Category.LIMIT,
                "device vf11/vfio: state buffer " + (fit + 1) + " (1 bytes) needs 64 bytes of buffer space, but "
                        + limit + " are already reserved and at most " + limit + " may be");
        r.abort("error");
        assertThat(r.reservedBytes()).isZero();
    }

    private static void expect(Runnable r, Category c, String message) {
        assertThatThrownBy(r::run).isInstanceOfSatisfying(MigrationException.class, e -> {
            assertThat(e.category()).isEqualTo(c);
            assertThat(e).hasMessageContaining(message);
        });
    }
}
