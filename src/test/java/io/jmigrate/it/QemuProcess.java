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

/**
 * A real QEMU running a {@code -M none -nodefaults} guest (or another machine) whose RAM is a
 * memory-backend-file with share=on, driven over QMP. The binary is Debian's
 * {@code qemu-system-x86_64} (7.2 on bookworm), or QEMU 10 inside the chroot named by
 * {@code JMIGRATE_QEMU10} (see scripts/qemu10-chroot.sh). RAM files live in /dev/shm so that a
 * chroot sees them too.
 */
final class QemuProcess implements AutoCloseable {
    final String name;
    final Flavor flavor;
    final Process process;
    final Path log;
    final QmpClient qmp;

    private QemuProcess(String name, Flavor flavor, Process process, Path log, QmpClient qmp) {
        this.name = name;
        this.flavor = flavor;
        this.process = process;
        this.log = log;
        this.qmp = qmp;
    }

    /** Which QEMU runs. */
    enum Flavor {
        /** Debian's qemu-system-x86_64 on the host (7.2 on bookworm). */
        HOST,
        /** QEMU 10 in the chroot named by JMIGRATE_QEMU10. */
        QEMU10;

        static List<Flavor> available() {
            List<Flavor> out = new ArrayList<>();
            if (hostBinary() != null) {
                out.add(HOST);
            }
            if (qemu10Root() != null) {
                out.add(QEMU10);
            }
            return out;
        }

        /** QEMU before 8.1 flushes multifd per section and knows no MIG_CMD_SWITCHOVER_START. */
        boolean legacy() {
            return this == HOST && hostVersion().startsWith("7.");
        }
    }

    static Path hostBinary() {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            Path p = Path.of(d, "qemu-system-x86_64");
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        return null;
    }

    static String hostVersion() {
        try {
            Process p = new ProcessBuilder(hostBinary().toString(), "--version").redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes());
            p.waitFor(10, TimeUnit.SECONDS);
            return out.replaceFirst("(?s)^QEMU emulator version (\\S+).*", "$1");
        } catch (IOException | InterruptedException e) {
            return "unknown";
        }
    }

    static Path qemu10Root() {
        String root = System.getenv("JMIGRATE_QEMU10");
        if (root == null || root.isBlank()) {
            return null;
        }
        Path p = Path.of(root);
        return Files.isExecutable(p.resolve("usr/bin/qemu-system-x86_64")) ? p : null;
    }

    /**
     * Starts QEMU with {@code sizeMiB} of RAM backed by {@code ramFile} (share=on): a source paused
     * (-S), a destination without -S so that it follows the source's run state.
     *
     * @param machine  e.g. "none" (the interop guest) or "pc"
     * @param incoming an {@code -incoming} URI ("defer"), or null for a source
     * @param extra    more QEMU arguments
     */
    static QemuProcess start(Flavor flavor, Path workDir, String name, String machine, int sizeMiB, Path ramFile,
                             String incoming, String... extra) throws Exception {
        Path sock = workDir.resolve(name + ".qmp");
        Files.deleteIfExists(sock);
        List<String> cmd = new ArrayList<>();
        if (flavor == Flavor.QEMU10) {
            cmd.addAll(List.of("chroot", qemu10Root().toString(), "/usr/bin/qemu-system-x86_64"));
        } else {
            cmd.add(hostBinary().toString());
        }
        cmd.addAll(List.of("-machine", machine + ",memory-backend=" + (machine.equals("none") ? "ram" : "pc.ram"),
                "-nodefaults", "-m", sizeMiB + "M",
                "-object", "memory-backend-file,id=" + (machine.equals("none") ? "ram" : "pc.ram") + ",size=" + sizeMiB
                        + "M,mem-path=" + ramFile + ",share=on",
                "-nographic", "-serial", "null", "-monitor", "none", "-name", name,
                "-qmp", "unix:" + sock + ",server=on,wait=off"));
        if (incoming != null) {
            // no -S: the destination takes the source's run state (a running source resumes it)
            cmd.addAll(List.of("-incoming", incoming));
        } else {
            cmd.add("-S");
        }
        cmd.addAll(List.of(extra));
        Path log = workDir.resolve(name + ".log");
        Process p = VmProcess.track(new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile())
                .start());
        long deadline = System.currentTimeMillis() + 30_000;
        while (true) {
            if (!p.isAlive()) {
                throw new AssertionError("QEMU " + name + " exited with " + p.exitValue() + ": " + Files.readString(log)
                        + "\ncommand: " + String.join(" ", cmd));
            }
            if (Files.exists(sock)) {
                try {
                    return new QemuProcess(name, flavor, p, log, QmpClient.connect("unix:" + sock));
                } catch (RuntimeException e) {
                    // bound but not yet listening: retry
                }
            }
            if (System.currentTimeMillis() > deadline) {
                p.destroyForcibly();
                throw new AssertionError("QEMU " + name + " did not open its QMP socket in 30 s: " + Files.readString(log));
            }
            Thread.sleep(50);
        }
    }

    JsonNode exec(String cmd, Map<String, ?> args) {
        return qmp.execute(cmd, args);
    }

    /** Polls query-migrate until its status satisfies {@code done}. */
    JsonNode awaitMigration(Predicate<String> done, Duration within) throws Exception {
        long deadline = System.nanoTime() + within.toNanos();
        while (true) {
            JsonNode info = qmp.execute("query-migrate", null);
            if (done.test(info.path("status").asText())) {
                return info;
            }
            if (!process.isAlive()) {
                throw new AssertionError("QEMU " + name + " exited: " + Files.readString(log));
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("QEMU " + name + " migration still " + info + " after " + within + "\n"
                        + Files.readString(log));
            }
            Thread.sleep(50);
        }
    }

    String logText() throws IOException {
        return Files.readString(log);
    }

    @Override
    public void close() throws Exception {
        try {
            qmp.call("quit", null);
        } catch (RuntimeException ignored) {
            // already gone
        }
        qmp.close();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            process.waitFor(5, TimeUnit.SECONDS);
        }
    }
}
