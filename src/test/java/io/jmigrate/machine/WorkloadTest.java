package io.jmigrate.machine;

import io.jmigrate.memory.RamBlock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(30)
class WorkloadTest {

    @Test
    void incrementWorkloadKeepsTheCheckersShapeAndPacesItsRate() throws Exception {
        try (Arena a = Arena.ofShared()) {
            RamBlock b = RamBlock.anonymous("ram", 1024 * 4096, 4096, a);
            Workload w = new Workload(new WorkloadSpec(8, "increment", 2), b); // 2048 pages/s
            long t0 = System.nanoTime();
            w.resume();
            Thread.sleep(500);
            w.pause();
            double seconds = (System.nanoTime() - t0) / 1e9;
            long touched = w.pagesTouched();
            // paced against the time that really passed (a loaded machine may sleep much longer than
            // asked); never above the rate plus one 5 ms batch per vCPU, and not starved either
            assertThat(touched).as("%d pages in %.3f s", touched, seconds)
                    .isBetween((long) (2048 * 0.5 * 0.4), (long) (2048 * seconds) + 2 * 6);
            assertThat(w.check()).allMatch(WorkloadChecker.Result::ok);
            Thread.sleep(100);
            assertThat(w.pagesTouched()).isEqualTo(touched); // paused means paused
            w.resume();
            Thread.sleep(200);
            w.pause();
            assertThat(w.pagesTouched()).isGreaterThan(touched);
            assertThat(w.check()).allMatch(WorkloadChecker.Result::ok);
            w.shutdown();
        }
    }

    @Test
    void checkerFindsALostPage() {
        try (Arena a = Arena.ofShared()) {
            RamBlock b = RamBlock.anonymous("ram", 16 * 4096, 4096, a);
            for (int p = 0; p < 16; p++) {
                b.writeByte(p * 4096L, (byte) (p < 10 ? 3 : 2));
            }
            WorkloadChecker.Result ok = WorkloadChecker.check(b, 0, 16);
            assertThat(ok.ok()).isTrue();
            assertThat(ok.cursor()).isEqualTo(10);
            b.writeByte(4 * 4096L, (byte) 2); // a page that missed its last write
            WorkloadChecker.Result bad = WorkloadChecker.check(b, 0, 16);
            assertThat(bad.ok()).isFalse();
            assertThat(bad.error()).contains("page 5");
        }
    }

    @Test
    void destinationResumesFromTheCursorInMemory() throws Exception {
        try (Arena a = Arena.ofShared()) {
            RamBlock b = RamBlock.anonymous("ram", 64 * 4096, 4096, a);
            for (int p = 0; p < 64; p++) {
                b.writeByte(p * 4096L, (byte) (p < 20 ? 8 : 7));
            }
            Workload w = new Workload(new WorkloadSpec(0.1, "increment", 1), b); // ~25 pages/s
            w.resume();
            Thread.sleep(150);
            w.pause();
            WorkloadChecker.Result r = w.check().getFirst();
            assertThat(r.ok()).as(String.valueOf(r.error())).isTrue();
            assertThat(r.cursor()).isGreaterThan(20);
            w.shutdown();
        }
    }

    @Test
    void specParsing() {
        WorkloadSpec s = WorkloadSpec.parse("dirty-rate=50,pattern=increment");
        assertThat(s.dirtyRateMiB()).isEqualTo(50);
        assertThat(s.vcpus()).isEqualTo(1);
        assertThatThrownBy(() -> WorkloadSpec.parse("pattern=increment")).hasMessageContaining("dirty-rate");
        assertThatThrownBy(() -> WorkloadSpec.parse("dirty-rate=5,pattern=random")).hasMessageContaining("random");
        assertThatThrownBy(() -> WorkloadSpec.parse("dirty-rate=x")).hasMessageContaining("not a number");
    }
}
