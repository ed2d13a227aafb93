package io.jmigrate.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.qmp.QmpClient;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.util.Iterator;
import java.util.Map;

/** {@code jmigrate info migrate QMP}: prints like HMP's {@code info migrate}. */
@Command(name = "info", mixinStandardHelpOptions = true, description = "Show information, like HMP's info.",
        subcommands = {InfoCommand.Migrate.class})
public final class InfoCommand implements Runnable {
    @Override
    public void run() {
        new picocli.CommandLine(this).usage(System.out);
    }

    @Command(name = "migrate", mixinStandardHelpOptions = true,
            description = "Migration status, capabilities and RAM statistics of the VM at QMP.")
    static final class Migrate implements java.util.concurrent.Callable<Integer> {
        @Parameters(index = "0", paramLabel = "QMP", description = "unix:PATH or tcp:HOST:PORT of the VM")
        String qmp;

        @Override
        public Integer call() {
            try (QmpClient c = QmpClient.connect(qmp)) {
                System.out.print(format(c.execute("query-migrate", null), c.execute("query-migrate-capabilities", null),
                        c.execute("query-migrate-parameters", null)));
            }
            return 0;
        }
    }

    /** HMP-style text for a query-migrate answer (plus capabilities and parameters). */
    static String format(JsonNode info, JsonNode caps, JsonNode params) {
        StringBuilder sb = new StringBuilder();
        if (caps != null) {
            sb.append("capabilities:");
            for (JsonNode c : caps) {
                sb.append(' ').append(c.path("capability").asText()).append(": ")
                        .append(c.path("state").asBoolean() ? "on" : "off");
            }
            sb.append('\n');
        }
        if (params != null) {
            sb.append("parameters:");
            for (Iterator<Map.Entry<String, JsonNode>> it = params.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                sb.append(' ').append(e.getKey()).append(": ").append(e.getValue().asText());
            }
            sb.append('\n');
        }
        if (!info.has("status")) {
            return sb.append("Migration status: none\n").toString();
        }
        sb.append("Migration status: ").append(info.path("status").asText()).append('\n');
        line(sb, info, "error-desc", "Error", "");
        line(sb, info, "total-time", "total time", " ms");
        line(sb, info, "expected-downtime", "expected downtime", " ms");
        line(sb, info, "downtime", "downtime", " ms");
        line(sb, info, "setup-time", "setup", " ms");
        JsonNode ram = info.get("ram");
        if (ram != null) {
            kib(sb, ram, "transferred", "transferred ram");
            line(sb, ram, "mbps", "throughput", " mbps");
            kib(sb, ram, "remaining", "remaining ram");
            kib(sb, ram, "total", "total ram");
            line(sb, ram, "duplicate", "duplicate", " pages");
            line(sb, ram, "normal", "normal", " pages");
            kib(sb, ram, "normal-bytes", "normal bytes");
            line(sb, ram, "dirty-sync-count", "dirty sync count", "");
            line(sb, ram, "page-size", "page size", " bytes");
            kib(sb, ram, "multifd-bytes", "multifd bytes");
            line(sb, ram, "pages-per-second", "pages-per-second", "");
            line(sb, ram, "dirty-pages-rate", "dirty pages rate", " pages");
            kib(sb, ram, "precopy-bytes", "precopy ram");
            kib(sb, ram, "downtime-bytes", "downtime ram");
        }
        JsonNode vfio = info.get("vfio");
        if (vfio != null) {
            // HMP's "info migrate": the VFIO bytes of every device, in KiB
            sb.append("vfio device transferred: ").append(vfio.path("transferred").asLong() >> 10).append(" kbytes\n");
        }
        return sb.toString();
    }

    private static void line(StringBuilder sb, JsonNode n, String key, String label, String unit) {
        if (n.has(key)) {
            sb.append(label).append(": ").append(n.get(key).asText()).append(unit).append('\n');
        }
    }

    private static void kib(StringBuilder sb, JsonNode n, String key, String label) {
        if (n.has(key)) {
            sb.append(label).append(": ").append(n.get(key).asLong() >> 10).append(" kbytes\n");
        }
    }
}
