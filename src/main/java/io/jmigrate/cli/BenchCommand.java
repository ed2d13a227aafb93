package io.jmigrate.cli;

import io.jmigrate.bench.Engine;
import io.jmigrate.bench.ThroughputBench;
import io.jmigrate.bench.ThroughputConfig;
import io.jmigrate.bench.ThroughputReport;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.machine.VmConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code jmigrate bench}: benchmarks that start VM processes and drive them as a user would. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Benchmarks (see also the JMH profile).",
        subcommands = {BenchCommand.Throughput.class, BenchDowntimeCommand.class})
public final class BenchCommand implements Runnable {
    @Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** {@code jmigrate bench throughput}. */
    @Command(name = "throughput", mixinStandardHelpOptions = true,
            description = {"Migrate a paused VM with incompressible RAM over TCP loopback, with jmigrate and (when "
                    + "installed) real QEMU, in the same run: precopy, multifd with each channel count, and multifd with "
                    + "zlib and zstd compression. "
                    + "Reports median and range of total time and GB/s, and jmigrate/QEMU ratios.",
                "Each run starts fresh source and destination processes; runs are interleaved across engines."})
    public static final class Throughput implements Callable<Integer> {
        @Option(names = "--ram", paramLabel = "SIZE", description = "guest RAM, e.g. 64M or 1G (default 1G)")
        String ram;

        @Option(names = "--ram-gib", paramLabel = "N", description = "guest RAM in GiB (alternative to --ram)")
        Integer ramGib;

        @Option(names = "--channels", split = ",", paramLabel = "N[,N...]",
                description = "multifd channel counts (default 1,2,4,8)", defaultValue = "1,2,4,8")
        List<Integer> channels;

        @Option(names = "--precopy", negatable = true, defaultValue = "true", fallbackValue = "true",
                description = "also migrate without multifd, on the main channel only (default on; --no-precopy)")
        boolean precopy;

        @Option(names = "--runs", description = "runs per engine and mode, at least 3 (default 3)", defaultValue = "3")
        int runs;

        @Option(names = "--compression", split = ",", paramLabel = "zlib,zstd|none",
                description = "multifd-compression rows, each at --compression-channels (default zlib,zstd; "
                        + "none = no compressed rows)", defaultValue = "zlib,zstd")
        List<String> compression;

        @Option(names = "--compression-channels", paramLabel = "N",
                description = "multifd channels of the compressed rows (default: the largest of --channels, or 4)")
        Integer compressionChannels;

        @Option(names = "--seed", description = "seed of the RAM contents (default 1)", defaultValue = "1")
        long seed;

        @Option(names = "--json", paramLabel = "FILE", description = "also write the report as JSON")
        Path json;

        @Option(names = "--qemu", negatable = true, defaultValue = "true", fallbackValue = "true",
                description = "run the host's qemu-system-x86_64 if installed (default on; --no-qemu)")
        boolean qemu;

        @Option(names = "--qemu10", paramLabel = "DIR",
                description = "chroot holding QEMU 10 (scripts/qemu10-chroot.sh; default: $JMIGRATE_QEMU10)")
        Path qemu10;

        @Option(names = "--no-jmigrate", description = "run QEMU only")
        boolean noJmigrate;

        @Option(names = "--max-bandwidth", paramLabel = "BYTES/S",
                description = "max-bandwidth for every source (default 100000000000)", defaultValue = "100000000000")
        long maxBandwidth;

        @Option(names = "--timeout", paramLabel = "SECONDS",
                description = "per migration (default 60 + 120 per GiB)")
        Long timeout;

        @Option(names = "--work-dir", paramLabel = "DIR",
                description = "for the RAM image, sockets and logs (default /dev/shm/jmigrate-bench-PID)")
        Path workDir;

        @Option(names = "--keep", description = "keep the work directory (logs) afterwards")
        boolean keep;

        @Option(names = "--jvm-arg", paramLabel = "ARG", description = "extra JVM option for jmigrate's VM "
                + "processes (repeatable; default -Xmx256m)")
        List<String> jvmArgs = new ArrayList<>();

        @Option(names = "--dst-memory", paramLabel = "lazy|prealloc", defaultValue = "lazy",
                description = "destination RAM of both engines: lazy (faulted in during the migration, the default) "
                        + "or prealloc (memory-backend-ram,prealloc=on: faulted in before the migration)")
        String dstMemory;

        @Option(names = "--jmigrate-variant", paramLabel = "LABEL=JVMARG[ JVMARG...]",
                description = "also run jmigrate with these extra JVM options under LABEL, interleaved with the "
                        + "plain jmigrate, for an A/B in the same run (repeatable); its ratios are against "
                        + "jmigrate too")
        List<String> variants = new ArrayList<>();

        /** Tests only: allows fewer than 3 runs (the report then says it is not valid). */
        @Option(names = "--tls", description = "also run precopy and every --channels count with TLS 1.3 "
                + "(test certificates made like 'jmigrate tls gen' in the work directory), in the same run, "
                + "to show what TLS costs")
        boolean tls;

