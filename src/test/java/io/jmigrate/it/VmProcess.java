package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
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
    final Path qmpPath;
    final Process process;
    final Path log;
    final QmpClient qmp;

    private VmProcess(Path qmpPath, Process process, Path log, QmpClient qmp) {
        this.qmpPath = qmpPath;
        this.process = process;
        this.log = log;
        this.qmp = qmp;
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
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile()).start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("jmigrate " + String.join(" ", args) + " did not finish within 120 s");
        }
        return p.exitValue();
    }

    /** Starts {@code jmigrate vm --name NAME --qmp unix:DIR/NAME.qmp ARGS} and connects to its QMP. */
    static VmProcess start(Path dir, String name, String... args) throws Exception {
        Path qmp = dir.resolve(name + ".qmp");
        Path log = dir.resolve(name + ".log");
        List<String> cmd = new ArrayList<>(List.of(java(), "-Xmx96m", "-XX:+UseSerialGC",
                "--enable-native-access=ALL-UNNAMED", "-jar", jar().toString(), "vm", "--name", name,
                "--qmp", "unix:" + qmp));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.currentTimeMillis() + 30_000;
        while (!Files.exists(qmp)) {
            if (!p.isAlive()) {
                throw new AssertionError("vm " + name + " exited with " + p.exitValue() + ": " + Files.readString(log));
            }
            if (System.currentTimeMillis() > deadline) {
                p.destroyForcibly();
                throw new AssertionError("vm " + name + " did not open its QMP socket in 30 s: " + Files.readString(log));
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
        c.call("migrate-set-capabilities", Map.of("capabilities",
                List.of(Map.of("capability", "events", "state", true))));
        return new VmProcess(qmp, p, log, c);
    }

    JsonNode exec(String cmd) {
        return qmp.execute(cmd, null);
    }

    JsonNode exec(String cmd, Map<String, ?> args) {
        return qmp.execute(cmd, args);
    }

    String status() {
        return exec("query-status").path("status").asText();
    }

    String migrationStatus() {
        return exec("query-migrate").path("status").asText();
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
