package io.jmigrate.bench.jmh;

import io.jmigrate.common.FirstError;
import io.jmigrate.memory.Mmap;
import io.jmigrate.memory.RamBlock;
import io.jmigrate.multifd.MultifdConfig;
import io.jmigrate.multifd.MultifdSender;
import io.jmigrate.multifd.ZeroPageDetection;
import io.jmigrate.ram.RamFlags;
import io.jmigrate.ram.RamLoader;
import io.jmigrate.ram.RamSaver;
import io.jmigrate.ram.RamStats;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import io.jmigrate.stream.StreamLimits;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The per-page loops of both sides over a 4 GiB block (beyond what one ByteBuffer addresses),
 * one op = one page, with the channel replaced by a discarding sink (send) or a record generator
 * (receive), so what is measured is jmigrate's loop, not the kernel. Run with {@code -prof gc}:
 * {@code gc.alloc.rate.norm} is the bytes allocated per page, which must be about 0.
 * <ul>
 *   <li>{@link #mainSend}: {@link RamSaver} on the main channel (dirty scan, PAGE record header,
 *       the page queued for a gathering write of 64 pages);</li>
 *   <li>{@link #mainReceive}: {@link RamLoader} reading PAGE records into guest memory;</li>
 *   <li>{@link #multifdSend}: {@link RamSaver} queueing pages on one multifd channel whose
 *       {@code mig/src/send_0} thread builds the packets and writes them with gathering writes.</li>
 * </ul>
 * Both blocks are lazily faulted mappings: the source stays the kernel's zero page (zero-page
 * detection off, so every page is a normal page); the receive generator drops the destination
 * pages behind it every 256 MiB, so RSS stays small.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--add-opens",
        "java.base/java.nio=ALL-UNNAMED", "-Xmx1g"})
public class PageLoopBench {
    static final int PS = 4096;
    static final long SIZE = 4L << 30;
    /** Pages per benchmark invocation (one RAM section). */
    static final int BATCH = 4096;

    private Arena arena;
    private RamBlock src;
    private RamBlock dst;
    private RamSaver mainSaver;
    private QemuFileWriter mainWriter;
    private RamSaver mfdSaver;
    private QemuFileWriter mfdMain;
    private MultifdSender tx;
    private RamLoader loader;
    private QemuFileReader reader;
    private final CountingLimit limit = new CountingLimit();

    /** Says "exceeded" once BATCH pages went out (RamSaver checks every 64 pages). */
    static final class CountingLimit implements SaveVmHandlers.RateLimit {
        int checks;

        @Override
        public boolean exceeded() {
            return ++checks >= BATCH / 64;
        }
    }

    static final class NullChannel implements WritableByteChannel {
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

    /**
     * The main stream of a source that sends every page of the block in order, forever: a START
     * section body, then PART bodies of BATCH CONTINUE PAGE records and EOS (the first record
     * names the block).
     */
    static final class RecordGenerator implements ReadableByteChannel {
        private final MemorySegment dst;
        private final ByteBuffer head = ByteBuffer.allocateDirect(512).order(ByteOrder.BIG_ENDIAN);
        private final ByteBuffer page = ByteBuffer.allocateDirect(PS);
        private long nextPage;
        private int inSection;
        private boolean first = true;
        private boolean inPage;
        private long droppedUpTo;

        RecordGenerator(MemorySegment dst) {
            this.dst = dst;
            byte[] name = "pc.ram".getBytes(StandardCharsets.ISO_8859_1);
            head.putLong(SIZE | RamFlags.MEM_SIZE).put((byte) name.length).put(name).putLong(SIZE)
                    .putLong(RamFlags.EOS).flip();
            for (int i = 0; i < PS; i++) {
                page.put(i, (byte) (i * 31 + 7));
            }
        }

        @Override
        public int read(ByteBuffer b) {
            int start = b.position();
            while (b.hasRemaining()) {
                if (head.hasRemaining()) {
                    int n = Math.min(head.remaining(), b.remaining());
                    b.put(b.position(), head, head.position(), n);
                    b.position(b.position() + n);
                    head.position(head.position() + n);
                    continue;
                }
                if (inPage) {
                    if (page.hasRemaining()) {
                        int n = Math.min(page.remaining(), b.remaining());
                        b.put(b.position(), page, page.position(), n);
                        b.position(b.position() + n);
                        page.position(page.position() + n);
                        continue;
                    }
                    inPage = false;
                }
                head.clear();
                if (inSection == BATCH) {
                    head.putLong(RamFlags.EOS);
                    inSection = 0;
                } else {
                    long off = (nextPage % (SIZE / PS)) * PS;
                    head.putLong(off | RamFlags.PAGE | (first ? 0 : RamFlags.CONTINUE));
                    if (first) {
                        byte[] name = "pc.ram".getBytes(StandardCharsets.ISO_8859_1);
                        head.put((byte) name.length).put(name);
                        first = false;
                    }
                    nextPage++;
                    inSection++;
                    inPage = true;
                    page.clear();
                    drop(off);
                }
                head.flip();
            }
            return b.position() - start;
        }

        /** Drops destination pages well behind the one being sent (MADV_DONTNEED every 256 MiB). */
        private void drop(long off) {
            long upTo = Math.max(0, off - (16 << 20));
            if (upTo < droppedUpTo) {
                droppedUpTo = 0;
            }
            if (upTo - droppedUpTo >= (256 << 20)) {
                Mmap.madvise(dst.asSlice(droppedUpTo, upTo - droppedUpTo), Mmap.MADV_DONTNEED);
                droppedUpTo = upTo;
            }
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
        }
    }

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        src = RamBlock.anonymous("pc.ram", SIZE, PS, arena);
        dst = RamBlock.anonymous("pc.ram", SIZE, PS, arena);
        mainSaver = new RamSaver(List.of(src), new RamStats(), n -> { }, false);
        mainWriter = new QemuFileWriter(new NullChannel(), "null");
        mainSaver.saveSetup(mainWriter);
        MultifdConfig cfg = MultifdConfig.defaults(1).withZeroPageDetection(ZeroPageDetection.NONE);
        tx = new MultifdSender(cfg, List.of(new NullChannel()), new FirstError());
        tx.start();
        mfdSaver = new RamSaver(List.of(src), new RamStats(), n -> { }, new RamSaver.Mode(false, tx, false));
        mfdMain = new QemuFileWriter(new NullChannel(), "null main");
        mfdSaver.saveSetup(mfdMain);
        loader = new RamLoader(List.of(dst));
        reader = new QemuFileReader(new RecordGenerator(dst.segment()), "generator", StreamLimits.DEFAULT);
        loader.loadState(reader, SectionType.START, 4);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        tx.close();
        mainSaver.saveCleanup();
        mfdSaver.saveCleanup();
        arena.close();
    }

    private void sendBatch(RamSaver saver, QemuFileWriter w) {
        limit.checks = 0;
        if (saver.saveIterate(w, limit)) {
            // the pass over the 4 GiB block ended: dirty everything again
            src.dirtyBitmap().setAll();
            saver.syncDirty();
        }
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void mainSend() {
        sendBatch(mainSaver, mainWriter);
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public void multifdSend() {
        sendBatch(mfdSaver, mfdMain);
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long mainReceive() {
        loader.loadState(reader, SectionType.PART, 4);
        return loader.normalPages();
    }
}
