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
 * precopy, then multifd with 2 and 4 channels, with both sides' hot loops (dirty scan, page
 * records, gathering writes, packet encode and validate, page receive, digest). The JVM records
 * which classes it loaded and linked and the methods' profiles, so a VM process started from the
 * cache neither loads those classes again nor starts the migration's loops cold.
 */
@Command(name = "x-aot-train", hidden = true,
        description = "Training run for the AOT cache (bin/jmigrate runs it with -XX:AOTCacheOutput).")
public final class AotTrainCommand implements Callable<Integer> {
    @Option(names = "--ram", description = "guest RAM per training migration (default 192M)", defaultValue = "192M")
    String ram;

    @Override
    public Integer call() throws Exception {
        long bytes = VmConfig.parseSize(ram);
        Path dir = Files.createTempDirectory("jmigrate-aot-train");
        try {
            int n = 0;
            for (int channels : new int[] {0, 2, 4}) {
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
