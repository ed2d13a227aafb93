package io.jmigrate.bench.jmh;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Zero-page detection over guest RAM as a {@link MemorySegment}: the exact check the RAM saver
 * ({@code zero-page-detection=legacy}) and the multifd sender threads ({@code multifd}) run per
 * page, {@code MemorySegment.mismatch} against a zero page, over one packet's worth of pages
 * (512 KiB = 128 pages of 4 KiB).
 *
 * <p>Baseline in the same run: {@link #baselineCopy} copies the same 512 KiB (memcpy), the cost
 * that sending the pages would add anyway. {@code content=zero} is the worst case for detection
 * (every byte is read); {@code random} exits at the first byte; {@code tail} has one non-zero
 * byte at the end of each page (reads every byte, then reports non-zero).
 * All ops are per page ({@link OperationsPerInvocation}).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class ZeroPageDetectionBench {
    static final int PAGE = 4096;
    static final int PAGES = 128;

    @Param({"zero", "random", "tail"})
    public String content;

    private Arena arena;
    private MemorySegment ram;
    private MemorySegment dst;
    private MemorySegment zeroPage;

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        ram = arena.allocate((long) PAGE * PAGES, PAGE);
        dst = arena.allocate((long) PAGE * PAGES, PAGE);
        zeroPage = arena.allocate(PAGE, PAGE);
        SplittableRandom rnd = new SplittableRandom(42);
        switch (content) {
            case "zero" -> { }
            case "random" -> {
                for (long i = 0; i < ram.byteSize(); i += 8) {
                    ram.set(ValueLayout.JAVA_LONG_UNALIGNED, i, rnd.nextLong() | 1);
                }
            }
            case "tail" -> {
                for (int p = 0; p < PAGES; p++) {
                    ram.set(ValueLayout.JAVA_BYTE, (long) p * PAGE + PAGE - 1, (byte) 1);
                }
            }
            default -> throw new IllegalArgumentException(content);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    /** What jmigrate runs: {@code MemorySegment.mismatch} against a zero page, per page. */
    @Benchmark
    @OperationsPerInvocation(PAGES)
    public int mismatchAgainstZeroPage() {
        int zero = 0;
        for (int p = 0; p < PAGES; p++) {
            long off = (long) p * PAGE;
            if (MemorySegment.mismatch(ram, off, off + PAGE, zeroPage, 0, PAGE) < 0) {
                zero++;
            }
        }
        return zero;
    }

    /** The scalar alternative (QEMU's buffer_is_zero fallback shape): OR of 8-byte words. */
    @Benchmark
    @OperationsPerInvocation(PAGES)
    public int orOfLongs() {
        int zero = 0;
        for (int p = 0; p < PAGES; p++) {
            long off = (long) p * PAGE;
            long acc = 0;
            for (int i = 0; i < PAGE; i += 8) {
                acc |= ram.get(ValueLayout.JAVA_LONG_UNALIGNED, off + i);
            }
            if (acc == 0) {
                zero++;
            }
        }
        return zero;
    }

    /** Baseline: memcpy of the same pages. */
    @Benchmark
    @OperationsPerInvocation(PAGES)
    public MemorySegment baselineCopy() {
        MemorySegment.copy(ram, 0, dst, 0, (long) PAGE * PAGES);
        return dst;
    }
}
