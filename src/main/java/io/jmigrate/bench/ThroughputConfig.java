package io.jmigrate.bench;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * What {@code jmigrate bench throughput} runs, checked once.
 *
 * @param ramBytes        guest RAM size (a multiple of 1 MiB)
 * @param channels        multifd channel counts, each 1..255 (an empty list runs none)
 * @param precopy         also migrate without multifd (main channel only)
 * @param runs            runs per engine and mode
 * @param minRuns         the fewest runs a report may have (3; tests lower it)
 * @param seed            seed of the RAM image
 * @param maxBandwidth    max-bandwidth set on every source (bytes/s)
 * @param workDir         where the RAM image, QMP sockets and logs go (/dev/shm, so a chroot sees it)
 * @param migrationTimeout per migration
 * @param compressions    multifd-compression methods ("zlib", "zstd") that get rows of their own, each
 *                        migrated with {@code compressionChannels} channels (an empty list runs none)
 * @param compressionChannels the channel count of the compressed rows (1..255)
 * @param dstPrealloc     both engines' destinations preallocate their RAM ({@code prealloc=on}) instead
 *                        of faulting it in during the migration
 * @param tlsDir          a {@code jmigrate tls gen} directory: precopy and every uncompressed channel count
 *                        are run once more with TLS (tls-creds-x509 objects from it on both sides), in the
 *                        same run, so the two can be compared; null runs no TLS rows
 */
public record ThroughputConfig(long ramBytes, List<Integer> channels, boolean precopy, int runs, int minRuns,
                               long seed, long maxBandwidth, Path workDir, Duration migrationTimeout,
                               List<String> compressions, int compressionChannels, boolean dstPrealloc,
                               Path tlsDir) {
    public static final int MIN_RUNS = 3;
    /** 100 GB/s: far above what loopback does, so it never limits (as the test data used). */
    public static final long DEFAULT_MAX_BANDWIDTH = 100_000_000_000L;

    public ThroughputConfig {
        if (ramBytes <= 0 || ramBytes % (1 << 20) != 0) {
            throw new MigrationException(Category.CONFIG, "RAM size " + ramBytes + " must be a positive multiple "
                    + "of 1 MiB");
        }
        channels = List.copyOf(channels);
        for (int c : channels) {
            if (c < 1 || c > 255) {
                throw new MigrationException(Category.CONFIG, "channel count " + c + " is outside 1..255 "
                        + "(multifd-channels)");
            }
        }
        compressions = List.copyOf(compressions);
        for (String c : compressions) {
            if (!c.equals("zlib") && !c.equals("zstd")) {
                throw new MigrationException(Category.CONFIG, "compression '" + c + "' is not a multifd-compression "
                        + "the benchmark runs, expected zlib or zstd");
            }
        }
        if (compressions.stream().distinct().count() != compressions.size()) {
            throw new MigrationException(Category.CONFIG, "compression listed twice: " + compressions);
        }
        if (!compressions.isEmpty() && (compressionChannels < 1 || compressionChannels > 255)) {
            throw new MigrationException(Category.CONFIG, "compression channel count " + compressionChannels
                    + " is outside 1..255 (multifd-channels)");
        }
        if (channels.isEmpty() && !precopy && compressions.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "nothing to run: no channel counts and no precopy");
        }
        if (runs < minRuns) {
            throw new MigrationException(Category.CONFIG, "--runs " + runs + " is below the minimum of " + minRuns
                    + ": a median and range need at least " + minRuns + " runs");
        }
        if (maxBandwidth <= 0) {
            throw new MigrationException(Category.CONFIG, "max-bandwidth must be positive");
        }
    }

    /** Without TLS rows. */
    public ThroughputConfig(long ramBytes, List<Integer> channels, boolean precopy, int runs, int minRuns, long seed,
                            long maxBandwidth, Path workDir, Duration migrationTimeout, List<String> compressions,
                            int compressionChannels, boolean dstPrealloc) {
        this(ramBytes, channels, precopy, runs, minRuns, seed, maxBandwidth, workDir, migrationTimeout, compressions,
                compressionChannels, dstPrealloc, null);
    }

    /** Destinations that fault their RAM in lazily. */
    public ThroughputConfig(long ramBytes, List<Integer> channels, boolean precopy, int runs, int minRuns, long seed,
                            long maxBandwidth, Path workDir, Duration migrationTimeout, List<String> compressions,
                            int compressionChannels) {
        this(ramBytes, channels, precopy, runs, minRuns, seed, maxBandwidth, workDir, migrationTimeout, compressions,
                compressionChannels, false, null);
    }

    /** The uncompressed modes only (precopy and multifd), as the first benchmark had them. */
    public ThroughputConfig(long ramBytes, List<Integer> channels, boolean precopy, int runs, int minRuns, long seed,
                            long maxBandwidth, Path workDir, Duration migrationTimeout) {
        this(ramBytes, channels, precopy, runs, minRuns, seed, maxBandwidth, workDir, migrationTimeout, List.of(), 1);
    }

    /**
     * One benchmarked mode.
     *
     * @param channels    0 for precopy (main channel only), else multifd-channels
     * @param compression multifd-compression: "none", "zlib" or "zstd" (always "none" for precopy)
     * @param tls         TLS on the main and every multifd channel (tls-creds on both sides)
     */
    public record Mode(int channels, String compression, boolean tls) {
        public Mode(int channels, String compression) {
            this(channels, compression, false);
        }

        public static Mode precopy() {
            return new Mode(0, "none");
        }

        public boolean compressed() {
            return !compression.equals("none");
        }

        /** The table's mode column: precopy, multifd, zlib, zstd; with "+tls" for TLS rows. */
        public String label() {
            return (channels == 0 ? "precopy" : compressed() ? compression : "multifd") + (tls ? "+tls" : "");
        }
    }

    /** The default per-migration timeout: 60 s plus 120 s per GiB. */
    public static Duration defaultTimeout(long ramBytes) {
        return Duration.ofSeconds(60 + 120 * Math.max(1, ramBytes >> 30));
    }

    /** The modes in run order: precopy first, then each channel count, then each compression. */
    public List<Mode> modes() {
        List<Mode> m = new java.util.ArrayList<>();
        if (precopy) {
            m.add(Mode.precopy());
        }
        for (int c : channels) {
            m.add(new Mode(c, "none"));
        }
        for (String c : compressions) {
            m.add(new Mode(compressionChannels, c));
        }
        if (tlsDir != null) {
            if (precopy) {
                m.add(new Mode(0, "none", true));
            }
            for (int c : channels) {
                m.add(new Mode(c, "none", true));
            }
        }
        return m;
    }
}
