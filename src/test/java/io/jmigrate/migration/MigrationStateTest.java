package io.jmigrate.migration;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;

@Timeout(30)
class MigrationStateTest {
    /**
     * A status change and its MIGRATION event are one step for observers: while the event is
     * being emitted, a reader of the status waits (it must not see "setup" before the event is
     * queued), then sees the new status.
     */
    @Test
    void aReaderNeverSeesTheNewStatusBeforeItsEventWasEmitted() throws Exception {
        CountDownLatch inEmit = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        MigrationState s = new MigrationState((event, data) -> {
            inEmit.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, () -> true);
        Thread changer = Thread.ofPlatform().start(() -> s.cas(MigrationStatus.NONE, MigrationStatus.SETUP));
        inEmit.await();
        AtomicReference<MigrationStatus> seen = new AtomicReference<>();
        Thread reader = Thread.ofPlatform().start(() -> seen.set(s.get()));
        while (reader.getState() != Thread.State.BLOCKED) {
            assertThat(reader.isAlive()).as("the reader returned %s during the event", seen.get()).isTrue();
            Thread.onSpinWait();
        }
        release.countDown();
        reader.join();
        changer.join();
        assertThat(seen.get()).isEqualTo(MigrationStatus.SETUP);
    }
}