        @Option(names = "--x-test-allow-fewer-runs", hidden = true)
        boolean allowFewerRuns;

        @Override
        public Integer call() {
            PrintStream out = System.out;
            PrintStream err = System.err;
            long ramBytes;
            if (ramGib != null && ram != null) {
                throw new MigrationException(Category.CONFIG, "give --ram or --ram-gib, not both");
            } else if (ramGib != null) {
                if (ramGib <= 0 || ramGib > 1024) {
                    throw new MigrationException(Category.CONFIG, "--ram-gib " + ramGib + " is outside 1..1024");
                }
                ramBytes = (long) ramGib << 30;
            } else {
                ramBytes = ram == null ? 1L << 30 : VmConfig.parseSize(ram);
            }
            Path dir = workDir != null ? workDir : Path.of("/dev/shm", "jmigrate-bench-" + ProcessHandle.current().pid());
            boolean created = !Files.exists(dir);
            List<String> comps = compression.stream().filter(c -> !c.equals("none")).toList();
            int compCh = compressionChannels != null ? compressionChannels
                    : channels.stream().mapToInt(Integer::intValue).max().orElse(4);
            ThroughputConfig cfg = new ThroughputConfig(ramBytes, channels, precopy, runs,
                    allowFewerRuns ? 1 : ThroughputConfig.MIN_RUNS, seed, maxBandwidth, dir,
                    timeout != null ? Duration.ofSeconds(timeout) : ThroughputConfig.defaultTimeout(ramBytes),
                    comps, compCh, dstPrealloc(), tls ? dir.resolve("tls") : null);
            if (tls) {
                io.jmigrate.channel.TlsCertGenerator.defaults(30).write(dir.resolve("tls"));
            }

            List<Engine> engines = new ArrayList<>();
            if (!noJmigrate) {
                Engine.Jmigrate base = Engine.Jmigrate.current(jvmArgs.isEmpty() ? List.of("-Xmx256m") : jvmArgs);
                engines.add(base);
                for (String v : variants) {
                    int eq = v.indexOf('=');
                    if (eq <= 0 || v.substring(0, eq).equals("jmigrate")) {
                        throw new MigrationException(Category.CONFIG, "--jmigrate-variant '" + v + "': expected "
                                + "LABEL=JVMARGS with a label other than jmigrate");
                    }
                    engines.add(base.variant(v.substring(0, eq), List.of(v.substring(eq + 1).trim().split("\\s+"))));
                }
            }
            if (qemu) {
                Engine.Qemu host = Engine.Qemu.host();
                if (host != null) {
                    engines.add(host);
                } else {
                    err.println("note: qemu-system-x86_64 not found on PATH: no QEMU comparison "
                            + "(apt-get install qemu-system-x86)");
                }
            }
            Path q10 = qemu10;
            if (q10 == null && System.getenv("JMIGRATE_QEMU10") != null && !System.getenv("JMIGRATE_QEMU10").isBlank()) {
                q10 = Path.of(System.getenv("JMIGRATE_QEMU10"));
            }
            if (q10 != null) {
                Engine.Qemu chrooted = Engine.Qemu.chroot(q10);
                if (chrooted == null) {
                    throw new MigrationException(Category.CONFIG, "no usr/bin/qemu-system-x86_64 in the chroot " + q10
                            + " (set up with scripts/qemu10-chroot.sh)");
                }
                engines.add(chrooted);
            }
            if (engines.isEmpty()) {
                throw new MigrationException(Category.CONFIG, "no engine to run (--no-jmigrate and no QEMU)");
            }
            try {
                ThroughputReport report = new ThroughputBench(cfg, engines, err).run();
                out.println();
                out.print(report.table());
                if (json != null) {
                    report.writeJson(json);
                    err.println("wrote " + json);
                }
                return report.anyFailed() ? 1 : 0;
            } finally {
                if (keep) {
                    err.println("kept " + dir);
                } else if (created) {
                    deleteTree(dir);
                } else {
                    deleteTree(dir.resolve("guest-ram.img"));
                }
            }
        }

        private boolean dstPrealloc() {
            return switch (dstMemory) {
                case "lazy" -> false;
                case "prealloc" -> true;
                default -> throw new MigrationException(Category.CONFIG, "--dst-memory '" + dstMemory
                        + "': expected lazy or prealloc");
            };
        }

        static void deleteTree(Path p) {
            if (!Files.exists(p)) {
                return;
            }
            try {
                Files.walkFileTree(p, new SimpleFileVisitor<>() {
                    @Override
                    public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                        Files.delete(file);
                        return FileVisitResult.CONTINUE;
                    }

                    @Override
                    public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                        Files.delete(d);
                        return FileVisitResult.CONTINUE;
                    }
                });
            } catch (IOException e) {
                System.err.println("note: could not remove " + p + ": " + e.getMessage());
            }
        }
    }
}
