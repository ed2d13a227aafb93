package io.jmigrate.bench.jmh;

import io.jmigrate.ram.RamBlockInfo;
import io.jmigrate.ram.RamFlags;
import io.jmigrate.ram.RamLoadSink;
import io.jmigrate.ram.RamSectionReader;
import io.jmigrate.stream.QemuFileReader;
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

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Decode throughput of the main stream's {@code ram} section records ({@link RamSectionReader}
 * into guest memory), as the destination's {@code mig/dst/main} thread runs it without multifd:
 * a block list, then 16 MiB of PAGE records (the first names the block, the rest CONTINUE), a
 * zero page every 16th page, and EOS. One op = the whole section; the score is in MiB/s of
 * guest RAM via {@code ops/s × 16}.
 *
 * <p>Baseline in the same run: {@link #baselineCopy} copies the same stream bytes into a
 * segment (a memcpy of the section), the floor for any decoder that reads through a buffer.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class RamSectionReaderBench {
    static final int PAGE = 4096;
    static final long RAM = 16L << 20;
    static final String BLOCK = "pc.ram";

    private Arena arena;
    private MemorySegment guest;
    private MemorySegment copyDst;
    private byte[] stream;
    private Sink sink;

    /** Loads pages straight into {@link #guest}; zero pages are filled (as the loader does on a dirty target). */
    static final class Sink implements RamLoadSink {
        final MemorySegment guest;
        long pages;

        Sink(MemorySegment guest) {
            this.guest = guest;
        }

        @Override
        public void blockList(long totalBytes, List<RamBlockInfo> blocks) {
        }

        @Override
        public MemorySegment pageTarget(String block, long offset) {
            pages++;
            return guest.asSlice(offset, PAGE);
        }

        @Override
        public void zeroPage(String block, long offset) {
            guest.asSlice(offset, PAGE).fill((byte) 0);
        }
    }

    @Setup(Level.Trial)
    public void setup() throws IOException {
        arena = Arena.ofShared();
        guest = arena.allocate(RAM, PAGE);
        SplittableRandom rnd = new SplittableRandom(7);
        byte[] page = new byte[PAGE];
        ByteArrayOutputStream bos = new ByteArrayOutputStream((int) (RAM + RAM / PAGE * 16 + 4096));
        DataOutputStream out = new DataOutputStream(bos);
        byte[] name = BLOCK.getBytes(StandardCharsets.ISO_8859_1);
        out.writeLong(RAM | RamFlags.MEM_SIZE);
        out.writeByte(name.length);
        out.write(name);
        out.writeLong(RAM);
        for (long off = 0; off < RAM; off += PAGE) {
            int cont = off == 0 ? 0 : RamFlags.CONTINUE;
            if ((off / PAGE) % 16 == 15) {
                out.writeLong(off | RamFlags.ZERO | cont);
                if (cont == 0) {
                    out.writeByte(name.length);
                    out.write(name);
                }
                out.writeByte(0);
            } else {
                out.writeLong(off | RamFlags.PAGE | cont);
                if (cont == 0) {
                    out.writeByte(name.length);
                    out.write(name);
                }
                rnd.nextBytes(page);
                out.write(page);
            }
        }
        out.writeLong(RamFlags.EOS);
        out.flush();
        stream = bos.toByteArray();
        copyDst = arena.allocate(stream.length, PAGE);
        sink = new Sink(guest);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public long decodeSection() {
        RamSectionReader reader = new RamSectionReader(PAGE);
        QemuFileReader r = QemuFileReader.of(stream, "bench stream");
        reader.readSection(r, sink, "ram section 1 (START)");
        return sink.pages;
    }

    /** Baseline: memcpy of the same stream bytes. */
    @Benchmark
    public MemorySegment baselineCopy() {
        MemorySegment.copy(MemorySegment.ofArray(stream), 0, copyDst, 0, stream.length);
        return copyDst;
    }
}
