package io.jmigrate.memory;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.nio.file.Path;

/**
 * How guest RAM is backed, as QEMU's memory backends ({@code --memory-backend} of
 * {@code jmigrate vm}):
 * <ul>
 *   <li>{@code ram}: private anonymous memory, faulted in on first touch (QEMU's
 *       {@code memory-backend-ram}); the default;</li>
 *   <li>{@code file=PATH,share=on|off}: a mapping of PATH, shared (guest writes reach the file)
 *       or private (copy on write), as {@code memory-backend-file};</li>
 *   <li>{@code memfd[,share=on|off]}: an anonymous memory file ({@code memfd_create}), shared by
 *       default, as {@code memory-backend-memfd}.</li>
 * </ul>
 * Every kind takes {@code prealloc=on} (fault in every page before the VM starts, so a
 * destination pays no page faults during the migration) and {@code thp=on|off}
 * ({@code madvise(MADV_HUGEPAGE)} on the mapping, as QEMU does for all guest RAM). Unless given,
 * {@code thp} follows {@code prealloc}: preallocated RAM pays for huge pages (compaction) before
 * the VM starts, as QEMU's does, while RAM faulted in lazily would pay for them during a
 * migration, where compaction stalls vary with fragmentation (the README's Benchmarks section
 * has the measurements).
 * {@code -Djmigrate.memory.thp=on|off} sets that default for every block instead (for an A/B;
 * {@code prealloc}, the default, is the rule above).
 *
 * @param kind     the backend kind
 * @param path     the file for {@link Kind#FILE}, else null
 * @param share    shared mapping ({@code share=on})
 * @param prealloc {@code prealloc=on}
 * @param thp      advise transparent huge pages
 */
public record MemoryBackend(Kind kind, Path path, boolean share, boolean prealloc, boolean thp) {
    public enum Kind { RAM, FILE, MEMFD }

    /** Anonymous memory, lazily faulted. */
    public static final MemoryBackend RAM = new MemoryBackend(Kind.RAM, null, false, false, false);

    public MemoryBackend {
        if ((kind == Kind.FILE) != (path != null)) {
            throw new IllegalArgumentException("a file path goes with the file kind only");
        }
    }

    /** The huge-page default where no {@code thp=} is given: {@code prealloc}, {@code on} or {@code off}. */
    static final String THP_DEFAULT = System.getProperty("jmigrate.memory.thp", "prealloc");

    static boolean defaultThp(boolean prealloc) {
        return switch (THP_DEFAULT) {
            case "on" -> true;
            case "off" -> false;
            default -> prealloc;
        };
    }

    public static MemoryBackend file(Path path, boolean share) {
        return new MemoryBackend(Kind.FILE, path, share, false, false);
    }

    /**
     * Parses {@code ram[,prealloc=on|off][,thp=on|off]},
     * {@code file=PATH,share=on|off[,prealloc=on|off][,thp=on|off]} or
     * {@code memfd[,share=on|off][,prealloc=on|off][,thp=on|off]}.
     */
    public static MemoryBackend parse(String spec) {
        Kind kind = null;
        Path path = null;
        Boolean share = null;
        boolean prealloc = false;
        Boolean thp = null;
        String[] parts = spec.split(",");
        for (int i = 0; i < parts.length; i++) {
            String part = parts[i].trim();
            if (i == 0 && part.equals("ram")) {
                kind = Kind.RAM;
            } else if (i == 0 && part.equals("memfd")) {
                kind = Kind.MEMFD;
            } else if (i == 0 && part.startsWith("file=") && part.length() > 5) {
                kind = Kind.FILE;
                path = Path.of(part.substring(5));
            } else if (i == 0) {
                throw bad(spec, "it must start with ram, memfd or file=PATH");
            } else if (part.startsWith("share=")) {
                share = onOff(spec, part);
            } else if (part.startsWith("prealloc=")) {
                prealloc = onOff(spec, part);
            } else if (part.startsWith("thp=")) {
                thp = onOff(spec, part);
            } else {
                throw bad(spec, "unknown option '" + part + "' (expected share=, prealloc= or thp=)");
            }
        }
        if (kind == Kind.RAM && share != null && share) {
            throw bad(spec, "share=on needs a file or memfd backend (ram is private anonymous memory)");
        }
        boolean sh = share != null ? share : kind == Kind.MEMFD;
        boolean hugePages = thp != null ? thp : defaultThp(prealloc);
        return new MemoryBackend(kind, path, sh, prealloc, hugePages);
    }

    private static boolean onOff(String spec, String part) {
        String v = part.substring(part.indexOf('=') + 1);
        return switch (v) {
            case "on" -> true;
            case "off" -> false;
            default -> throw bad(spec, "'" + part + "' must be on or off");
        };
    }

    private static MigrationException bad(String spec, String why) {
        return new MigrationException(Category.CONFIG, "--memory-backend '" + spec + "': " + why);
    }

    /** The QEMU-style description, e.g. {@code file=/dev/shm/x,share=on,prealloc=on}. */
    public String describe() {
        String base = switch (kind) {
            case RAM -> "ram";
            case FILE -> "file=" + path + ",share=" + (share ? "on" : "off");
            case MEMFD -> "memfd,share=" + (share ? "on" : "off");
        };
        return base + (prealloc ? ",prealloc=on" : "") + (thp ? ",thp=on" : prealloc ? ",thp=off" : "");
    }
}
