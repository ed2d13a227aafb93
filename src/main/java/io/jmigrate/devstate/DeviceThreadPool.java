package io.jmigrate.devstate;

import io.jmigrate.common.Durations;
import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.savevm.SaveVmHandlers;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * QEMU's generic thread pool (util/thread-pool.c, PROTOCOL.md §3.2-3.4) as used for device
 * state: the save threads {@code mig/src/save_<dev>} of a source, the load threads
 * {@code mig/dst/load_<dev>} of a destination.
 *
 * <ul>
 *   <li>{@link #submit}: every task gets its own platform thread at once ({@code submit_immediate});
 *       submitting after {@link #abort} is refused with the first error;</li>
 *   <li>{@link #waitAll}: a barrier until every submitted task has returned; the pool stays usable;</li>
 *   <li>the abort flag ({@link #isSet}, the {@link SaveVmHandlers.AbortFlag} handed to every
 *       task) is set by {@link #abort}, by {@link #close}, and by the first task that fails;</li>
 *   <li>a failing task records its error in the migration's {@link FirstError}: the first error
 *       of the migration wins, later ones are dropped.</li>
 * </ul>
 */
public final class DeviceThreadPool implements SaveVmHandlers.AbortFlag, AutoCloseable {
    /** A task: its device's save or load work; checks {@code abort} between chunks and after every wait. */
    @FunctionalInterface
    public interface Task {
        void run(SaveVmHandlers.AbortFlag abort) throws Exception;
    }

    private final String prefix;
    private final FirstError errors;
    private final ExecutorService executor = Executors.newThreadPerTaskExecutor(
            Thread.ofPlatform().daemon(true).factory());
    private final AtomicBoolean abort = new AtomicBoolean();
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition idle = lock.newCondition();
    private final List<String> running = new ArrayList<>();

    /**
     * @param prefix thread name prefix: {@code mig/src/save_} or {@code mig/dst/load_}
     */
    public DeviceThreadPool(String prefix, FirstError errors) {
        this.prefix = prefix;
        this.errors = errors;
    }

    @Override
    public boolean isSet() {
        return abort.get();
    }

    /** Sets the abort flag; every task sees it at its next check. */
    public void abort() {
        abort.set(true);
    }

    /** Starts {@code task} on its own thread {@code <prefix><device>}. */
    public void submit(String device, Task task) {
        if (abort.get()) {
            MigrationException e = errors.get();
            throw e != null ? e : new MigrationException(Category.CANCELLED, "cannot start thread " + prefix + device
                    + ": the device threads were aborted");
        }
        lock.lock();
        try {
            running.add(device);
        } finally {
            lock.unlock();
        }
        executor.execute(() -> {
            Thread.currentThread().setName(prefix + device);
            try {
                task.run(this);
            } catch (Throwable t) {
                errors.set(t instanceof MigrationException me ? me
                        : new MigrationException(Category.INTERNAL, prefix + device + " failed: " + t, t));
                abort.set(true);
            } finally {
                lock.lock();
                try {
                    running.remove(device);
                    idle.signalAll();
                } finally {
                    lock.unlock();
                }
            }
        });
    }

    /** Devices whose thread has not returned yet. */
    public List<String> running() {
        lock.lock();
        try {
            return List.copyOf(running);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Waits until every submitted task returned ({@code thread_pool_wait}). Returns true if no
     * migration error is set by then (QEMU's "join result = no migration error").
     *
     * @throws MigrationException TIMEOUT naming the devices still running after {@code timeout}
     */
    public boolean waitAll(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        lock.lock();
        try {
            while (!running.isEmpty()) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new MigrationException(Category.TIMEOUT, "device thread(s) " + running.stream()
                            .map(d -> prefix + d).toList() + " did not finish within " + Durations.human(timeout));
                }
                idle.await(left, TimeUnit.NANOSECONDS);
            }
        } finally {
            lock.unlock();
        }
        return !errors.isSet();
    }

    /**
     * Waits up to {@code timeout} until every submitted task returned; false if some still run.
     */
    public boolean awaitIdle(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        lock.lock();
        try {
            while (!running.isEmpty()) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                idle.await(left, TimeUnit.NANOSECONDS);
            }
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Sets the abort flag and waits for every thread ({@code thread_pool_free}). */
    @Override
    public void close() {
        abort.set(true);
        executor.shutdown();
        try {
            executor.awaitTermination(1, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
