package io.jmigrate.bench;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An emulated network link for {@code --link RATE[,delay=D]}: two network namespaces, one for
 * the migration source and one for the destination, joined by a veth pair whose two ends are
 * shaped by tc, so a benchmark sees a 10, 25 or 100 GbE link instead of loopback.
 *
 * <pre>
 *   netns jmigrate-TAG-src                       netns jmigrate-TAG-dst
 *   ┌─────────────────────────────┐            ┌─────────────────────────────┐
 *   │ source VM process           │            │ destination VM process      │
 *   │ jmTAGs 10.199.0.1/30        │◄──veth────►│ jmTAGd 10.199.0.2/30        │
 *   │ root tbf rate R             │            │ root tbf rate R             │
 *   │  └ netem delay D (if D > 0) │            │  └ netem delay D (if D > 0) │
 *   └─────────────────────────────┘            └─────────────────────────────┘
 * </pre>
 *
 * <p>Both directions are shaped (each end's egress): the migration stream one way, the return
 * path the other. The veth ends are created directly inside the namespaces, so nothing appears
 * in the host's namespace and only the two addresses above are used, which no other network
 * sees. Processes are put on either side with {@link #inSource} and {@link #inDestination}
 * ({@code ip netns exec}, which execs, so the started process is the command itself). QMP goes
 * over UNIX sockets in the file system, which namespaces do not separate.
 *
 * <p>Names carry this process's pid, a counter and random characters, so parallel runs never
 * clash. {@link #close} removes both namespaces (and with them the veth pair); a shutdown hook
 * does the same if the JVM exits first, and a failed set-up removes what it had made before
 * throwing. Close every process started inside before closing the link: a namespace that still
 * has processes is unmounted at once but lives on until they exit.
 *
 * <p>Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's {@code ip} and {@code tc};
 * {@link #missingPrerequisites()} says what is missing, {@link #create} refuses with that text.
 * The delay needs the kernel's netem qdisc (sch_netem); kernels without it can still shape the
 * rate, and a delay request then fails naming the missing qdisc.
 */
public final class LinkEmulation implements AutoCloseable {
    public static final String SOURCE_ADDRESS = "10.199.0.1";
    public static final String DESTINATION_ADDRESS = "10.199.0.2";
    private static final int PREFIX = 30;
    private static final long COMMAND_TIMEOUT_S = 20;
    private static final AtomicInteger COUNTER = new AtomicInteger();

    private final LinkSpec spec;
    private final String tag;
    private final String srcNs;
    private final String dstNs;
    private final String srcDev;
    private final String dstDev;
    private final String ip;
    private final String tc;
    /** Undo steps of what exists, newest first. */
    private final Deque<List<String>> undo = new ArrayDeque<>();
    private final Thread shutdownHook;
    private boolean closed;

    private LinkEmulation(LinkSpec spec, String ip, String tc) {
        this.spec = spec;
        this.ip = ip;
        this.tc = tc;
        String rnd = Integer.toString(36 * 36 + ThreadLocalRandom.current().nextInt(36 * 36 * 35), 36);
        this.tag = Long.toString(ProcessHandle.current().pid(), 36) + Integer.toString(COUNTER.incrementAndGet(), 36)
                + rnd;
        this.srcNs = "jmigrate-" + tag + "-src";
        this.dstNs = "jmigrate-" + tag + "-dst";
        // interface names are at most 15 characters: "jm" + pid (<= 5) + counter + 3 random + side
        this.srcDev = "jm" + tag + "s";
        this.dstDev = "jm" + tag + "d";
        this.shutdownHook = new Thread(this::removeAll, "link-emulation-cleanup/" + tag);
    }

    /**
     * What is missing to emulate a link here, one sentence each (empty if nothing): not root, no
     * {@code ip}, no {@code tc}.
     */
    public static List<String> missingPrerequisites() {
        List<String> missing = new ArrayList<>();
        long euid = effectiveUid();
        if (euid != 0) {
            missing.add("root: network namespaces and tc need CAP_NET_ADMIN and CAP_SYS_ADMIN, and this process runs "
                    + "as uid " + (euid < 0 ? "(unknown)" : euid) + " (run as root or with sudo)");
        }
        if (findTool("ip") == null) {
            missing.add("ip (iproute2) is not on PATH, /usr/sbin or /sbin (apt-get install -y iproute2)");
        }
        if (findTool("tc") == null) {
            missing.add("tc (iproute2) is not on PATH, /usr/sbin or /sbin (apt-get install -y iproute2)");
        }
        return missing;
    }

    /** Sets the link up, or throws naming what is missing or which step failed (and removes what it made). */
    public static LinkEmulation create(LinkSpec spec) {
        return create(spec, l -> {
        });
    }

    /** {@link #create(LinkSpec)}, then {@code afterSetUp} (tests: a failure there must still remove the link). */
    static LinkEmulation create(LinkSpec spec, java.util.function.Consumer<LinkEmulation> afterSetUp) {
        List<String> missing = missingPrerequisites();
        if (!missing.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "--link " + spec.describe() + " cannot be emulated, missing: "
                    + String.join("; ", missing));
        }
        LinkEmulation l = new LinkEmulation(spec, findTool("ip"), findTool("tc"));
        Runtime.getRuntime().addShutdownHook(l.shutdownHook);
        try {
            l.setUp();
            afterSetUp.accept(l);
        } catch (RuntimeException e) {
            l.close();
            throw e;
        }
        return l;
    }

    private void setUp() {
        run(List.of(ip, "netns", "add", srcNs));
        undo.push(List.of(ip, "netns", "del", srcNs));
        run(List.of(ip, "netns", "add", dstNs));
        undo.push(List.of(ip, "netns", "del", dstNs));
        run(List.of(ip, "link", "add", "name", srcDev, "netns", srcNs, "type", "veth", "peer", "name", dstDev,
                "netns", dstNs));
        configureEnd(srcNs, srcDev, SOURCE_ADDRESS);
        configureEnd(dstNs, dstDev, DESTINATION_ADDRESS);
    }

    private void configureEnd(String ns, String dev, String address) {
        run(List.of(ip, "-n", ns, "link", "set", "lo", "up"));
        run(List.of(ip, "-n", ns, "addr", "add", address + "/" + PREFIX, "dev", dev));
        run(List.of(ip, "-n", ns, "link", "set", dev, "up"));
        // tbf: the bucket holds 1 ms of traffic, and never less than two 64 KiB GSO segments
        long burst = Math.max(128 * 1024, (long) (spec.bytesPerSecond() / 1000));
        run(List.of(tc, "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "tbf", "rate", spec.tcRate(),
                "burst", Long.toString(burst), "latency", "50ms"));
        if (!spec.delay().isZero()) {
            try {
                run(List.of(tc, "-n", ns, "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "netem",
                        "delay", spec.tcDelay(), "limit", "100000"));
            } catch (MigrationException e) {
                if (e.getMessage().contains("qdisc kind is unknown")) {
                    throw new MigrationException(Category.CONFIG, "--link delay=" + spec.tcDelay() + " needs the "
                            + "kernel's netem qdisc (sch_netem, CONFIG_NET_SCH_NETEM), which this kernel does not "
                            + "have; the rate alone works (drop ,delay=...)", e);
                }
                throw e;
            }
        }
    }

    public LinkSpec spec() {
        return spec;
    }

    public String sourceNamespace() {
        return srcNs;
    }

    public String destinationNamespace() {
        return dstNs;
    }

    /** The source end's address (inside the source namespace). */
    public String sourceAddress() {
        return SOURCE_ADDRESS;
    }

    /** The destination end's address (inside the destination namespace): listen and connect here. */
    public String destinationAddress() {
        return DESTINATION_ADDRESS;
    }

    /** The veth end's name in the source namespace. */
    public String sourceDevice() {
        return srcDev;
    }

    public String destinationDevice() {
        return dstDev;
    }

    /** {@code command} run inside the source namespace. */
    public List<String> inSource(List<String> command) {
        return inNamespace(srcNs, command);
    }

    /** {@code command} run inside the destination namespace. */
    public List<String> inDestination(List<String> command) {
        return inNamespace(dstNs, command);
    }

    private List<String> inNamespace(String ns, List<String> command) {
        List<String> c = new ArrayList<>(List.of(ip, "netns", "exec", ns));
        c.addAll(command);
        return c;
    }

    /** {@code tc -s qdisc show} of one end, for reports and tests. */
    public String qdiscStats(boolean sourceEnd) {
        return run(List.of(tc, "-n", sourceEnd ? srcNs : dstNs, "-s", "qdisc", "show", "dev",
                sourceEnd ? srcDev : dstDev));
    }

    /** Whether a namespace of this name exists (as {@code ip netns list} shows). */
    public static boolean namespaceExists(String name) {
        return Files.exists(Path.of("/run/netns", name));
    }

    /** Removes both namespaces and with them the veth pair; idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        MigrationException failure = removeAll();
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException shuttingDown) {
            // the hook is running or about to: it finds nothing left to remove
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Runs every undo step, newest first; returns the first failure (with later ones suppressed). */
    private synchronized MigrationException removeAll() {
        MigrationException first = null;
        while (!undo.isEmpty()) {
            List<String> step = undo.pop();
            try {
                run(step);
            } catch (MigrationException e) {
                if (first == null) {
                    first = new MigrationException(Category.IO, "link emulation " + tag + ": cleanup failed: "
                            + e.getMessage(), e);
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        return first;
    }

    /** Runs one iproute2 command; its output, or an exception with the command and its output. */
    private static String run(List<String> command) {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            p.getOutputStream().close();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(COMMAND_TIMEOUT_S, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new MigrationException(Category.TIMEOUT, "'" + String.join(" ", command) + "' did not finish "
                        + "within " + COMMAND_TIMEOUT_S + " s");
            }
            String text = new String(out, StandardCharsets.UTF_8).strip();
            if (p.exitValue() != 0) {
                throw new MigrationException(Category.IO, "'" + String.join(" ", command) + "' failed (exit "
                        + p.exitValue() + "): " + (text.isEmpty() ? "(no output)" : text));
            }
            return text;
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot run '" + String.join(" ", command) + "': "
                    + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MigrationException(Category.CANCELLED, "interrupted running '" + String.join(" ", command) + "'");
        }
    }

    /** The tool's path on PATH, /usr/sbin or /sbin, or null. */
    static String findTool(String name) {
        List<String> dirs = new ArrayList<>(List.of(System.getenv().getOrDefault("PATH", "").split(":")));
        dirs.addAll(List.of("/usr/sbin", "/sbin", "/usr/bin", "/bin"));
        for (String d : dirs) {
            if (d.isEmpty()) {
                continue;
            }
            Path p = Path.of(d, name);
            if (Files.isRegularFile(p) && Files.isExecutable(p)) {
                return p.toString();
            }
        }
        return null;
    }

    /** The effective uid from /proc/self/status, or -1 if unreadable. */
    private static long effectiveUid() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("Uid:")) {
                    return Long.parseLong(line.substring(4).trim().split("\\s+")[1]);
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    @Override
    public String toString() {
        return "link " + spec.describe() + " between netns " + srcNs + " (" + SOURCE_ADDRESS + ") and " + dstNs + " ("
                + DESTINATION_ADDRESS + ")";
    }
}
