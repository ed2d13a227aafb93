package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.RamBlock;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * The guest: vCPU threads {@code vcpu/N} that sweep their slice of a RAM block and increment
 * byte 0 of every page through the dirty-logging API, paced to the configured dirty rate (QEMU's
 * a-b test guest). The workload's whole state is in guest memory, so a destination resumes it
 * where the source stopped by reading the cursor back with {@link WorkloadChecker}.
 *
 * <p>{@link #pause} returns only after every vCPU has parked between two page writes, so RAM is
 * consistent from then on; {@link #resume} lets them go on.
 */
public final class Workload {
    /** Pacing quantum: each vCPU writes a batch of pages, then sleeps until the batch's deadline. */
    private static final long QUANTUM_NANOS = TimeUnit.MILLISECONDS.toNanos(5);
    private static final long PAUSE_TIMEOUT_MS = 5000;

    private final WorkloadSpec spec;
    private final RamBlock block;
    private final Vcpu[] vcpus;
    private final Object lock = new Object();
    private volatile boolean pauseRequested = true;
    private volatile boolean shutdown;
    private int parked;
    private boolean started;

    public Workload(WorkloadSpec spec, RamBlock block) {
        this.spec = spec;
        this.block = block;
        long pages = block.pages();
        if (pages < spec.vcpus()) {
            throw new MigrationException(Category.CONFIG, "workload has more vCPUs (" + spec.vcpus()
                    + ") than guest pages (" + pages + ")");
        }
        double pagesPerSecond = spec.dirtyRateMiB() * (1 << 20) / block.pageSize() / spec.vcpus();
        this.vcpus = new Vcpu[spec.vcpus()];
        for (int i = 0; i < vcpus.length; i++) {
            long from = pages * i / vcpus.length;
            long to = pages * (i + 1) / vcpus.length;
            vcpus[i] = new Vcpu(i, from, to, pagesPerSecond);
        }
    }

    public WorkloadSpec spec() {
        return spec;
    }

    /** Checks every vCPU slice (call with the workload paused for an exact answer). */
    public List<WorkloadChecker.Result> check() {
        List<WorkloadChecker.Result> out = new ArrayList<>();
        for (Vcpu v : vcpus) {
            out.add(WorkloadChecker.check(block, v.from, v.to));
        }
        return out;
    }

    /** Total pages written since this process started the workload. */
    public long pagesTouched() {
        long n = 0;
        for (Vcpu v : vcpus) {
            n += v.touched;
        }
        return n;
    }

    /**
     * Starts (first call) or resumes the vCPUs. On first start each vCPU takes its cursor from
     * guest memory, so a workload resumed on a migration destination continues where the source's
     * stopped.
     */
    public void resume() {
        synchronized (lock) {
            if (shutdown) {
                return;
            }
            if (!started) {
                started = true;
                for (Vcpu v : vcpus) {
                    WorkloadChecker.Result r = WorkloadChecker.check(block, v.from, v.to);
                    v.cursor = r.ok() ? r.cursor() : v.from;
                    Thread t = new Thread(v, "vcpu/" + v.index);
                    t.setDaemon(true);
                    v.thread = t;
                }
                pauseRequested = false;
                for (Vcpu v : vcpus) {
                    v.thread.start();
                }
                return;
            }
            pauseRequested = false;
            lock.notifyAll();
        }
    }

    /** Stops every vCPU between two page writes; returns when all have parked. */
    public void pause() {
        synchronized (lock) {
            pauseRequested = true;
            if (!started) {
                return;
            }
            long deadline = System.currentTimeMillis() + PAUSE_TIMEOUT_MS;
            while (parked < vcpus.length) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    throw new MigrationException(Category.TIMEOUT, "vCPUs did not stop within " + PAUSE_TIMEOUT_MS
                            + " ms (" + parked + " of " + vcpus.length + " parked)");
                }
                try {
                    lock.wait(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new MigrationException(Category.CANCELLED, "interrupted while stopping vCPUs");
                }
            }
        }
    }

    /** Ends the vCPU threads (process exit). */
    public void shutdown() {
        synchronized (lock) {
            shutdown = true;
            pauseRequested = true;
            lock.notifyAll();
        }
    }

    private void parkWhilePaused() {
        synchronized (lock) {
            parked++;
            lock.notifyAll();
            try {
                while (pauseRequested && !shutdown) {
                    lock.wait();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                parked--;
            }
        }
    }

    private final class Vcpu implements Runnable {
        final int index;
        final long from;
        final long to;
        final double pagesPerNano;
        volatile long touched;
        long cursor;
        Thread thread;

        Vcpu(int index, long from, long to, double pagesPerSecond) {
            this.index = index;
            this.from = from;
            this.to = to;
            this.pagesPerNano = pagesPerSecond / 1e9;
        }

        @Override
        public void run() {
            int shift = block.pageShift();
            long batch = Math.max(1, Math.round(pagesPerNano * QUANTUM_NANOS));
            long quantum = Math.max(1, Math.round(batch / pagesPerNano));
            long deadline = System.nanoTime();
            while (!shutdown) {
                if (pauseRequested) {
                    parkWhilePaused();
                    deadline = System.nanoTime();
                    continue;
                }
                long n = 0;
                for (; n < batch && !pauseRequested; n++) {
                    block.incrementByte(cursor << shift);
                    if (++cursor == to) {
                        cursor = from;
                    }
                }
                touched += n;
                deadline += quantum;
                long now = System.nanoTime();
                if (deadline > now) {
                    LockSupport.parkNanos(deadline - now);
                } else if (now - deadline > 20 * quantum) {
                    deadline = now; // fell far behind (GC, paused host): do not burst to catch up
                }
            }
        }
    }
}
