package io.jmigrate.devstate;

import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(30)
class DeviceThreadPoolTest {

    @Test
    void everyTaskRunsOnItsOwnNamedThreadAndWaitIsABarrier() throws Exception {
        FirstError err = new FirstError();
        try (DeviceThreadPool pool = new DeviceThreadPool("mig/src/save_", err)) {
            Set<String> names = ConcurrentHashMap.newKeySet();
            CountDownLatch all = new CountDownLatch(3);
            for (String d : List.of("a/blob", "b/blob", "c/blob")) {
                pool.submit(d, abort -> {
                    names.add(Thread.currentThread().getName());
                    all.countDown();
                    all.await(); // all three run at once (submit_immediate)
                });
            }
            assertThat(pool.waitAll(Duration.ofSeconds(10))).isTrue();
            assertThat(names).containsExactlyInAnyOrder("mig/src/save_a/blob", "mig/src/save_b/blob",
                    "mig/src/save_c/blob");
            assertThat(pool.running()).isEmpty();
            pool.submit("d/blob", abort -> { }); // still usable after a wait
            assertThat(pool.waitAll(Duration.ofSeconds(10))).isTrue();
            assertThat(pool.isSet()).isFalse();
        }
    }

    @Test
    void theFirstFailureWinsAndAbortsTheOthers() throws Exception {
        FirstError err = new FirstError();
        try (DeviceThreadPool pool = new DeviceThreadPool("mig/dst/load_", err)) {
            CountDownLatch waiting = new CountDownLatch(1);
            pool.submit("slow", abort -> {
                waiting.countDown();
                while (!abort.isSet()) {
                    Thread.onSpinWait();
                }
                abort.check("slow");
            });
            waiting.await();
            pool.submit("bad", abort -> {
                throw new MigrationException(Category.PROTOCOL, "bad: broken chunk 3");
            });
            assertThat(pool.waitAll(Duration.ofSeconds(10))).isFalse();
            assertThat(err.get()).hasMessage("bad: broken chunk 3");
            assertThat(pool.isSet()).isTrue();
            assertThatThrownBy(() -> pool.submit("late", abort -> { })).hasMessage("bad: broken chunk 3");
        }
    }

    @Test
    void waitNamesTheThreadsStillRunningAfterItsTimeout() {
        FirstError err = new FirstError();
        CountDownLatch release = new CountDownLatch(1);
        try (DeviceThreadPool pool = new DeviceThreadPool("mig/dst/load_", err)) {
            pool.submit("stuck/blob", abort -> release.await());
            assertThatThrownBy(() -> pool.waitAll(Duration.ofMillis(100)))
                    .hasMessageContaining("mig/dst/load_stuck/blob").hasMessageContaining("did not finish within 100 ms");
            release.countDown();
        }
    }
}
