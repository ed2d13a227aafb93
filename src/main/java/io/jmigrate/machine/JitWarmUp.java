package io.jmigrate.machine;

import io.jmigrate.common.EventSink;
import io.jmigrate.memory.MemoryBackend;
import io.jmigrate.memory.RamBlock;
import io.jmigrate.migration.Capability;
import io.jmigrate.migration.IncomingMigration;
import io.jmigrate.migration.MigrationManager;
import io.jmigrate.migration.MigrationStatus;
import io.jmigrate.migration.OutgoingMigration;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * The JIT warm-up of a VM process ({@code jmigrate vm --jit-warm-up}): right after start-up, a
 * background thread migrates a small scratch guest between two scratch VMs inside this JVM, over
 * a UNIX socket, several times: precopy, then multifd with 2 and 4 channels. So the JIT has
 * compiled the send and receive loops of both sides (dirty scan, page records, zero-page check,
 * packet fill and validate, gathering writes, scattering reads) with C2 before the VM's first
 * real migration, instead of compiling them during it. A fresh JVM compiles about 1 s of C2 work
 * in the first seconds of its first multifd migration; on a small machine that competes with the
 * channel threads. (The AOT cache holds classes and profiles, not compiled code, in JDK 25.)
 *
 * <p>The scratch guests are anonymous memory of {@link #ROUND_BYTES} each, unmapped after each
 * round, so the warm-up adds at most two of them to the process's resident memory. The rounds
 * are many small migrations rather than one large one: C2 compiles a method after a number of
 * calls, and the per-packet methods are called once per 512 KiB.
 *
 * <p>It stops early, between rounds, when {@code busy} says the VM's own migration has begun,
 * and it never touches the VM's guest RAM or devices. Its state is QMP's
 * {@code x-jmigrate-query-jit-warm-up}.
 */
public final class JitWarmUp {
    /** Scratch guest RAM per round. */
    public static final long ROUND_BYTES = 64L << 20;
    /** Multifd channels per round; 0 is precopy. */
    private static final int[] ROUNDS = {0, 0, 2, 2, 4, 4, 4, 4};

    public enum Status {
        OFF("off"), RUNNING("running"), DONE("done"), STOPPED("stopped"), FAILED("failed");

        public final String qmpName;

        Status(String qmpName) {
            this.qmpName = qmpName;
        }
    }

    private final BooleanSupplier busy;
    private volatile Status status;
    private volatile int rounds;
    private volatile long startNanos;
    private volatile long endNanos;
    private volatile String error;

    private JitWarmUp(Status status, BooleanSupplier busy) {
        this.status = status;
        this.busy = busy;
    }

    /** No warm-up ({@code --jit-warm-up=off}). */
    public static JitWarmUp off() {
        return new JitWarmUp(Status.OFF, () -> true);
    }

    /**
     * Starts the warm-up on the daemon thread {@code mig/jit-warm-up}.
     *
     * @param busy whether the VM's own migration has begun (the warm-up then stops)
     */
    public static JitWarmUp start(BooleanSupplier busy) {
        JitWarmUp w = new JitWarmUp(Status.RUNNING, busy);
        w.startNanos = System.nanoTime();
        Thread.ofPlatform().name("mig/jit-warm-up").daemon(true).start(w::run);
        return w;
    }

    public Status status() {
        return status;
    }

    /** {@code x-jmigrate-query-jit-warm-up}: status, rounds done, time so far, error if failed. */
    public Map<String, Object> info() {
        Map<String, Object> m = new LinkedHashMap<>();
        Status s = status;
        m.put("status", s.qmpName);
        if (s != Status.OFF) {
            m.put("rounds", rounds);
            m.put("total-rounds", ROUNDS.length);
            long end = s == Status.RUNNING ? System.nanoTime() : endNanos;
            m.put("time", (end - startNanos) / 1_000_000);
        }
        if (error != null) {
            m.put("error-desc", error);
        }
        return m;
    }

    private void run() {
        Path dir = null;
        try {
            dir = Files.createTempDirectory("jmigrate-jit-warm-up");
            for (int i = 0; i < ROUNDS.length; i++) {
                if (busy.getAsBoolean()) {
                    finish(Status.STOPPED, null);
                    return;
                }
                migrate(dir, ROUND_BYTES, ROUNDS[i], i);
                rounds = i + 1;
            }
            finish(Status.DONE, null);
        } catch (Exception | OutOfMemoryError e) {
            finish(Status.FAILED, "JIT warm-up round " + (rounds + 1) + " failed: " + e.getMessage());
            System.err.println("jmigrate vm: " + error + " (the VM is unaffected; its first migration "
                    + "compiles its loops as it runs)");
        } finally {
            if (dir != null) {
                deleteTree(dir);
            }
        }
    }

    private void finish(Status s, String err) {
        endNanos = System.nanoTime();
        error = err;
        status = s;
    }

    /**
     * Migrates one scratch guest of {@code bytes} of incompressible RAM from one scratch VM to
     * another over a UNIX socket in {@code dir}, and waits until both sides are done with it.
     */
    static void migrate(Path dir, long bytes, int channels, int n) throws Exception {
        VmConfig srcCfg = new VmConfig("jit-warm-up-src", null, bytes, null, false, MachineType.NONE, true, null,
                Map.of(), MemoryBackend.RAM);
        VmConfig dstCfg = new VmConfig("jit-warm-up-dst", null, bytes, null, false, MachineType.NONE, true, null,
                Map.of(), MemoryBackend.RAM);
        try (Vm src = new Vm(srcCfg, false); Vm dst = new Vm(dstCfg, true)) {
            fill(src.ramBlocks().getFirst());
            MigrationManager s = new MigrationManager(src, EventSink.NONE);
            MigrationManager d = new MigrationManager(dst, EventSink.NONE);
            if (channels > 0) {
                for (MigrationManager m : List.of(s, d)) {
                    m.setCapabilities(List.of(Map.entry(Capability.MULTIFD, true)));
                    m.setParameters(Map.of("multifd-channels", (long) channels));
                }
            }
            s.setParameters(Map.of("max-bandwidth", 100_000_000_000L));
            String uri = "unix:" + dir.resolve("mig" + n + ".sock");
            IncomingMigration in = d.startIncoming(uri, false);
            OutgoingMigration out = s.migrate(uri);
            // both threads end (the destination after loading everything) before the VMs unmap RAM
            if (!out.join(120_000) || !in.join(120_000)) {
                s.cancel();
                throw new IllegalStateException("scratch migration " + n + " did not end within 120 s");
            }
            MigrationStatus os = out.state().get();
            MigrationStatus is = in.state().get();
            if (os != MigrationStatus.COMPLETED || is != MigrationStatus.COMPLETED) {
                String why = out.error() != null ? out.error().getMessage()
                        : in.error() != null ? in.error().getMessage() : "";
                throw new IllegalStateException("scratch migration " + n + " ended " + os.qmpName + " / "
                        + is.qmpName + (why.isEmpty() ? "" : ": " + why));
            }
        }
    }

    /** Incompressible bytes (xorshift), fast enough not to dominate a round. */
    public static void fill(RamBlock b) {
        long x = 0x9E3779B97F4A7C15L;
        MemorySegment seg = b.segment();
        for (long off = 0; off < seg.byteSize(); off += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            seg.set(ValueLayout.JAVA_LONG_UNALIGNED, off, x);
        }
    }

    private static void deleteTree(Path dir) {
        try (var s = Files.list(dir)) {
            for (Path p : s.toList()) {
                Files.deleteIfExists(p);
            }
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            // a temp directory left behind is harmless
        }
    }
}
