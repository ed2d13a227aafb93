package io.jmigrate.bench;

import io.jmigrate.qmp.QmpSchema;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What every benchmark report starts with: the date, the machine, the versions and the
 * parameters, as ordered key/value pairs (Markdown rows, CSV comment lines, chart subtitle).
 *
 * @param title   e.g. "jmigrate bench downtime"
 * @param entries key to value, in order
 */
public record ReportHeader(String title, Map<String, String> entries) {
    public ReportHeader {
        entries = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(entries));
    }

    /**
     * A header with date, machine and versions filled in from this host, then {@code parameters}.
     *
     * @param versions extra version lines, e.g. the QMP greeting's version of the VMs
     */
    public static ReportHeader of(String title, Map<String, String> versions, Map<String, String> parameters) {
        Map<String, String> e = new LinkedHashMap<>();
        e.put("date", ZonedDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'")));
        e.put("machine", machine());
        e.put("jmigrate", QmpSchema.jmigrateVersion());
        e.put("java", Runtime.version() + " (" + System.getProperty("java.vm.name") + ")");
        e.putAll(versions);
        e.putAll(parameters);
        return new ReportHeader(title, e);
    }

    /** "2 CPUs (AMD EPYC 7B13), 23.4 GiB RAM, Linux 6.1.0 amd64, load average 3.21". */
    static String machine() {
        StringBuilder sb = new StringBuilder();
        int cpus = Runtime.getRuntime().availableProcessors();
        sb.append(cpus).append(cpus == 1 ? " CPU" : " CPUs");
        String model = firstValue(Path.of("/proc/cpuinfo"), "model name");
        if (model != null) {
            sb.append(" (").append(model.replaceAll("\\s+", " ")).append(')');
        }
        String mem = firstValue(Path.of("/proc/meminfo"), "MemTotal");
        if (mem != null) {
            try {
                long kib = Long.parseLong(mem.replace("kB", "").trim());
                sb.append(String.format(Locale.ROOT, ", %.1f GiB RAM", kib / (1024.0 * 1024)));
            } catch (NumberFormatException ignored) {
                // leave it out
            }
        }
        sb.append(", ").append(System.getProperty("os.name")).append(' ').append(System.getProperty("os.version"))
                .append(' ').append(System.getProperty("os.arch"));
        try {
            String load = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+")[0];
            sb.append(", load average ").append(load).append(" at start");
        } catch (IOException | RuntimeException ignored) {
            // not Linux
        }
        return sb.toString();
    }

    private static String firstValue(Path file, String key) {
        try {
            List<String> lines = Files.readAllLines(file);
            for (String l : lines) {
                int c = l.indexOf(':');
                if (c > 0 && l.substring(0, c).trim().equals(key)) {
                    return l.substring(c + 1).trim();
                }
            }
        } catch (IOException | RuntimeException ignored) {
            // not Linux
        }
        return null;
    }

    /** A two-column Markdown table. */
    public String markdown() {
        StringBuilder sb = new StringBuilder();
        sb.append("| | |\n|---|---|\n");
        entries.forEach((k, v) -> sb.append("| ").append(k).append(" | ").append(v.replace("|", "\\|")).append(" |\n"));
        return sb.toString();
    }

    /** CSV comment lines ({@code # key: value}). */
    public String csvComments() {
        StringBuilder sb = new StringBuilder();
        sb.append("# ").append(title).append('\n');
        entries.forEach((k, v) -> sb.append("# ").append(k).append(": ").append(v).append('\n'));
        return sb.toString();
    }

    /** The value of {@code key}, or "". */
    public String get(String key) {
        return entries.getOrDefault(key, "");
    }
}
