package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

/**
 * {@code --workload dirty-rate=MB/s,pattern=increment[,vcpus=N]}: what the vCPU workload does.
 * Rates are in MiB/s of dirtied pages (a page counts fully when one byte of it is written).
 *
 * @param dirtyRateMiB pages dirtied per second × page size ÷ 1 MiB, over all vCPUs (> 0)
 * @param vcpus        number of vCPU threads (1..64); each owns an equal slice of guest RAM
 */
public record WorkloadSpec(double dirtyRateMiB, String pattern, int vcpus) {
    public static final String INCREMENT = "increment";

    public WorkloadSpec {
        if (!(dirtyRateMiB > 0) || dirtyRateMiB > 1_000_000) {
            throw new MigrationException(Category.CONFIG, "workload dirty-rate must be > 0 and <= 1000000 MB/s, got "
                    + dirtyRateMiB);
        }
        if (!INCREMENT.equals(pattern)) {
            throw new MigrationException(Category.CONFIG, "workload pattern '" + pattern
                    + "' is not supported, expected 'increment'");
        }
        if (vcpus < 1 || vcpus > 64) {
            throw new MigrationException(Category.CONFIG, "workload vcpus must be 1..64, got " + vcpus);
        }
    }

    /** Parses {@code dirty-rate=50,pattern=increment,vcpus=1} (pattern and vcpus optional). */
    public static WorkloadSpec parse(String text) {
        double rate = -1;
        String pattern = INCREMENT;
        int vcpus = 1;
        for (String part : text.split(",")) {
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new MigrationException(Category.CONFIG, "workload option '" + part + "' must be key=value");
            }
            String k = part.substring(0, eq).trim();
            String v = part.substring(eq + 1).trim();
            try {
                switch (k) {
                    case "dirty-rate" -> rate = Double.parseDouble(v);
                    case "pattern" -> pattern = v;
                    case "vcpus" -> vcpus = Integer.parseInt(v);
                    default -> throw new MigrationException(Category.CONFIG, "unknown workload option '" + k
                            + "', expected dirty-rate, pattern or vcpus");
                }
            } catch (NumberFormatException e) {
                throw new MigrationException(Category.CONFIG, "workload option " + k + "=" + v + " is not a number");
            }
        }
        if (rate < 0) {
            throw new MigrationException(Category.CONFIG, "workload needs dirty-rate=MB/s");
        }
        return new WorkloadSpec(rate, pattern, vcpus);
    }

    @Override
    public String toString() {
        return "dirty-rate=" + dirtyRateMiB + ",pattern=" + pattern + ",vcpus=" + vcpus;
    }
}
