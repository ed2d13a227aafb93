package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** {@link Waits.Permits}: the allocation-free hand-off signal of the multifd threads. */
@Timeout(60)
class WaitsTest {
    @Test
    void permitsReleasedBeforeTheWaitAreTakenWithoutParking() {
        Waits.Permits p = new Waits.Permits("test signal");
        p.release(2);
        assertThat(p.availablePermits()).isEqualTo(2);
        assertThat(p.acquire(() -> true)).isTrue();
        assertThat(p.acquire(() -> true)).isTrue();
        assertThat(p.tryAcquire()).isFalse();
        assertThat(p.acquire(() -> true)).as("no permit and the abort condition holds").isFalse();
    }

    @Test
    void aReleaseWakesTheParkedWaiter() throws Exception {
        Waits.Permits p = new Waits.Permits("test signal");
        AtomicBoolean never = new AtomicBoolean();
        CompletableFuture<Boolean> got = new CompletableFuture<>();
        Thread waiter = Thread.ofPlatform().start(() -> got.complete(p.acquire(never::get)));
        // wait until it has registered and parked on the signal, then release
        while (LockSupport.getBlocker(waiter) != p) {
            Thread.onSpinWait();
        }
        p.release();
        assertThat(got.get(30, TimeUnit.SECONDS)).isTrue();
        waiter.join();
        assertThat(p.availablePermits()).isZero();
    }

    @Test
    void thousandsOfHandOffsBetweenTwoThreadsLoseNoWakeUp() throws Exception {
        Waits.Permits ping = new Waits.Permits("ping");
        Waits.Permits pong = new Waits.Permits("pong");
        int rounds = 20_000;
        CompletableFuture<Void> other = CompletableFuture.runAsync(() -> {
            for (int i = 0; i < rounds; i++) {
                assertThat(ping.acquire(() -> false)).isTrue();
                pong.release();
            }
        });
        for (int i = 0; i < rounds; i++) {
            ping.release();
            assertThat(pong.acquire(() -> false)).isTrue();
        }
        other.get(30, TimeUnit.SECONDS);
        assertThat(ping.availablePermits()).isZero();
        assertThat(pong.availablePermits()).isZero();
    }

    @Test
    void theAbortConditionEndsAWaitWithoutAPermit() throws Exception {
        Waits.Permits p = new Waits.Permits("test signal");
        AtomicBoolean abort = new AtomicBoolean();
        CompletableFuture<Boolean> got = new CompletableFuture<>();
        Thread waiter = Thread.ofPlatform().start(() -> got.complete(p.acquire(abort::get)));
        while (LockSupport.getBlocker(waiter) != p) {
            Thread.onSpinWait();
        }
        abort.set(true); // seen at the next 20 ms poll, with no release at all
        assertThat(got.get(30, TimeUnit.SECONDS)).isFalse();
        waiter.join();
    }

    @Test
    void aSecondWaiterIsReportedAsABug() throws Exception {
        Waits.Permits p = new Waits.Permits("the test signal");
        AtomicBoolean stop = new AtomicBoolean();
        Thread first = Thread.ofPlatform().name("first-waiter").start(() -> p.acquire(stop::get));
        while (LockSupport.getBlocker(first) != p) {
            Thread.onSpinWait();
        }
        assertThatThrownBy(() -> p.acquire(() -> true))
                .isInstanceOf(MigrationException.class)
                .hasMessageContaining("waits for the test signal while first-waiter already does")
                .satisfies(e -> assertThat(((MigrationException) e).category()).isEqualTo(Category.INTERNAL));
        stop.set(true);
        first.join();
    }

    @Test
    void anInterruptedWaiterGetsCancelled() throws Exception {
        Waits.Permits p = new Waits.Permits("the test signal");
        CountDownLatch parked = new CountDownLatch(1);
        CompletableFuture<Throwable> thrown = new CompletableFuture<>();
        Thread waiter = Thread.ofPlatform().start(() -> {
            try {
                parked.countDown();
                p.acquire(() -> false);
                thrown.complete(null);
            } catch (Throwable t) {
                thrown.complete(t);
            }
        });
        parked.await();
        while (LockSupport.getBlocker(waiter) != p) {
            Thread.onSpinWait();
        }
        waiter.interrupt();
        Throwable t = thrown.get(30, TimeUnit.SECONDS);
        assertThat(t).isInstanceOf(MigrationException.class).hasMessageContaining("interrupted while waiting for "
                + "the test signal");
        assertThat(((MigrationException) t).category()).isEqualTo(Category.CANCELLED);
        waiter.join();
    }
}
