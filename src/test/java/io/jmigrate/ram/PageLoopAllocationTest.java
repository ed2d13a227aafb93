package io.jmigrate.ram;

import com.sun.management.ThreadMXBean;
import io.jmigrate.common.FirstError;
import io.jmigrate.memory.Mmap;
import io.jmigrate.memory.RamBlock;
import io.jmigrate.multifd.MultifdBlock;
import io.jmigrate.multifd.MultifdConfig;
import io.jmigrate.multifd.MultifdReceiver;
import io.jmigrate.multifd.MultifdSender;
import io.jmigrate.multifd.ZeroPageDetection;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import io.jmigrate.stream.StreamLimits;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.channels.Pipe;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Acceptance 2 of issue 12: the per-page send and receive loops allocate nothing per page, on
 * the main channel and on multifd, for a 2 GiB block (one ByteBuffer cannot address it, so this
 * is the size where the fast paths used to turn off). The bytes each thread allocates are read
 * with {@link ThreadMXBean#getThreadAllocatedBytes(long)} around the second full pass over the
 * block (the first warms up the JIT and makes the reusable views). Fixed costs per pass and per
 * section (a block name, a lambda per iteration) are allowed, up to 256 KiB per thread and pass;
 * any per-page allocation would be at least 16 bytes x 524 288 pages = 8 MiB, 32 times the bound.
 *
 * <p>Both blocks are lazily faulted anonymous mappings: the source is never written, so it
 * stays the kernel's zero page (zero-page detection is off, so every page is a normal page);
 * the destination's channel wrapper drops the pages already written ({@code MADV_DONTNEED})
 * every 128 MiB, so the test never holds more than that in memory.
 */
@Timeout(300)
class PageLoopAllocationTest {
    private static final int PS = 4096;
    private static final long SIZE = 2L << 30;
    private static final long PAGES = SIZE / PS;
    /**
     * Fixed slack per measured pass and thread (a section's block name, a lambda per iteration,
     * the JIT's odd deoptimization): 0.5 B per page. One 16-byte object per page would be 8 MiB,
     * 32 times this; one per multifd packet (4096 of them) 64 KiB, under it. The multifd
     * hand-offs park and unpark threads without allocating ({@code Waits.Permits}), so the
     * multifd threads get no per-packet allowance.
     */
    private static final long SLACK = 256 << 10;
    private static final ThreadMXBean MX = (ThreadMXBean) ManagementFactory.getThreadMXBean();

    private static long allocated(Thread t) {
        return MX.getThreadAllocatedBytes(t.threadId());
    }

    /** A pipe end that drops destination pages behind the reader, so RSS stays small. */
    private static final class DroppingChannel implements ReadableByteChannel {
        private final ReadableByteChannel in;
        private final MemorySegment dst;
        private final long bytesPerPage;
        private long read;
        private long droppedUpTo;

        DroppingChannel(ReadableByteChannel in, MemorySegment dst, long bytesPerPage) {
            this.in = in;
            this.dst = dst;
            this.bytesPerPage = bytesPerPage;
        }

        @Override
        public int read(ByteBuffer b) throws IOException {
            int n = in.read(b);
            if (n > 0) {
                read += n;
                // pages wholly behind the reader, minus a margin of 4 MiB; wraps at each pass
                long behind = (read / bytesPerPage) * PS % SIZE;
                long upTo = Math.max(0, behind - (4 << 20)) & ~(long) (PS - 1);
                if (upTo < droppedUpTo) {
                    droppedUpTo = 0;
                }
                if (upTo - droppedUpTo >= (128 << 20)) {
                    Mmap.madvise(dst.asSlice(droppedUpTo, upTo - droppedUpTo), Mmap.MADV_DONTNEED);
                    droppedUpTo = upTo;
                }
            }
            return n;
        }

        @Override
        public boolean isOpen() {
            return in.isOpen();
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }

    /** Discards what is written (the main channel of the multifd case carries no pages). */
    private static final class NullChannel implements WritableByteChannel {
        @Override
        public int write(ByteBuffer b) {
            int n = b.remaining();
            b.position(b.limit());
            return n;
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
        }
    }

    @Test
    void mainChannelSendAndReceiveLoopsAllocateNothingPerPage() throws Exception {
        try (Arena a = Arena.ofShared(); Arena b = Arena.ofShared()) {
            RamBlock src = RamBlock.anonymous("pc.ram", SIZE, PS, a);
            RamBlock dst = RamBlock.anonymous("pc.ram", SIZE, PS, b);
            Pipe pipe = Pipe.open();
            long[] recvBytes = new long[2];
            CompletableFuture<Void> receiver = new CompletableFuture<>();
            Thread rx = Thread.ofPlatform().name("mig/dst/main").unstarted(() -> {
                try {
                    // a PAGE record: be64 header (CONTINUE), then the page
                    QemuFileReader r = new QemuFileReader(new DroppingChannel(pipe.source(), dst.segment(), PS + 8),
                            "pipe", StreamLimits.DEFAULT);
                    RamLoader loader = new RamLoader(List.of(dst));
                    loader.loadState(r, SectionType.START, 4);
                    for (int pass = 0; pass < 2; pass++) {
                        if (pass == 1) {
                            recvBytes[0] = allocated(Thread.currentThread());
                        }
                        while (r.readU8("more") == 1) {
                            loader.loadState(r, SectionType.PART, 4);
                        }
                        if (pass == 1) {
                            recvBytes[1] = allocated(Thread.currentThread());
                        }
                    }
                    assertThat(loader.normalPages()).isEqualTo(2 * PAGES);
                    receiver.complete(null);
                } catch (Throwable t) {
                    receiver.completeExceptionally(t);
                }
            });
            rx.start();
            RamStats stats = new RamStats();
            RamSaver saver = new RamSaver(List.of(src), stats, n -> { }, false);
            QemuFileWriter w = new QemuFileWriter(pipe.sink(), "pipe");
            saver.saveSetup(w);
            long sendBefore = 0;
            for (int pass = 0; pass < 2; pass++) {
                src.dirtyBitmap().setAll();
                saver.syncDirty();
                if (pass == 1) {
                    sendBefore = allocated(Thread.currentThread());
                }
                boolean done;
                do {
                    w.putU8(1);
                    done = saver.saveIterate(w, SaveVmHandlers.RateLimit.NONE);
                } while (!done);
                w.putU8(0);
                w.flush();
            }
            long sent = allocated(Thread.currentThread()) - sendBefore;
            receiver.get(240, TimeUnit.SECONDS);
            long received = recvBytes[1] - recvBytes[0];
            System.out.printf("main channel, 2 GiB pass: send loop %d B (%.4f B/page), receive loop %d B "
                    + "(%.4f B/page)%n", sent, (double) sent / PAGES, received, (double) received / PAGES);
            assertThat(stats.normalPages).isEqualTo(2 * PAGES);
            assertThat(sent).as("bytes the send loop allocated over a 2 GiB pass").isLessThan(SLACK);
            assertThat(received).as("bytes the receive loop allocated over a 2 GiB pass").isLessThan(SLACK);
            saver.saveCleanup();
            pipe.sink().close();
        }
    }

    @Test
    void multifdSendAndReceiveLoopsAllocateNothingPerPage() throws Exception {
        try (Arena a = Arena.ofShared(); Arena b = Arena.ofShared()) {
            RamBlock src = RamBlock.anonymous("pc.ram", SIZE, PS, a);
            RamBlock dst = RamBlock.anonymous("pc.ram", SIZE, PS, b);
            MultifdConfig cfg = MultifdConfig.defaults(1).withZeroPageDetection(ZeroPageDetection.NONE);
            MultifdBlock dstBlock = new MultifdBlock("pc.ram", dst.segment(), PS);
            Pipe pipe = Pipe.open();
            FirstError srcErr = new FirstError();
            FirstError dstErr = new FirstError();
            MultifdSender tx = new MultifdSender(cfg, List.of(pipe.sink()), srcErr);
            MultifdReceiver rxs = new MultifdReceiver(cfg, name -> name.equals("pc.ram") ? dstBlock : null,
                    (id, inst, data) -> { }, dstErr);
            java.util.Set<Thread> before = Thread.getAllStackTraces().keySet();
            tx.start();
            // RAM packet: 1344-byte header per 128 pages
            long perPage = PS + (320 + 8 * 128) / 128;
            rxs.addChannel(new DroppingChannel(pipe.source(), dst.segment(), perPage), "pipe");
            rxs.awaitChannels();
            Thread send0 = thread("mig/src/send_0", before);
            Thread recv0 = thread("mig/dst/recv_0", before);
            CountDownLatch pass2 = new CountDownLatch(1);
            long[] recvBytes = new long[2];
            CompletableFuture<Void> mainLoader = CompletableFuture.runAsync(() -> {
                rxs.recvSyncMain(); // setup
                rxs.recvSyncMain(); // pass 1
                // recv_0 now waits in read(): the source holds pass 2 back until this is read
                recvBytes[0] = allocated(recv0);
                pass2.countDown();
                rxs.recvSyncMain(); // pass 2: every page of it is in memory
                recvBytes[1] = allocated(recv0);
            });
            RamStats stats = new RamStats();
            RamSaver saver = new RamSaver(List.of(src), stats, n -> { }, new RamSaver.Mode(false, tx, false));
            QemuFileWriter w = new QemuFileWriter(new NullChannel(), "main");
            saver.saveSetup(w);
            long migBefore = 0;
            long sendBefore = 0;
            for (int pass = 0; pass < 2; pass++) {
                src.dirtyBitmap().setAll();
                saver.syncDirty();
                if (pass == 1) {
                    assertThat(pass2.await(60, TimeUnit.SECONDS)).isTrue();
                    migBefore = allocated(Thread.currentThread());
                    sendBefore = allocated(send0);
                }
                while (!saver.saveIterate(w, SaveVmHandlers.RateLimit.NONE)) {
                    // until the pass wraps (its flush-and-sync included)
                }
            }
            long mig = allocated(Thread.currentThread()) - migBefore;
            long send = allocated(send0) - sendBefore;
            mainLoader.get(240, TimeUnit.SECONDS);
            long recv = recvBytes[1] - recvBytes[0];
            System.out.printf("multifd 1 ch, 2 GiB pass: migration thread %d B (%.4f B/page), send_0 %d B (%.4f "
                            + "B/page), recv_0 %d B (%.4f B/page)%n", mig, (double) mig / PAGES, send,
                    (double) send / PAGES, recv, (double) recv / PAGES);
            assertThat(dstErr.get()).isNull();
            assertThat(srcErr.get()).isNull();
            assertThat(mig).as("bytes the migration thread allocated queueing a 2 GiB pass").isLessThan(SLACK);
            assertThat(send).as("bytes mig/src/send_0 allocated over a 2 GiB pass").isLessThan(SLACK);
            assertThat(recv).as("bytes mig/dst/recv_0 allocated over a 2 GiB pass").isLessThan(SLACK);
            tx.close();
            rxs.close();
            saver.saveCleanup();
        }
    }

    /**
     * This test's thread {@code name}: the one started after {@code before} was taken (the test
     * JVM runs other test classes first, and a thread of theirs may still carry the name).
     */
    private static Thread thread(String name, java.util.Set<Thread> before) {
        List<Thread> mine = Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().equals(name) && !before.contains(t)).toList();
        assertThat(mine).as("threads named %s started by this test", name).hasSize(1);
        return mine.getFirst();
    }
}
