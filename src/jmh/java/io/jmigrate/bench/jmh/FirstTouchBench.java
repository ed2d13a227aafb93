package io.jmigrate.bench.jmh;

import io.jmigrate.memory.MemoryBackend;
import io.jmigrate.memory.RamBlock;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * What a destination pays to put pages into guest RAM it has not touched yet, per backend
 * setting: one op = create a 256 MiB {@code ram} block and copy a 4 KiB page into every page of
 * it, as a loader does. {@code lazy}: 4 KiB faults during the copy; {@code thp}: the same with
 * {@code madvise(MADV_HUGEPAGE)}, so 2 MiB faults (with compaction when the kernel's defrag
 * setting is {@code madvise}, as QEMU's guests get); {@code prealloc}: every page faulted in
 * ({@code MADV_POPULATE_WRITE}) when the block is made, then the copy. This decided that
 * jmigrate does not advise huge pages by default (README, Benchmarks).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, batchSize = 1)
@Measurement(iterations = 5, batchSize = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class FirstTouchBench {
    static final long SIZE = 256L << 20;
    static final int PS = 4096;

    @Param({"lazy", "thp", "prealloc"})
    public String backend;

    private final MemorySegment page;

    public FirstTouchBench() {
        byte[] b = new byte[PS];
        new SplittableRandom(5).nextBytes(b);
        page = MemorySegment.ofArray(b);
    }

    @Benchmark
    public long createAndFill() {
        MemoryBackend mb = new MemoryBackend(MemoryBackend.Kind.RAM, null, false, backend.equals("prealloc"),
                backend.equals("thp"));
        try (Arena arena = Arena.ofShared()) {
            RamBlock b = RamBlock.create("ram", SIZE, PS, mb, arena);
            MemorySegment s = b.segment();
            for (long off = 0; off < SIZE; off += PS) {
                MemorySegment.copy(page, 0, s, off, PS);
            }
            return s.get(java.lang.foreign.ValueLayout.JAVA_BYTE, SIZE - 1);
        }
    }
}
