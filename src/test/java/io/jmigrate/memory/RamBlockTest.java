package io.jmigrate.memory;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class RamBlockTest {
    @TempDir
    Path dir;

    @Test
    void dirtyLoggingMarksPagesAndSyncCollectsAndClears() {
        try (Arena a = Arena.ofShared()) {
            RamBlock b = RamBlock.anonymous("ram", 130 * 4096, 4096, a);
            b.writeByte(0, (byte) 1);
            b.incrementByte(129 * 4096 + 7);
            b.incrementByte(64 * 4096);
            long[] dest = new long[b.dirtyBitmap().wordCount()];
            assertThat(b.dirtyBitmap().syncInto(dest)).isEqualTo(3);
            assertThat(dest[0]).isEqualTo(1L);
            assertThat(dest[1]).isEqualTo(1L);
            assertThat(dest[2]).isEqualTo(1L << 1);
            assertThat(b.dirtyBitmap().count()).isZero();
            assertThat(b.dirtyBitmap().syncInto(dest)).isZero();
            b.dirtyBitmap().setAll();
            assertThat(b.dirtyBitmap().count()).isEqualTo(130);
        }
    }

    @Test
    void concurrentWritersLoseNoDirtyBit() throws Exception {
        try (Arena a = Arena.ofShared()) {
            RamBlock b = RamBlock.anonymous("ram", 4096L * 4096, 4096, a);
            long[] dest = new long[b.dirtyBitmap().wordCount()];
            CountDownLatch go = new CountDownLatch(1);
            Thread[] ts = new Thread[4];
            for (int t = 0; t < ts.length; t++) {
                int id = t;
                ts[t] = new Thread(() -> {
                    try {
                        go.await();
                    } catch (InterruptedException e) {
                        return;
                    }
                    for (long p = id; p < 4096; p += ts.length) {
                        b.incrementByte(p * 4096);
                    }
                });
                ts[t].start();
            }
            go.countDown();
            for (int i = 0; i < 50; i++) {
                b.dirtyBitmap().syncInto(dest);
            }
            for (Thread t : ts) {
                t.join();
            }
            b.dirtyBitmap().syncInto(dest);
            for (long w : dest) {
                assertThat(w).isEqualTo(-1L);
            }
        }
    }

    @Test
    void digestCoversContentAndNames() {
        try (Arena a = Arena.ofShared()) {
            RamBlock x = RamBlock.anonymous("ram", 8 * 4096, 4096, a);
            RamBlock y = RamBlock.anonymous("ram", 8 * 4096, 4096, a);
            RamBlock z = RamBlock.anonymous("other", 8 * 4096, 4096, a);
            assertThat(RamDigest.sha256(List.of(x))).isEqualTo(RamDigest.sha256(List.of(y)))
                    .isNotEqualTo(RamDigest.sha256(List.of(z)));
            y.writeByte(5 * 4096 + 3, (byte) 1);
            assertThat(RamDigest.sha256(List.of(x))).isNotEqualTo(RamDigest.sha256(List.of(y)));
        }
    }

    @Test
    void mappedFileShareOnWritesThroughShareOffDoesNot() throws Exception {
        Path f = dir.resolve("guest.bin");
        try (Arena a = Arena.ofShared()) {
            RamBlock priv = RamBlock.mapped("ram", 4 * 4096, 4096, f, false, a);
            priv.writeByte(10, (byte) 42);
            assertThat(Files.readAllBytes(f)[10]).isZero();
            RamBlock shared = RamBlock.mapped("ram", 4 * 4096, 4096, f, true, a);
            shared.writeByte(10, (byte) 43);
            // a shared mapping and read(2) see the same page cache: no msync needed
            assertThat(Files.readAllBytes(f)[10]).isEqualTo((byte) 43);
        }
    }

    @Test
    void badSizesAreRejected() {
        try (Arena a = Arena.ofShared()) {
            assertThatThrownBy(() -> RamBlock.anonymous("ram", 4095, 4096, a)).hasMessageContaining("multiple");
            assertThatThrownBy(() -> RamBlock.anonymous("", 4096, 4096, a)).hasMessageContaining("idstr");
        }
    }
}
