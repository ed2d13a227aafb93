package io.jmigrate.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.qmp.QmpClient;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code jmigrate migrate}: drives a migration between two VM processes over QMP, as a
 * management tool would: sets capabilities and parameters on both ends, starts the incoming side
 * if it was deferred, starts the migration, shows a live progress line, and ends with a summary.
 */
@Command(name = "migrate", mixinStandardHelpOptions = true,
        description = "Migrate the VM at --src to the VM at --dst (both driven over QMP).")
public final class MigrateCommand implements Callable<Integer> {
    @Option(names = "--src", required = true, paramLabel = "QMP", description = "source VM's QMP (unix:PATH|tcp:HOST:PORT)")
    String src;

    @Option(names = "--dst", required = true, paramLabel = "QMP", description = "destination VM's QMP")
    String dst;

    @Option(names = "--uri", required = true, paramLabel = "URI",
            description = "migration URI the destination listens on: tcp:HOST:PORT or unix:PATH")
    String uri;

    @Option(names = "--set-parameter", paramLabel = "k=v", description = "migration parameter for both ends, "
            + "e.g. downtime-limit=500 or max-bandwidth=1073741824 (repeatable)")
    List<String> parameters = new ArrayList<>();

    @Option(names = "--capability", paramLabel = "CAP", description = "capability to switch on at both ends, "
            + "e.g. return-path (repeatable; events and x-jmigrate-digest are always on)")
    List<String> capabilities = new ArrayList<>();

    @Option(names = "--timeout", description = "give up (and cancel) after this many seconds (default 600)",
            defaultValue = "600")
    long timeoutSeconds;

    @Option(names = "--quiet", description = "no live progress line")
    boolean quiet;

    @Override
    public Integer call() throws Exception {
        PrintStream out = System.out;
        Map<String, Object> params = new LinkedHashMap<>();
        for (String p : parameters) {
            int eq = p.indexOf('=');
            if (eq <= 0) {
                throw new MigrationException(Category.CONFIG, "--set-parameter '" + p + "' must be key=value");
            }
            String v = p.substring(eq + 1);
            params.put(p.substring(0, eq), v.matches("-?\\d+") ? (Object) Long.parseLong(v) : v);
        }
        List<Map<String, Object>> caps = new ArrayList<>();
        caps.add(Map.of("capability", "events", "state", true));
        // the summary compares the RAM digests (the destination's vCPUs wait for its digest)
        caps.add(Map.of("capability", "x-jmigrate-digest", "state", true));
        for (String c : capabilities) {
            caps.add(Map.of("capability", c, "state", true));
        }
        try (QmpClient s = QmpClient.connect(src); QmpClient d = QmpClient.connect(dst)) {
            for (QmpClient c : List.of(s, d)) {
                c.execute("migrate-set-capabilities", Map.of("capabilities", caps));
                if (!params.isEmpty()) {
                    c.execute("migrate-set-parameters", params);
                }
            }
            JsonNode dstInfo = d.execute("query-migrate", null);
            if (!dstInfo.has("status")) {
                d.execute("migrate-incoming", Map.of("uri", uri));
            }
            s.execute("migrate", Map.of("uri", uri));
            long deadline = System.currentTimeMillis() + timeoutSeconds * 1000;
            JsonNode info;
            String last = "";
            while (true) {
                info = s.execute("query-migrate", null);
                String st = info.path("status").asText();
                if (st.equals("completed") || st.equals("failed") || st.equals("cancelled")) {
                    break;
                }
                if (System.currentTimeMillis() > deadline) {
                    s.execute("migrate_cancel", null);
                    throw new MigrationException(Category.TIMEOUT, "migration did not finish within " + timeoutSeconds
                            + " s; cancelled");
                }
                if (!quiet) {
                    String line = progress(info);
                    out.print("\r" + line + " ".repeat(Math.max(0, last.length() - line.length())));
                    out.flush();
                    last = line;
                }
                Thread.sleep(250);
            }
            if (!quiet && !last.isEmpty()) {
                out.println();
            }
            String status = info.path("status").asText();
            if (!status.equals("completed")) {
                out.println("Migration " + status + (info.has("error-desc") ? ": " + info.get("error-desc").asText() : ""));
                return 1;
            }
            JsonNode dstFinal = d.execute("query-migrate", null);
            for (int i = 0; i < 200 && !dstFinal.path("status").asText().equals("completed")
                    && !dstFinal.path("status").asText().equals("failed"); i++) {
                Thread.sleep(50);
                dstFinal = d.execute("query-migrate", null);
            }
            out.print(summary(info));
            JsonNode sd = s.execute("x-jmigrate-query-digest", null);
            JsonNode dd = d.execute("x-jmigrate-query-digest", null);
            String a = sd.path("outgoing").asText();
            String b = dd.path("incoming").asText();
            out.println("destination: " + dstFinal.path("status").asText() + ", run state "
                    + d.execute("query-status", null).path("status").asText());
            out.println("RAM digest: source " + abbrev(a) + ", destination " + abbrev(b) + (a.equals(b) && !a.isEmpty()
                    ? " (equal)" : " (DIFFERENT)"));
            return a.equals(b) && !a.isEmpty() ? 0 : 1;
        }
    }

    private static String abbrev(String d) {
        return d.isEmpty() ? "(none)" : d.substring(0, Math.min(16, d.length()));
    }

    /** The live line: pass, % of RAM sent in this pass, throughput, remaining, expected downtime. */
    static String progress(JsonNode info) {
        JsonNode ram = info.path("ram");
        long total = ram.path("total").asLong();
        long remaining = ram.path("remaining").asLong();
        double pct = total > 0 ? 100.0 * (total - remaining) / total : 0;
        return String.format("%-7s pass %d | %5.1f%% RAM sent | %7.1f Mbps | remaining %s | expected downtime %d ms",
                info.path("status").asText(), ram.path("dirty-sync-count").asLong(), pct, ram.path("mbps").asDouble(),
                bytes(remaining), info.path("expected-downtime").asLong());
    }

    static String summary(JsonNode info) {
        JsonNode ram = info.path("ram");
        long ms = info.path("total-time").asLong();
        long transferred = ram.path("transferred").asLong();
        return String.format("Migration completed: total time %d ms, downtime %d ms, setup %d ms%n"
                        + "  transferred %s (%d normal pages, %d zero pages) in %d passes, throughput %.1f Mbps%n",
                ms, info.path("downtime").asLong(), info.path("setup-time").asLong(), bytes(transferred),
                ram.path("normal").asLong(), ram.path("duplicate").asLong(), ram.path("dirty-sync-count").asLong(),
                ms > 0 ? transferred * 8.0 / 1000 / ms : 0.0);
    }

    static String bytes(long b) {
        if (b >= 1L << 30) {
            return String.format("%.2f GiB", b / (double) (1L << 30));
        }
        if (b >= 1L << 20) {
            return String.format("%.1f MiB", b / (double) (1L << 20));
        }
        return String.format("%d KiB", b >> 10);
    }
}
