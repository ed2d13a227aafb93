package io.jmigrate.migration;

import io.jmigrate.channel.Transports;
import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.common.Durations;
import io.jmigrate.savevm.ReturnPathMessage;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.StreamLimits;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * The source's return-path thread {@code mig/src/rp_thr} (migration.c
 * {@code source_return_path_thread}): reads {@link ReturnPathMessage}s from the reverse
 * direction of the main channel until SHUT. PONG is accepted, SWITCHOVER_ACK recorded; the
 * postcopy messages are protocol errors here (jmigrate has no postcopy). A read error while the
 * migration is still active becomes the migration's first error and closes the main channel.
 */
final class SourceReturnPath {
    private final Transport.Connection connection;
    private final FirstError error;
    private final BooleanSupplier expectingMore;
    private final CountDownLatch shut = new CountDownLatch(1);
    private volatile ReturnPathMessage.Shut shutMessage;
    private volatile boolean switchoverAcked;
    /** The value of the last PONG (guarded by itself; notified on every PONG and when the thread ends). */
    private final int[] lastPong = {Integer.MIN_VALUE};
    private volatile boolean ended;

    /**
     * @param expectingMore true while a read error is a failure (the migration is active and
     *                      not being cancelled)
     */
    SourceReturnPath(Transport.Connection connection, FirstError error, BooleanSupplier expectingMore) {
        this.connection = connection;
        this.error = error;
        this.expectingMore = expectingMore;
    }

    void start() {
        Thread.ofPlatform().name("mig/src/rp_thr").daemon(true).start(this::run);
    }

    boolean switchoverAcked() {
        return switchoverAcked;
    }

    private void run() {
        QemuFileReader r = new QemuFileReader(connection.channel(), "return path from " + connection.description(),
                StreamLimits.DEFAULT);
        try {
            while (true) {
                long at = r.position();
                switch (ReturnPathMessage.read(r)) {
                    case ReturnPathMessage.Shut s -> {
                        shutMessage = s;
                        if (!s.ok()) {
                            // the cause, recorded before the destination's closing channels
                            // break this side's writes
                            error.set(shutFailed(s));
                        }
                        shut.countDown();
                        return;
                    }
                    case ReturnPathMessage.Pong p -> {
                        synchronized (lastPong) {
                            lastPong[0] = p.value();
                            lastPong.notifyAll();
                        }
                    }
                    case ReturnPathMessage.SwitchoverAck a -> switchoverAcked = true;
                    case ReturnPathMessage.ReqPages m -> throw unexpected(r, at, "REQ_PAGES");
                    case ReturnPathMessage.ReqPagesId m -> throw unexpected(r, at, "REQ_PAGES_ID");
                    case ReturnPathMessage.RecvBitmap m -> throw unexpected(r, at, "RECV_BITMAP");
                    case ReturnPathMessage.ResumeAck m -> throw unexpected(r, at, "RESUME_ACK");
                }
            }
        } catch (MigrationException e) {
            if (expectingMore.getAsBoolean()) {
                // the peer hanging up (EOF between messages, or a reset) is the cause this side
                // sees; anything else is a broken return path
                boolean hungUp = e.getMessage().contains("truncated stream") || Transports.peerHungUp(e);
                error.set(new MigrationException(Category.IO, hungUp
                        ? "the destination closed the main channel (" + e.getMessage() + ")"
                        : "return path failed: " + e.getMessage(), e));
                connection.close();
            }
            shut.countDown();
        } finally {
            ended = true;
            synchronized (lastPong) {
                lastPong.notifyAll();
            }
        }
    }

    /**
     * Waits up to {@code timeoutMs} for PONG({@code value}); false if it has not come by then or
     * the return path ended (SHUT or an error) before it.
     */
    boolean awaitPong(int value, long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        synchronized (lastPong) {
            while (lastPong[0] != value) {
                long left = deadline - System.nanoTime();
                if (ended || left <= 0) {
                    return false;
                }
                TimeUnit.NANOSECONDS.timedWait(lastPong, left);
            }
            return true;
        }
    }

    /** The thread has ended (SHUT read, or the return path failed). */
    boolean ended() {
        return ended;
    }

    private static MigrationException unexpected(QemuFileReader r, long at, String name) {
        return r.fail(Category.PROTOCOL, at, "unexpected return-path message " + name
                + " (postcopy is not supported; expected SHUT, PONG or SWITCHOVER_ACK)");
    }

    /**
     * Waits for the destination's SHUT after the stream ended; with a return path the source's
     * downtime ends here (PROTOCOL.md §1.10). Fails with the first error, a TIMEOUT, or the
     * destination's non-zero SHUT status.
     */
    void awaitShut(Duration timeout) throws InterruptedException {
        if (!shut.await(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new MigrationException(Category.TIMEOUT, "the destination did not send SHUT on the return "
                    + "path within " + Durations.human(timeout) + " after the stream ended (x-jmigrate-stall-timeout)");
        }
        error.throwIfSet();
        ReturnPathMessage.Shut s = shutMessage;
        if (s == null || !s.ok()) {
            throw shutFailed(s);
        }
    }

    private static MigrationException shutFailed(ReturnPathMessage.Shut s) {
        return new MigrationException(Category.MISMATCH, "the destination failed to load the stream "
                + "(return path SHUT " + (s == null ? -1 : s.status()) + ")");
    }
}
