package io.jmigrate.machine;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The JIT warm-up's rounds, its stop when the VM's own migration begins, failures and its QMP
 * shape, with rounds that only count (MigrateCliIT runs the real ones in a VM process).
 */
@Timeout(60)
class JitWarmUpTest {
    private final java.util.List<Integer> ran = java.util.Collections.synchronizedList(new java.util.ArrayList<>());

    private JitWarmUp.Round counting() {
        return (dir, channels, n) -> {
            assertThat(dir).isDirectory();
            ran.add(channels);
        };
    }

    private static JitWarmUp awaitEnd(JitWarmUp w) throws InterruptedException {
        while (w.status() == JitWarmUp.Status.RUNNING) {
            Thread.sleep(10);
        }
        return w;
    }

    @Test
    void runsEveryRoundThenReportsDone() throws Exception {
        JitWarmUp w = awaitEnd(JitWarmUp.start(() -> false, counting()));
        // counting rounds compile nothing: the first 8, then more until the cap
        assertThat(ran).startsWith(0, 0, 2, 2, 4, 4, 4, 4).hasSize(JitWarmUp.MAX_ROUNDS);
        assertThat(w.info()).as(w.info().toString()).containsEntry("status", "done")
                .containsEntry("rounds", JitWarmUp.MAX_ROUNDS).containsEntry("hot-methods-compiled", false)
                .doesNotContainKey("error-desc");
        assertThat((Long) w.info().get("time")).isNotNegative();
    }

    @Test
    void stopsBetweenRoundsOnceTheVmsOwnMigrationHasBegun() throws Exception {
        AtomicInteger asked = new AtomicInteger();
        // the VM's migration begins after two rounds: the third is not started
        JitWarmUp w = awaitEnd(JitWarmUp.start(() -> asked.incrementAndGet() > 2, counting()));
        assertThat(w.info()).containsEntry("status", "stopped").containsEntry("rounds", 2);

        JitWarmUp at0 = awaitEnd(JitWarmUp.start(() -> true, counting()));
        assertThat(at0.info()).containsEntry("status", "stopped").containsEntry("rounds", 0);
    }

    @Test
    void aFailedRoundEndsItWithTheCause() throws Exception {
        JitWarmUp w = awaitEnd(JitWarmUp.start(() -> false, (dir, channels, n) -> {
            if (n == 3) {
                throw new IllegalStateException("no socket");
            }
        }));
        assertThat(w.info()).containsEntry("status", "failed").containsEntry("rounds", 3)
                .containsEntry("error-desc", "JIT warm-up round 4 failed: no socket");
    }

    @Test
    void everyHotMethodExistsUnderTheNameHotSpotGivesIt() throws Exception {
        for (String h : JitWarmUp.HOT) {
            String cls = h.substring(0, h.lastIndexOf('.'));
            String method = h.substring(h.lastIndexOf('.') + 1, h.length() - 1);
            assertThat(java.util.Arrays.stream(Class.forName(cls).getDeclaredMethods()).map(java.lang.reflect.Method::getName))
                    .as(h).contains(method);
        }
        // asking the JVM works here: none of them is compiled in this test JVM yet, or some are
        assertThat(JitWarmUp.notCompiled()).isSubsetOf(JitWarmUp.HOT);
    }

    @Test
    void offHasOnlyItsStatus() {
        assertThat(JitWarmUp.off().info()).containsExactlyEntriesOf(java.util.Map.of("status", "off"));
    }
}
