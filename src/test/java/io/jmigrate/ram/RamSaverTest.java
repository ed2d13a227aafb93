package io.jmigrate.ram;

import io.jmigrate.memory.RamBlock;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

class RamSaverTest {

    @Test
    void setupIterateCompleteRoundTripsThroughRamLoader() {
        try (Arena a = Arena.ofShared(); Arena b = Arena.ofShared()) {
            RamBlock src = RamBlock.anonymous("ram", 64 * 4096, 4096, a);
            RamBlock dst = RamBlock.anonymous("ram", 64 * 4096, 4096, b);
            dst.segment().fill((byte) 0x55); // stale destination memory must be overwritten/zeroed
            for (int p = 0; p < 64; p += 4) {
                src.writeByte(p * 4096L + p, (byte) (p + 1));
            }
            RamStats stats = new RamStats();
            List<Long> syncs = new ArrayList<>();
            RamSaver saver = new RamSaver(List.of(src), stats, syncs::add, true);
            ByteArrayOutputStream bos = new ByteArrayOutputStream();
            QemuFileWriter w = new QemuFileWriter(bos, "test");
            saver.saveSetup(w);
            assertThat(saver.pendingEstimate()).isEqualTo(64 * 4096);
            boolean done = saver.saveIterate(w, SaveVmHandlers.RateLimit.NONE);
            assertThat(done).isTrue();
            assertThat(stats.normalPages).isEqualTo(16);
            assertThat(stats.zeroPages).isEqualTo(48);
            src.writeByte(5 * 4096L, (byte) 9); // dirtied after it was sent
            assertThat(saver.pendingExact()).isEqualTo(4096);
            saver.saveComplete(w);
            w.flush();
            assertThat(syncs).containsExactly(1L, 2L, 3L);
            assertThat(stats.normalPages).isEqualTo(17);

            RamLoader loader = new RamLoader(List.of(dst));
            QemuFileReader r = QemuFileReader.of(bos.toByteArray(), "test");
            loader.loadState(r, SectionType.START, 4);
            loader.loadState(r, SectionType.PART, 4);
            loader.loadState(r, SectionType.END, 4);
            assertThat(r.atEof()).isTrue();
            assertThat(dst.segment().mismatch(src.segment())).isEqualTo(-1);
            saver.saveCleanup();
        }
    }

    @Test
    void zeroPageDetectionNoneSendsEveryPageWhole() {
        try (Arena a = Arena.ofShared()) {
            RamBlock src = RamBlock.anonymous("ram", 8 * 4096, 4096, a);
            RamStats stats = new RamStats();
            RamSaver saver = new RamSaver(List.of(src), stats, n -> { }, false);
            QemuFileWriter w = new QemuFileWriter(new ByteArrayOutputStream(), "test");
            saver.saveSetup(w);
            saver.saveIterate(w, SaveVmHandlers.RateLimit.NONE);
            assertThat(stats.normalPages).isEqualTo(8);
            assertThat(stats.zeroPages).isZero();
        }
    }
}
