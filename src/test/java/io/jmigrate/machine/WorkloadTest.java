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
            // it gets there however loaded the machine is (the vCPUs are not starved for good) ...
            awaitPages(w, 400);
            w.pause();
            double seconds = (System.nanoTime() - t0) / 1e9;
            long touched = w.pagesTouched();
            // ... but never faster than the rate, against the time that really passed, plus one
            // 5 ms batch per vCPU
            assertThat(touched).as("%d pages in %.3f s", touched, seconds)
                    .isBetween(400L, (long) (2048 * seconds) + 2 * 6);
            assertThat(w.check()).allMatch(WorkloadChecker.Result::ok);
            // pause() returns once every vCPU has parked: nothing may move after it (this wait
            // only gives a broken pause the chance to show; it synchronises nothing)
            Thread.sleep(100);
            assertThat(w.pagesTouched()).isEqualTo(touched); // paused means paused
            w.resume();
            awaitPages(w, touched + 1);
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
            awaitPages(w, 1);
            w.pause();
            WorkloadChecker.Result r = w.check().getFirst();
            assertThat(r.ok()).as(String.valueOf(r.error())).isTrue();
            assertThat(r.cursor()).isGreaterThan(20);
            w.shutdown();
        }
    }

    /** Polls until the workload has written {@code n} pages (the class timeout bounds it). */
    private static void awaitPages(Workload w, long n) throws InterruptedException {
        while (w.pagesTouched() < n) {
            Thread.sleep(5);
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
