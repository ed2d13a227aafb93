package io.jmigrate.bench.jmh;

import io.jmigrate.multifd.MultifdCompression;
import io.jmigrate.multifd.MultifdMethods;
import io.jmigrate.multifd.RamPacket;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Per-packet multifd compression (PROTOCOL.md §2: one zlib/zstd stream per channel, flushed at
 * the end of every packet) through jmigrate's own codecs, {@link MultifdMethods#newSend} and
 * {@link MultifdMethods#newRecv}. One op = one packet of 128 pages (512 KiB). The source region
 * is 32 MiB and each op takes the next packet of it, so the compressor never sees a packet twice
 * within its window.
 *
 * <p>{@code content=random}: incompressible bytes (the throughput harness's RAM);
 * {@code content=text}: pages of a small alphabet with runs of zeros (compresses about 3-5x).
 * Levels are QEMU's defaults (zlib 1, zstd 1). Baseline in the same run: {@link #baselineCopy},
 * a memcpy of the same 512 KiB; {@code method=none} is the nocomp codec (its receive is a read
 * into the pages, i.e. a copy).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class CompressionBench {
    static final int PAGE = 4096;
    static final int PAGES = RamPacket.PACKET_DATA_SIZE / PAGE;
    static final long REGION = 32L << 20;

    @Param({"zlib", "zstd", "none"})
    public String method;

    @Param({"random", "text"})
    public String content;

    private Arena arena;
    private MemorySegment src;
    private MemorySegment dst;
    private ByteBuffer srcView;
    private ByteBuffer dstView;
    private final ByteBuffer[] pages = new ByteBuffer[PAGES];
    private final ByteBuffer[] targets = new ByteBuffer[PAGES];
    private final ByteBuffer[] iov = new ByteBuffer[PAGES];
    private MultifdMethods.SendCodec send;
    private MultifdMethods.RecvCodec recv;
    private final BufferChannel wire = new BufferChannel();
    private long next;

    /** A readable channel over the buffers of one prepared payload. */
    static final class BufferChannel implements ReadableByteChannel {
        ByteBuffer[] bufs;
        int count;
        int index;

        void reset(ByteBuffer[] b, int n) {
            bufs = b;
            count = n;
            index = 0;
        }

        @Override
        public int read(ByteBuffer dst) {
            while (index < count && !bufs[index].hasRemaining()) {
                index++;
            }
            if (index == count) {
                return -1;
            }
            ByteBuffer b = bufs[index];
            int n = Math.min(dst.remaining(), b.remaining());
            ByteBuffer slice = b.slice(b.position(), n);
            dst.put(slice);
            b.position(b.position() + n);
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

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        src = arena.allocate(REGION, PAGE);
        dst = arena.allocate(RamPacket.PACKET_DATA_SIZE, PAGE);
        SplittableRandom rnd = new SplittableRandom(1234);
        if (content.equals("random")) {
            for (long i = 0; i < REGION; i += 8) {
                src.set(ValueLayout.JAVA_LONG_UNALIGNED, i, rnd.nextLong());
            }
        } else {
            byte[] alphabet = "etaoin shrdlu\n{}\":,0123456789".getBytes();
            for (long i = 0; i < REGION; i++) {
                src.set(ValueLayout.JAVA_BYTE, i, (i & 4095) >= 3072 ? 0 : alphabet[rnd.nextInt(alphabet.length)]);
            }
        }
        srcView = src.asByteBuffer();
        dstView = dst.asByteBuffer();
        MultifdCompression m = MultifdCompression.fromParameter(method);
        send = MultifdMethods.newSend(m, PAGE, 1);
        recv = MultifdMethods.newRecv(m, PAGE);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        send.close();
        recv.close();
        arena.close();
    }

    private int preparePacket() {
        long base = next;
        next = (next + RamPacket.PACKET_DATA_SIZE) % REGION;
        for (int i = 0; i < PAGES; i++) {
            int off = (int) (base + (long) i * PAGE);
            pages[i] = srcView.slice(off, PAGE);
        }
        return send.prepare(pages, PAGES, iov, 0);
    }

    /** Source side only: compress one packet. Returns the compressed size. */
    @Benchmark
    public int compress() {
        preparePacket();
        return send.nextPacketSize();
    }

    /** Source then destination: compress one packet and decompress it into other memory. */
    @Benchmark
    public int roundTrip() throws IOException {
        int n = preparePacket();
        int size = send.nextPacketSize();
        wire.reset(iov, n);
        for (int i = 0; i < PAGES; i++) {
            targets[i] = dstView.slice(i * PAGE, PAGE);
        }
        recv.receive(wire, size, targets, PAGES, "bench", 0);
        return size;
    }

    /** Baseline: memcpy of the same 512 KiB. */
    @Benchmark
    public MemorySegment baselineCopy() {
        long base = next;
        next = (next + RamPacket.PACKET_DATA_SIZE) % REGION;
        MemorySegment.copy(src, base, dst, 0, RamPacket.PACKET_DATA_SIZE);
        return dst;
    }
}
