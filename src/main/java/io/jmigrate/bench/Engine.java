package io.jmigrate.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A migration implementation the harness can start as source and destination processes: jmigrate
 * itself, or a real QEMU (the host's, or one in a chroot). Both are started paused with the same
 * RAM size, the source's RAM mapped from the shared image file ({@code share=on}), the
 * destination with RAM of its own and {@code incoming defer}, and a QMP socket in the work
 * directory.
 */
public sealed interface Engine {
    /** Short label for tables ("jmigrate", "qemu-7.2" once the version is known, ...). */
    String label();

    /** The command line of a paused source VM whose RAM is {@code image} (share=on). */
    List<String> sourceCommand(String name, long ramBytes, Path image, Path qmpSocket);

    /**
     * The command line of a paused destination VM with its own anonymous RAM, waiting for
     * migrate-incoming; {@code prealloc} faults all of it in before the VM starts.
     */
    List<String> destinationCommand(String name, long ramBytes, Path qmpSocket, boolean prealloc);

    /**
     * What the destination's RAM is, in QEMU's terms, for the report. QEMU advises all guest RAM
     * for huge pages; jmigrate does where it preallocates (its default, {@code MemoryBackend}).
     */
    static String destinationBackend(boolean prealloc) {
        return prealloc ? "memory-backend-ram,prealloc=on, transparent huge pages advised (both engines alike)"
                : "memory-backend-ram faulted in lazily (both engines); QEMU advises transparent huge pages, "
                + "jmigrate does not without prealloc";
    }

    /**
     * jmigrate's own {@code jmigrate vm}, started as {@code launcher... vm ...} with the
     * {@code none} machine (the same device set as QEMU's {@code -M none -nodefaults}).
     *
     * @param launcher the command that runs jmigrate's main class (java, JVM options, -jar or -cp)
     */
    record Jmigrate(String label, List<String> launcher) implements Engine {
        public Jmigrate {
            launcher = List.copyOf(launcher);
        }

        public Jmigrate(List<String> launcher) {
            this("jmigrate", launcher);
        }

        /** The same jmigrate under another label with more JVM options (an A/B variant in one run). */
        public Jmigrate variant(String newLabel, List<String> moreJvmArgs) {
            List<String> cmd = new ArrayList<>(launcher);
            int at = Math.max(1, cmd.indexOf("-jar") >= 0 ? cmd.indexOf("-jar") : cmd.indexOf("-cp"));
            cmd.addAll(at, moreJvmArgs);
            return new Jmigrate(newLabel, cmd);
        }

        /** The launcher for the jmigrate this process runs from (its java, its jar or class path). */
        public static Jmigrate current(List<String> jvmArgs) {
            List<String> cmd = new ArrayList<>();
            cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            cmd.add("--enable-native-access=ALL-UNNAMED");
            Path code;
            try {
                code = Path.of(Engine.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            } catch (Exception e) {
                code = null;
            }
            boolean jar = code != null && Files.isRegularFile(code);
            if (!jar) {
                // session-free ByteBuffer views of guest RAM (io.jmigrate.memory.SegmentWindows); the
                // jar's manifest says it itself, and saying it again on the command line would make
                // the JVM refuse the AOT cache, whose training run did not have it
                cmd.add("--add-opens");
                cmd.add("java.base/java.nio=ALL-UNNAMED");
            }
            cmd.addAll(jvmArgs);
            if (jar) {
                // the AOT cache bin/jmigrate built for this jar, if it is not older than the jar,
                // with the launcher's options for it (see bin/jmigrate)
                Path aot = code.resolveSibling("jmigrate.aot");
                try {
                    if (Files.isRegularFile(aot)
                            && !Files.getLastModifiedTime(aot).toInstant().isBefore(
                                    Files.getLastModifiedTime(code).toInstant())) {
                        cmd.addAll(cmd.size() - jvmArgs.size(),
                                List.of("-XX:AOTCache=" + aot, "-XX:Tier2InvokeNotifyFreqLog=7"));
                    }
                } catch (java.io.IOException e) {
                    // no cache: the VMs start without it
                }
                cmd.add("-jar");
                cmd.add(code.toString());
            } else {
                cmd.add("-cp");
                cmd.add(System.getProperty("java.class.path"));
                cmd.add("io.jmigrate.cli.Main");
            }
            return new Jmigrate(cmd);
        }

        @Override
        public List<String> sourceCommand(String name, long ramBytes, Path image, Path qmpSocket) {
            List<String> c = new ArrayList<>(launcher);
            c.addAll(List.of("vm", "--name", name, "--machine", "none", "-m", (ramBytes >> 20) + "M",
                    "--memory-backend", "file=" + image + ",share=on", "-S", "--qmp", "unix:" + qmpSocket,
                    "--global", "migration.x-jmigrate-digest=on"));
            return c;
        }

        @Override
        public List<String> destinationCommand(String name, long ramBytes, Path qmpSocket, boolean prealloc) {
            List<String> c = new ArrayList<>(launcher);
            c.addAll(List.of("vm", "--name", name, "--machine", "none", "-m", (ramBytes >> 20) + "M", "-S",
                    "--memory-backend", prealloc ? "ram,prealloc=on" : "ram",
                    "--incoming", "defer", "--qmp", "unix:" + qmpSocket, "--global", "migration.x-jmigrate-digest=on"));
            return c;
        }
    }

    /**
     * Real QEMU: {@code -M none -nodefaults}, paused, RAM from memory-backend-file (source,
     * share=on) or memory-backend-ram (destination).
     *
     * @param label  e.g. "qemu" (host) or "qemu10" (chroot); replaced by the version once known
     * @param prefix the command up to and including the binary, e.g. {@code [chroot, DIR, /usr/bin/qemu-system-x86_64]}
     */
    record Qemu(String label, List<String> prefix) implements Engine {
        public Qemu {
            prefix = List.copyOf(prefix);
        }

        /** The host's {@code qemu-system-x86_64} on PATH, or null. */
        public static Qemu host() {
            for (String d : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
                Path p = Path.of(d, "qemu-system-x86_64");
                if (Files.isExecutable(p)) {
                    return new Qemu("qemu", List.of(p.toString()));
                }
            }
            return null;
        }

        /** QEMU in a chroot (scripts/qemu10-chroot.sh), or null if {@code root} has none. */
        public static Qemu chroot(Path root) {
            if (root == null || !Files.isExecutable(root.resolve("usr/bin/qemu-system-x86_64"))) {
                return null;
            }
            return new Qemu("qemu-chroot", List.of("chroot", root.toString(), "/usr/bin/qemu-system-x86_64"));
        }

        public Qemu withLabel(String l) {
            return new Qemu(l, prefix);
        }

        private List<String> common(String name, long ramBytes, String backend, Path qmpSocket) {
            List<String> c = new ArrayList<>(prefix);
            String size = (ramBytes >> 20) + "M";
            c.addAll(List.of("-machine", "none,memory-backend=ram", "-nodefaults", "-m", size,
                    "-object", backend + ",id=ram,size=" + size, "-nographic", "-serial", "null", "-monitor", "none",
                    "-S", "-name", name, "-qmp", "unix:" + qmpSocket + ",server=on,wait=off"));
            return c;
        }

        @Override
        public List<String> sourceCommand(String name, long ramBytes, Path image, Path qmpSocket) {
            return common(name, ramBytes, "memory-backend-file,mem-path=" + image + ",share=on", qmpSocket);
        }

        @Override
        public List<String> destinationCommand(String name, long ramBytes, Path qmpSocket, boolean prealloc) {
            List<String> c = common(name, ramBytes, "memory-backend-ram" + (prealloc ? ",prealloc=on" : ""),
                    qmpSocket);
            c.addAll(List.of("-incoming", "defer"));
            return c;
        }
    }
}
