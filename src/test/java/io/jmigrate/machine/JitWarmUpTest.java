package io.jmigrate.machine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;

/** The JIT warm-up's rounds, its stop when the VM's own migration begins, and its QMP shape. */
@Timeout(300)
class JitWarmUpTest {
    private static JitWarmUp awaitEnd(JitWarmUp w) throws InterruptedException {
        while (w.status() == JitWarmUp.Status.RUNNING) {
            Thread.sleep(10);
        }
        return w;
    }

    @Test
    void runsEveryRoundThenReportsDone() throws Exception {
        JitWarmUp w = awaitEnd(JitWarmUp.start(() -> false));
        assertThat(w.info()).as(w.info().toString()).containsEntry("status", "done")
                .containsEntry("rounds", 8).containsEntry("total-rounds", 8).doesNotContainKey("error-desc");
        assertThat((Long) w.info().get("time")).isPositive();
    }

    @Test
    void stopsBetweenRoundsOnceTheVmsOwnMigrationHasBegun() throws Exception {
        AtomicInteger asked = new AtomicInteger();
        // the VM's migration begins after two rounds: the third is not started
        JitWarmUp w = awaitEnd(JitWarmUp.start(() -> asked.incrementAndGet() > 2));
        assertThat(w.info()).containsEntry("status", "stopped").containsEntry("rounds", 2);

        JitWarmUp at0 = awaitEnd(JitWarmUp.start(() -> true));
        assertThat(at0.info()).containsEntry("status", "stopped").containsEntry("rounds", 0);
    }

    @Test
    void offHasOnlyItsStatus() {
        assertThat(JitWarmUp.off().info()).containsExactlyEntriesOf(java.util.Map.of("status", "off"));
    }
}
