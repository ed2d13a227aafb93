package io.jmigrate.cli;

import io.jmigrate.machine.VmConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code jmigrate x-aot-train}: the training run of the AOT cache (JEP 483/514/515) that
 * {@code bin/jmigrate} builds once per jar. It migrates a paused guest of incompressible RAM
 * between two VMs in this one JVM, over a UNIX socket, driven over QMP as a management tool does:
 * precopy, then multifd with 2 channels and six times with 4 ({@link #MIGRATIONS}), with both
 * sides' hot loops (dirty scan, page records, gathering writes, packet encode and validate, page
 * receive, digest). The JVM records which classes it loaded and linked and the methods' profiles,
 * so a VM process started from the cache neither loads those classes again nor starts the
 * migration's loops cold.
 *
 * <p>The profiles also record the highest tier each method reached, and a VM started from the
 * cache follows them: a method that C2 compiled in training is C2-compiled again soon after it
 * first runs, from the stored profile, and one that only reached C1 stays at C1 (tier 2) far longer
 * than without a cache. The per-packet methods run once per 512 KiB, so the training has to take
 * them to C2: the launcher runs it with {@code -XX:CompileThresholdScaling=0.1}, and the 4-channel
 * migrations are repeated until each of them has been called several thousand times.
 */
@Command(name = "x-aot-train", hidden = true,
        description = "Training run for the AOT cache (bin/jmigrate runs it with -XX:AOTCacheOutput).")
public final class AotTrainCommand implements Callable<Integer> {
    /** Multifd channels of each training migration, 0 for precopy. */
    static final int[] MIGRATIONS = {0, 2, 4, 4, 4, 4, 4, 4};

    @Option(names = "--ram", description = "guest RAM per training migration (default 192M)", defaultValue = "192M")
    String ram;

    @Override
    public Integer call() throws Exception {
        long bytes = VmConfig.parseSize(ram);
        Path dir = Files.createTempDirectory("jmigrate-aot-train");
        try {
            int n = 0;
            for (int channels : MIGRATIONS) {
                long ms = TrainingMigration.run(dir, bytes, channels, n++, true);
                System.err.printf("jmigrate: AOT training migration %d (%s): %d MiB in %d ms%n", n - 1,
                        channels == 0 ? "precopy" : "multifd " + channels + " ch", bytes >> 20, ms);
            }
            return 0;
        } finally {
            try (var s = Files.list(dir)) {
                for (Path p : s.toList()) {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(dir);
        }
    }
}
