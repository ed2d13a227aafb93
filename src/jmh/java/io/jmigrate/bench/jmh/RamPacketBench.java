package io.jmigrate.bench.jmh;

import io.jmigrate.multifd.MultifdBlock;
import io.jmigrate.multifd.PacketHeader;
import io.jmigrate.multifd.RamPacket;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * Encode and decode of a full multifd RAM packet ({@code MultiFDPacket_t}, 1344 bytes for 4 KiB
 * pages: header, counts, block name, 128 offsets), as the sender and receiver threads do for
 * every 512 KiB of RAM.
 *
 * <p>Baseline in the same run: {@link #baselineCopyPacket} copies the same 1344 bytes (what
 * the packet costs at the very least). The payload (512 KiB of pages) is not part of these
 * ops: it is written straight from guest memory by a gathering write.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class RamPacketBench {
    static final int PAGE = 4096;
    static final String BLOCK = "pc.ram";

    private Arena arena;
    private RamPacket sendPacket;
    private RamPacket recvPacket;
    private MultifdBlock block;
    private ByteBuffer encoded;
    private ByteBuffer copyDst;
    private byte[] blockName;
    private long packetNum;

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        MemorySegment mem = arena.allocate(64L << 20, PAGE);
        block = new MultifdBlock(BLOCK, mem, PAGE);
        sendPacket = new RamPacket(PAGE);
        recvPacket = new RamPacket(PAGE);
        blockName = BLOCK.getBytes(StandardCharsets.ISO_8859_1);
        encode();
        encoded = ByteBuffer.allocateDirect(sendPacket.length());
        encoded.put(sendPacket.buffer().duplicate().clear()).flip();
        recvPacket.buffer().clear();
        recvPacket.buffer().put(encoded.duplicate());
        copyDst = ByteBuffer.allocateDirect(sendPacket.length());
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    /** Source: fill a packet for 128 consecutive normal pages, as a sender thread does. */
    @Benchmark
    public ByteBuffer encode() {
        int n = sendPacket.pageCount();
        RamPacket p = sendPacket.reset(PacketHeader.FLAG_NOCOMP)
                .pagesAlloc(n)
                .normalPages(n)
                .zeroPages(0)
                .nextPacketSize(n * PAGE)
                .packetNum(packetNum++)
                .blockName(blockName);
        long base = (packetNum & 127) * (long) n * PAGE;
        for (int i = 0; i < n; i++) {
            p.offset(i, base + (long) i * PAGE);
        }
        return p.buffer();
    }

    /** Destination: header check plus full validation (counts, block, every offset). */
    @Benchmark
    public MultifdBlock decodeAndValidate() {
        ByteBuffer b = recvPacket.buffer();
        PacketHeader.decodeFlags(b, 0, "bench", 0);
        return recvPacket.validate(name -> block, PacketHeader.FLAG_NOCOMP, "bench", 0);
    }

    /** Baseline: copy of the same 1344 bytes. */
    @Benchmark
    public ByteBuffer baselineCopyPacket() {
        copyDst.clear();
        copyDst.put(encoded.duplicate());
        return copyDst;
    }
}
