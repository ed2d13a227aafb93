package io.jmigrate.multifd;

import io.jmigrate.memory.SegmentWindows;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import static org.assertj.core.api.Assertions.assertThat;

/** The page views that the channels hand to gathering writes, scattering reads and codecs. */
class PageViewsTest {
    private static final int PS = 4096;

    /** Every page filled with its own page number, so a view's bytes say which pages it covers. */
    private static MultifdBlock block(MemorySegment mem, long[] touched) {
        for (long off : touched) {
            mem.asSlice(off, PS).fill((byte) (off / PS));
        }
        return new MultifdBlock("pc.ram", mem, PS);
    }

    private static byte[] bytes(ByteBuffer[] views, int n) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < n; i++) {
            byte[] b = new byte[views[i].remaining()];
            views[i].duplicate().get(b);
            out.writeBytes(b);
        }
        return out.toByteArray();
    }

    private static byte[] expected(long... offs) {
        byte[] out = new byte[offs.length * PS];
        for (int i = 0; i < offs.length; i++) {
            java.util.Arrays.fill(out, i * PS, (i + 1) * PS, (byte) (offs[i] / PS));
        }
        return out;
    }

    @Test
    void withoutCompressionContiguousPagesShareOneViewAndGapsStartNewOnes() {
        try (Arena arena = Arena.ofConfined()) {
            long[] offs = {0, PS, 2 * PS, 5 * PS, 6 * PS, 3 * PS, 9 * PS};
            MultifdBlock b = block(arena.allocate(16L * PS), offs);
            PageViews v = new PageViews(offs.length, true);
            ByteBuffer[] out = new ByteBuffer[offs.length];

            int n = v.fill(b, offs, offs.length, out);

            // [0,3) then [5,7) then 3 (after 6: not the next page) then 9
            assertThat(n).isEqualTo(4);
            assertThat(out[0].remaining()).isEqualTo(3 * PS);
            assertThat(out[1].remaining()).isEqualTo(2 * PS);
            assertThat(out[2].remaining()).isEqualTo(PS);
            assertThat(out[3].remaining()).isEqualTo(PS);
            assertThat(bytes(out, n)).isEqualTo(expected(offs));
        }
    }

    @Test
    void reusedSlotsArePositionedAfreshAfterALongerRun() {
        try (Arena arena = Arena.ofConfined()) {
            long[] run = {0, PS, 2 * PS, 3 * PS};
            long[] scattered = {3 * PS, PS, 7 * PS, 2 * PS};
            MultifdBlock b = block(arena.allocate(8L * PS), new long[] {0, PS, 2 * PS, 3 * PS, 7 * PS});
            PageViews v = new PageViews(4, true);
            ByteBuffer[] out = new ByteBuffer[4];

            assertThat(v.fill(b, run, 4, out)).isEqualTo(1);
            int n = v.fill(b, scattered, 4, out);

            // 3, then 1 (before 3), then 7, then 2: no two follow each other
            assertThat(n).isEqualTo(4);
            assertThat(bytes(out, n)).isEqualTo(expected(scattered));
        }
    }

    @Test
    void withCompressionEveryPageHasAViewOfItsOwn() {
        try (Arena arena = Arena.ofConfined()) {
            long[] offs = {0, PS, 2 * PS};
            MultifdBlock b = block(arena.allocate(4L * PS), offs);
            PageViews v = new PageViews(offs.length, false);
            ByteBuffer[] out = new ByteBuffer[offs.length];

            assertThat(v.fill(b, offs, 3, out)).isEqualTo(3);
            for (int i = 0; i < 3; i++) {
                assertThat(out[i].remaining()).isEqualTo(PS);
            }
            assertThat(bytes(out, 3)).isEqualTo(expected(offs));
        }
    }

    /** A ByteBuffer addresses at most 2 GiB, so a run ends where a 1 GiB window does. */
    @Test
    void aRunEndsAtAWindowBoundary(@TempDir Path dir) throws Exception {
        long size = SegmentWindows.SIZE + 4L * PS;
        long last = SegmentWindows.SIZE - PS;
        long[] offs = {last - PS, last, SegmentWindows.SIZE, SegmentWindows.SIZE + PS};
        // a sparse file: only the touched pages take memory
        try (Arena arena = Arena.ofConfined();
             FileChannel f = FileChannel.open(dir.resolve("ram"), StandardOpenOption.CREATE_NEW,
                     StandardOpenOption.READ, StandardOpenOption.WRITE, StandardOpenOption.SPARSE)) {
            f.write(ByteBuffer.allocate(1), size - 1);
            MemorySegment mem = f.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            MultifdBlock b = block(mem, offs);
            PageViews v = new PageViews(offs.length, true);
            ByteBuffer[] out = new ByteBuffer[offs.length];

            int n = v.fill(b, offs, offs.length, out);

            assertThat(n).isEqualTo(2);
            assertThat(out[0].remaining()).isEqualTo(2 * PS);
            assertThat(out[1].remaining()).isEqualTo(2 * PS);
            assertThat(bytes(out, n)).isEqualTo(expected(offs));
            assertThat(mem.get(ValueLayout.JAVA_BYTE, SegmentWindows.SIZE)).isEqualTo((byte) (SegmentWindows.SIZE / PS));
        }
    }
}
