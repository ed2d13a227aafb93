package io.jmigrate.bench;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.qmp.QmpClient;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** One started VM process (either engine) and its QMP connection. */
final class Peer implements AutoCloseable {
    private static final Duration START_TIMEOUT = Duration.ofSeconds(60);

    final String name;
    final Process process;
    final Path log;
    final QmpClient qmp;

    private Peer(String name, Process process, Path log, QmpClient qmp) {
        this.name = name;
        this.process = process;
        this.log = log;
        this.qmp = qmp;
    }

    /** Starts {@code command}, waits for its QMP socket and negotiates (within 60 s). */
    static Peer start(String name, List<String> command, Path qmpSocket, Path log) {
        try {
            Files.deleteIfExists(qmpSocket);
            Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
            while (true) {
                if (!p.isAlive()) {
                    throw new MigrationException(Category.IO, name + " exited with status " + p.exitValue()
                            + " before opening its QMP socket: " + tail(log) + "\n  command: " + String.join(" ", command));
                }
                if (Files.exists(qmpSocket)) {
                    try {
                        QmpClient c = QmpClient.connect("unix:" + qmpSocket);
                        return new Peer(name, p, log, c);
                    } catch (MigrationException e) {
                        // the socket file appears at bind(), a moment before listen(): retry
                    }
                }
                if (System.nanoTime() > deadline) {
                    p.destroyForcibly();
                    throw new MigrationException(Category.TIMEOUT, name + " did not accept QMP on " + qmpSocket
                            + " within " + START_TIMEOUT.toSeconds() + " s: " + tail(log));
                }
                Thread.sleep(20);
            }
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot start " + name + " (" + command.getFirst() + "): "
                    + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MigrationException(Category.CANCELLED, "interrupted while starting " + name);
        }
    }

    JsonNode exec(String command, Map<String, ?> args) {
        return qmp.execute(command, args);
    }

    /** The QEMU version in the QMP greeting, e.g. "7.2.19", or "" if absent. */
    String version() {
        JsonNode q = qmp.greeting().path("QMP").path("version").path("qemu");
        if (q.isMissingNode()) {
            return "";
        }
        return q.path("major").asInt() + "." + q.path("minor").asInt() + "." + q.path("micro").asInt();
    }

    /**
     * Waits until a jmigrate VM's JIT warm-up ({@code x-jmigrate-query-jit-warm-up}) is no longer
     * running, so that the measured migration neither competes with it nor compiles its loops as
     * it runs, as in a VM that has been up for a while. Then resets the process's peak RSS, so
     * that the peak the benchmark reports is the migration's, not the warm-up's scratch guests'.
     * A QEMU peer (no such command) returns at once.
     */
    void awaitJitWarmUp(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            String st;
            try {
                st = exec("x-jmigrate-query-jit-warm-up", null).path("status").asText();
            } catch (MigrationException e) {
                return; // QEMU
            }
            if (!st.equals("running")) {
                break;
            }
            if (System.nanoTime() > deadline) {
                throw new MigrationException(Category.TIMEOUT, name + ": its JIT warm-up still runs after "
                        + timeout.toSeconds() + " s (see x-jmigrate-query-jit-warm-up)");
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new MigrationException(Category.CANCELLED, "interrupted while waiting for " + name);
            }
        }
        try {
            // "5": reset the peak resident set size (proc(5), /proc/PID/clear_refs)
            Files.writeString(Path.of("/proc", Long.toString(process.pid()), "clear_refs"), "5");
        } catch (IOException e) {
            // not Linux, or not allowed: the peak then includes the warm-up
        }
    }

    /** The JVM's first AOT cache error in the process's output (the cache was not used), or null. */
    String aotCacheError() {
        try {
            for (String l : Files.readAllLines(log)) {
                if (l.contains("[error][aot]")) {
                    return l.substring(l.indexOf("[error][aot]") + 12).trim();
                }
            }
        } catch (IOException | RuntimeException e) {
            // no log
        }
        return null;
    }

    /** User + system CPU seconds the process has used so far ({@code /proc/PID/stat}), or -1. */
    double cpuSeconds() {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(process.pid()), "stat"));
            // the command name (field 2) is in parentheses and may hold spaces: count from after it
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]); // utime, stime (fields 14, 15)
            return ticks / (double) CLOCK_TICKS;
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** Peak resident set size in bytes ({@code VmHWM} of {@code /proc/PID/status}), or -1. */
    long peakRssBytes() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc", Long.toString(process.pid()), "status"))) {
                if (l.startsWith("VmHWM:")) {
                    return Long.parseLong(l.substring(6).trim().split("\\s+")[0]) << 10;
                }
            }
        } catch (IOException | RuntimeException e) {
            // gone or not Linux
        }
        return -1;
    }

    /** USER_HZ: Linux reports CPU times in 1/100 s on every architecture jmigrate runs on. */
    private static final int CLOCK_TICKS = 100;

    /** The last lines of the process's output, for error messages. */
    static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log);
            return lines.isEmpty() ? "(no output)"
                    : String.join(" | ", lines.subList(Math.max(0, lines.size() - 5), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    @Override
    public void close() {
        try {
            if (process.isAlive()) {
                qmp.setTimeout(Duration.ofSeconds(5));
                qmp.call("quit", null);
            }
        } catch (RuntimeException ignored) {
            // already gone, or not answering: destroyed below
        }
        qmp.close();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
