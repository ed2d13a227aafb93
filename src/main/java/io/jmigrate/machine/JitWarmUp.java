package io.jmigrate.machine;

import io.jmigrate.memory.RamBlock;

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
 * a UNIX socket and driven over QMP, several times: precopy, then multifd with 2 and 4 channels
 * (the {@link Round} is the CLI's, the one the AOT cache's training run is made of). So the JIT has
 * compiled the send and receive loops of both sides (dirty scan, page records, zero-page check,
 * packet fill and validate, gathering writes, scattering reads, QMP's query-migrate) with C2
 * before the VM's first real migration, instead of compiling them during it. A fresh JVM compiles about 1 s of C2 work
 * in the first seconds of its first multifd migration; on a small machine that competes with the
 * channel threads. (The AOT cache holds classes and profiles, not compiled code, in JDK 25. Its
 * training takes the {@link #HOT} methods to C2, so under it they are compiled within the first
 * rounds, from the stored profiles; under a cache whose training had left them at C1 they stayed
 * at tier 2 through all {@link #MAX_ROUNDS}.)
 *
 * <p>The scratch guests are anonymous memory of {@link #ROUND_BYTES} each, unmapped after each
 * round, so the warm-up adds at most two of them to the process's resident memory. The rounds
 * are many small migrations rather than one large one: C2 compiles a method after a number of
 * calls, and the per-packet methods are called once per 512 KiB. After the first 8 rounds it
 * asks the JVM which of the {@link #HOT} methods C2 has compiled, and runs more rounds (at most
 * {@link #MAX_ROUNDS} in all) until it has compiled all of them.
 *
 * <p>It stops early, between rounds, when {@code busy} says the VM's own migration has begun,
 * and it never touches the VM's guest RAM or devices. Its state is QMP's
 * {@code x-jmigrate-query-jit-warm-up}.
 */
public final class JitWarmUp {
    /** Scratch guest RAM per round. */
    public static final long ROUND_BYTES = 64L << 20;
    /** Multifd channels of the first rounds; 0 is precopy. */
    private static final int[] ROUNDS = {0, 0, 2, 2, 4, 4, 4, 4};
    /** Rounds at most: after the first ones, 4-channel and precopy rounds until {@link #HOT} are compiled. */
    static final int MAX_ROUNDS = 32;

    /**
     * The methods that run once per page or per packet on either side, as HotSpot names them
     * ({@code Compiler.codelist}): the warm-up goes on until C2 has compiled each of them. The
     * per-packet ones are called once per 512 KiB, so a few rounds do not always get them there
     * (JitWarmUpTest checks that each name still exists).
     */
    static final List<String> HOT = List.of(
            "io.jmigrate.multifd.MultifdSender$SendChannel.step(",
            "io.jmigrate.multifd.MultifdSender$SendChannel.writeRam(",
            "io.jmigrate.multifd.MultifdSender$SendChannel.fillPacket(",
            "io.jmigrate.multifd.MultifdReceiver$RecvChannel.readPacket(",
            "io.jmigrate.multifd.RamPacket.validate(",
            "io.jmigrate.ram.RamSaver.sendNextDirty(",
            "io.jmigrate.ram.RamSectionReader.readSection(");
    /** Those of {@link #HOT} that precopy runs (the rest are multifd's). */
    private static final List<String> PRECOPY_HOT =
            HOT.stream().filter(m -> m.startsWith("io.jmigrate.ram.")).toList();

    public enum Status {
        OFF("off"), RUNNING("running"), DONE("done"), STOPPED("stopped"), FAILED("failed");

        public final String qmpName;

        Status(String qmpName) {
            this.qmpName = qmpName;
        }
    }

    /** One round: a migration of a scratch guest with {@code channels} multifd channels (0: precopy). */
    @FunctionalInterface
    public interface Round {
        void run(Path dir, int channels, int n) throws Exception;
    }

    private final BooleanSupplier busy;
    private final Round round;
    private volatile Status status;
    private volatile int rounds;
    private volatile long startNanos;
    private volatile long endNanos;
    private volatile String error;
    private volatile boolean hotCompiled;

    private JitWarmUp(Status status, BooleanSupplier busy, Round round) {
        this.status = status;
        this.busy = busy;
        this.round = round;
    }

    /** No warm-up ({@code --jit-warm-up=off}). */
    public static JitWarmUp off() {
        return new JitWarmUp(Status.OFF, () -> true, null);
    }

    /**
     * Starts the warm-up on the daemon thread {@code mig/jit-warm-up}.
     *
     * @param busy  whether the VM's own migration has begun (the warm-up then stops)
     * @param round migrates a scratch guest of {@link #ROUND_BYTES} between two scratch VMs in
     *              this JVM, in a directory of its own for sockets, and waits until both sides
     *              are done with it
     */
    public static JitWarmUp start(BooleanSupplier busy, Round round) {
        JitWarmUp w = new JitWarmUp(Status.RUNNING, busy, round);
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
            m.put("hot-methods-compiled", hotCompiled);
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
            for (int i = 0; ; i++) {
                int channels;
                if (i < ROUNDS.length) {
                    channels = ROUNDS[i];
                } else {
                    awaitCompilerQuiet();
                    List<String> missing = notCompiled();
                    hotCompiled = missing.isEmpty();
                    if (hotCompiled || i == MAX_ROUNDS) {
                        break;
                    }
                    channels = PRECOPY_HOT.containsAll(missing) ? 0 : 4;
                }
                if (busy.getAsBoolean()) {
                    finish(Status.STOPPED, null);
                    return;
                }
                round.run(dir, channels, i);
                rounds = i + 1;
            }
            // the rounds' garbage (scratch VMs, QMP's JSON) goes now, not in a young collection
            // that the first real migration's allocations would trigger
            System.gc();
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

    /**
     * Waits until the JIT has compiled what the rounds queued: its total compilation time stays
     * the same for {@link #QUIET_MS} (at most {@link #QUIET_MAX_MS} in all). Reporting done while
     * C2 still works through the queue would hand that work to the VM's first migration.
     */
    private void awaitCompilerQuiet() throws InterruptedException {
        java.lang.management.CompilationMXBean jit = java.lang.management.ManagementFactory.getCompilationMXBean();
        if (jit == null || !jit.isCompilationTimeMonitoringSupported()) {
            return;
        }
        long deadline = System.nanoTime() + QUIET_MAX_MS * 1_000_000L;
        long last = jit.getTotalCompilationTime();
        while (System.nanoTime() < deadline && !busy.getAsBoolean()) {
            Thread.sleep(QUIET_MS);
            long now = jit.getTotalCompilationTime();
            if (now == last) {
                return;
            }
            last = now;
        }
    }

    /**
     * Those of {@link #HOT} that have no C2 code (level 4, in use) yet, from the JVM's
     * {@code Compiler.codelist} diagnostic command; all of them if it cannot be asked.
     */
    static List<String> notCompiled() {
        String list;
        try {
            javax.management.MBeanServer s = java.lang.management.ManagementFactory.getPlatformMBeanServer();
            list = (String) s.invoke(new javax.management.ObjectName("com.sun.management:type=DiagnosticCommand"),
                    "compilerCodelist", new Object[] {new String[0]}, new String[] {String[].class.getName()});
        } catch (Exception | LinkageError e) {
            return HOT;
        }
        java.util.Set<String> done = new java.util.HashSet<>();
        for (String line : list.split("\n")) {
            // "ID LEVEL STATE class.method(signature) [addresses]", state 0 = in use
            String[] f = line.trim().split(" ", 4);
            if (f.length == 4 && f[1].equals("4") && f[2].equals("0")) {
                for (String h : HOT) {
                    if (f[3].startsWith(h)) {
                        done.add(h);
                    }
                }
            }
        }
        return HOT.stream().filter(h -> !done.contains(h)).toList();
    }

    private static final long QUIET_MS = 100;
    private static final long QUIET_MAX_MS = 10_000;

    private void finish(Status s, String err) {
        endNanos = System.nanoTime();
        error = err;
        status = s;
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
