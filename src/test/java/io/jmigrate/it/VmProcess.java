package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.qmp.QmpClient;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** A {@code jmigrate vm} process started from {@code target/jmigrate.jar}, driven over QMP. */
final class VmProcess implements AutoCloseable {
    final String name;
    final Path qmpPath;
    final Process process;
    final Path log;
    final QmpClient qmp;

    private VmProcess(String name, Path qmpPath, Process process, Path log, QmpClient qmp) {
        this.name = name;
        this.qmpPath = qmpPath;
        this.process = process;
        this.log = log;
        this.qmp = qmp;
    }

    /** Processes the tests started; a test JVM that ends early (timeout, Ctrl-C) takes them along. */
    private static final java.util.Set<Process> STARTED = java.util.concurrent.ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> STARTED.forEach(Process::destroyForcibly),
                "it/kill-leftover-processes"));
    }

    /** Remembers {@code p} so that it does not outlive the test JVM (VMs and QEMU wait for 'quit' forever). */
    static Process track(Process p) {
        STARTED.add(p);
        p.onExit().thenRun(() -> STARTED.remove(p));
        return p;
    }

    static Path jar() {
        String p = System.getProperty("jmigrate.jar");
        if (p == null || !Files.exists(Path.of(p))) {
            throw new IllegalStateException("system property jmigrate.jar must name the built jar (run mvn verify)");
        }
        return Path.of(p);
    }

    static String java() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    /** Runs {@code jmigrate ARGS} to completion and returns its exit code; output goes to {@code out}. */
    static int run(Path out, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(java(), "-Xmx128m", "--enable-native-access=ALL-UNNAMED", "-jar",
                jar().toString()));
        cmd.addAll(List.of(args));
        Process p = track(new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile()).start());
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("jmigrate " + String.join(" ", args) + " did not finish within 120 s");
        }
        return p.exitValue();
    }

    /** Starts {@code jmigrate vm --name NAME --qmp unix:DIR/NAME.qmp ARGS} and connects to its QMP. */
    static VmProcess start(Path dir, String name, String... args) throws Exception {
        return start(dir, name, List.of(), args);
    }

    /** As {@link #start(Path, String, String...)} with extra JVM options (e.g. a JFR recording). */
    static VmProcess start(Path dir, String name, List<String> jvmOptions, String... args) throws Exception {
        return start(dir, name, Duration.ofSeconds(30), jvmOptions, args);
    }

    /**
     * As {@link #start(Path, String, List, String...)}, allowing {@code startWithin} for the QMP
     * socket and greeting (a VM that fills gigabytes of RAM before it serves QMP needs more than
     * the default 30 s on a loaded machine).
     */
    static VmProcess start(Path dir, String name, Duration startWithin, List<String> jvmOptions, String... args)
            throws Exception {
        Path qmp = dir.resolve(name + ".qmp");
        Path log = dir.resolve(name + ".log");
        List<String> cmd = new ArrayList<>(List.of(java(), "-Xmx96m", "-XX:+UseSerialGC"));
        cmd.addAll(jvmOptions);
        // every test VM records digests (x-jmigrate-query-digest), also one that loads --incoming file: at once
        cmd.addAll(List.of("--enable-native-access=ALL-UNNAMED", "-jar", jar().toString(), "vm", "--name", name,
                "--qmp", "unix:" + qmp, "--global", "migration.x-jmigrate-digest=on"));
        if (java.util.Arrays.stream(args).noneMatch(a -> a.startsWith("--jit-warm-up"))) {
            // test VMs migrate small guests and run many at once: no background warm-up competing
            cmd.addAll(List.of("--jit-warm-up", "off"));
        }
        cmd.addAll(List.of(args));
        Process p = track(new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start());
        long deadline = System.currentTimeMillis() + startWithin.toMillis();
        while (!Files.exists(qmp)) {
            if (!p.isAlive()) {
                throw new AssertionError("vm " + name + " exited with " + p.exitValue() + ": " + Files.readString(log));
            }
            if (System.currentTimeMillis() > deadline) {
                p.destroyForcibly();
                throw new AssertionError("vm " + name + " did not open its QMP socket in "
                        + startWithin.toSeconds() + " s: " + Files.readString(log));
            }
            Thread.sleep(50);
        }
        QmpClient c = null;
        while (c == null) {
            try {
                c = QmpClient.connect("unix:" + qmp);
            } catch (RuntimeException e) {
                // the socket file appears at bind(), a moment before listen(): retry
                if (System.currentTimeMillis() > deadline || !p.isAlive()) {
                    p.destroyForcibly();
                    throw new AssertionError("cannot connect to vm " + name + ": " + e.getMessage() + "\n"
                            + Files.readString(log), e);
                }
                Thread.sleep(50);
            }
        }
        // an incoming migration from a file may already be loading; then this is refused (and not needed)
        try {
            c.call("migrate-set-capabilities", Map.of("capabilities",
                    List.of(Map.of("capability", "events", "state", true))));
        } catch (MigrationException e) {
            c.close();
            p.destroyForcibly();
            throw new AssertionError("vm " + name + ": QMP failed right after connecting: " + e.getMessage() + "\n"
                    + Files.readString(log), e);
        }
        return new VmProcess(name, qmp, p, log, c);
    }

    JsonNode exec(String cmd) {
        return exec(cmd, null);
    }

    /**
     * Executes a QMP command. If the connection fails, the error says whether the VM process is
     * still alive (and if not, its exit code and signal) and shows its log: a dropped QMP
     * session and a dead process look the same from the client's side.
     */
    JsonNode exec(String cmd, Map<String, ?> args) {
        try {
            return qmp.execute(cmd, args);
        } catch (MigrationException e) {
            if (e.category() == MigrationException.Category.STATE) {
                throw e; // a QMP error reply: the connection is fine
            }
            throw new AssertionError("vm " + name + ": QMP '" + cmd + "' failed: " + e.getMessage() + "\n"
                    + describeProcess(), e);
        }
    }

    /** Whether the process runs (or how it ended), and its log. */
    String describeProcess() {
        String state;
        try {
            if (process.waitFor(2, TimeUnit.SECONDS)) {
                int rc = process.exitValue();
                state = "the vm process (pid " + process.pid() + ") has exited with code " + rc
                        + (rc > 128 ? " (signal " + (rc - 128) + ")" : "");
            } else {
                state = "the vm process (pid " + process.pid() + ") is still running";
            }
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            state = "interrupted while checking the vm process";
        }
        String text;
        try {
            text = Files.readString(log);
        } catch (IOException io) {
            text = "(cannot read " + log + ": " + io.getMessage() + ")";
        }
        return state + "; its log:\n" + text;
    }

    String status() {
        return exec("query-status").path("status").asText();
    }

    String migrationStatus() {
        return exec("query-migrate").path("status").asText();
    }

    /** Waits until the log has a match of {@code regex} and returns its group 1. */
    String awaitLog(String regex, Duration within) throws Exception {
        java.util.regex.Pattern pat = java.util.regex.Pattern.compile(regex);
        long deadline = System.nanoTime() + within.toNanos();
        while (true) {
            java.util.regex.Matcher m = pat.matcher(Files.readString(log));
            if (m.find()) {
                return m.group(1);
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("vm " + name + ": no '" + regex + "' in its log after " + within + "; "
                        + describeProcess());
            }
            Thread.sleep(50);
        }
    }

    /** Polls query-migrate until its status satisfies {@code done}; returns the final answer. */
    JsonNode awaitMigration(Predicate<String> done, Duration within) throws Exception {
        long deadline = System.nanoTime() + within.toNanos();
        while (true) {
            JsonNode info = exec("query-migrate");
            if (done.test(info.path("status").asText())) {
                return info;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("migration still " + info + " after " + within + "\n" + Files.readString(log));
            }
            Thread.sleep(50);
        }
    }

    /** Polls {@code command} (no arguments) until its answer satisfies {@code done}; returns that answer. */
    JsonNode await(String command, Predicate<JsonNode> done, Duration within) throws Exception {
        long deadline = System.nanoTime() + within.toNanos();
        while (true) {
            JsonNode r = exec(command);
            if (done.test(r)) {
                return r;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError(command + " still answers " + r + " after " + within + "; "
                        + describeProcess());
            }
            Thread.sleep(50);
        }
    }

    /** The guest's vCPUs have written at least {@code pages} pages in this process. */
    JsonNode awaitPagesTouched(long pages) throws Exception {
        return await("x-jmigrate-query-workload", w -> w.path("pages-touched").asLong() >= pages,
                Duration.ofSeconds(30));
    }

    /** The running migration has put at least {@code bytes} on the wire. */
    JsonNode awaitTransferred(long bytes) throws Exception {
        return await("query-migrate", i -> i.path("ram").path("transferred").asLong() >= bytes,
                Duration.ofSeconds(30));
    }

    static boolean isFinal(String s) {
        return s.equals("completed") || s.equals("failed") || s.equals("cancelled");
    }

    void kill() throws InterruptedException {
        qmp.close();
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    @Override
    public void close() throws Exception {
        qmp.close();
        process.destroy();
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(5, TimeUnit.SECONDS);
        }
    }
}
