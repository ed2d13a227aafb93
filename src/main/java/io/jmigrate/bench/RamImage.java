package io.jmigrate.bench;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;

/**
 * The guest RAM image both engines' sources map ({@code memory-backend-file ... share=on}):
 * {@code size} bytes of seeded pseudo-random data, so it is incompressible and has no zero
 * pages, and every run and every engine migrates the same bytes.
 */
public final class RamImage {
    private RamImage() {
    }

    /** Creates (or overwrites) {@code file} with {@code size} bytes from {@code seed}. */
    public static void fill(Path file, long size, long seed) {
        if (size <= 0 || size % 4096 != 0) {
            throw new MigrationException(Category.CONFIG, "RAM size " + size + " must be a positive multiple of 4 KiB");
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
             Arena arena = Arena.ofConfined()) {
            ch.truncate(size);
            MemorySegment seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            SplittableRandom rnd = new SplittableRandom(seed);
            for (long off = 0; off < size; off += 8) {
                seg.set(ValueLayout.JAVA_LONG_UNALIGNED, off, rnd.nextLong());
            }
            seg.force();
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot write the RAM image " + file + ": " + e.getMessage(), e);
        }
    }
}
