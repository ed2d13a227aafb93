package io.jmigrate.interop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real QEMU running a {@code -M none -nodefaults} guest whose RAM is a memory-backend-file
 * (share=on), driven over QMP. The binary is Debian's {@code qemu-system-x86_64} (7.2 on the
 * host), or QEMU 10 inside the chroot named by {@code JMIGRATE_QEMU10}
 * (see scripts/qemu10-chroot.sh). RAM files live in /dev/shm so a chroot sees them too.
 */
public final class QemuProcess implements AutoCloseable {
    private final Process process;
    private final Path log;
    private final QmpTestClient qmp;

    private QemuProcess(Process process, Path log, QmpTestClient qmp) {
        this.process = process;
        this.log = log;
        this.qmp = qmp;
    }

    /** Which QEMU the interop tests run. */
    public enum Flavor {
        HOST, QEMU10;

        public static List<Flavor> available() {
            List<Flavor> out = new ArrayList<>();
            if (hostBinary() != null) {
                out.add(HOST);
            }
            if (qemu10Root() != null) {
                out.add(QEMU10);
            }
            return out;
        }
    }

    public static Path hostBinary() {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            Path p = Path.of(d, "qemu-system-x86_64");
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        return null;
    }

    public static Path qemu10Root() {
        String root = System.getenv("JMIGRATE_QEMU10");
        if (root == null || root.isBlank()) {
            return null;
        }
        Path p = Path.of(root);
        return Files.isExecutable(p.resolve("usr/bin/qemu-system-x86_64")) ? p : null;
    }

    /**
     * Starts QEMU paused (-S) with {@code sizeMiB} of RAM backed by {@code ramFile}.
     *
     * @param incoming an {@code -incoming} URI, or null for a source
     */
    public static QemuProcess start(Flavor flavor, Path workDir, String name, int sizeMiB, Path ramFile,
                                    String incoming) throws Exception {
        Path sock = workDir.resolve(name + ".qmp");
        Files.deleteIfExists(sock);
        List<String> cmd = new ArrayList<>();
        if (flavor == Flavor.QEMU10) {
            cmd.add("chroot");
            cmd.add(qemu10Root().toString());
            cmd.add("/usr/bin/qemu-system-x86_64");
        } else {
            cmd.add(hostBinary().toString());
        }
        cmd.addAll(List.of("-machine", "none,memory-backend=ram", "-nodefaults", "-m", sizeMiB + "M",
                "-object", "memory-backend-file,id=ram,size=" + sizeMiB + "M,mem-path=" + ramFile + ",share=on",
                "-nographic", "-serial", "null", "-monitor", "none", "-S", "-name", name,
                "-qmp", "unix:" + sock + ",server=on,wait=off"));
        if (incoming != null) {
            cmd.add("-incoming");
            cmd.add(incoming);
        }
        Path log = workDir.resolve(name + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            QmpTestClient qmp = QmpTestClient.connect(sock, Duration.ofSeconds(20));
            return new QemuProcess(p, log, qmp);
        } catch (Exception e) {
            p.destroyForcibly();
            throw new IOException("QEMU did not start: " + e.getMessage() + "\n" + Files.readString(log), e);
        }
    }

    public QmpTestClient qmp() {
        return qmp;
    }

    public Process process() {
        return process;
    }

    public String log() throws IOException {
        return Files.readString(log);
    }

    @Override
    public void close() throws Exception {
        try {
            qmp.call("quit", java.util.Map.of());
        } catch (IOException ignored) {
            // already gone
        }
        qmp.close();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }
}
