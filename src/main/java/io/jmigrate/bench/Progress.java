package io.jmigrate.bench;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.Iterator;
import java.util.Map;

/**
 * One sample of a migration's progress, as the live progress line shows it: read from the
 * source's {@code query-migrate}.
 *
 * @param phase              {@code status} (setup, active, device, completed, ...), or the
 *                           device-state phase from {@code x-jmigrate-device-state} when it names one
 * @param ramDone            RAM bytes no longer pending ({@code ram.total − ram.remaining})
 * @param ramTotal           {@code ram.total}
 * @param deviceStateBytes   device-state bytes sent so far (sum over {@code x-jmigrate-device-state}'s
 *                           devices), 0 if absent
 * @param mbps               {@code ram.mbps}: throughput in megabits per second
 * @param expectedDowntimeMs {@code expected-downtime}, or -1 if absent
 * @param downtimeMs         {@code downtime} once completed, or -1
 */
public record Progress(String phase, long ramDone, long ramTotal, long deviceStateBytes, double mbps,
                       long expectedDowntimeMs, long downtimeMs) {

    /** Reads a {@code query-migrate} reply. */
    public static Progress of(JsonNode q) {
        JsonNode ram = q.path("ram");
        long total = ram.path("total").asLong(0);
        long remaining = ram.path("remaining").asLong(total);
        String status = q.path("status").asText("none");
        if (status.equals("completed")) {
            remaining = 0;
        }
        JsonNode ds = q.path("x-jmigrate-device-state");
        String phase = status;
        if (ds.path("phase").isTextual() && !status.equals("completed") && !status.equals("failed")) {
            phase = status + "/" + ds.path("phase").asText();
        }
        return new Progress(phase, Math.max(0, total - remaining), total, deviceStateBytes(ds),
                ram.path("mbps").asDouble(0), q.path("expected-downtime").asLong(-1), q.path("downtime").asLong(-1));
    }

    /**
     * Device-state bytes from {@code x-jmigrate-device-state}: its {@code bytes} if it has one, else
     * the sum of {@code bytes} over its {@code devices} (an array or an object keyed by device).
     */
    static long deviceStateBytes(JsonNode ds) {
        if (ds.isMissingNode() || ds.isNull()) {
            return 0;
        }
        if (ds.path("bytes").isNumber()) {
            return ds.path("bytes").asLong();
        }
        long sum = 0;
        JsonNode devs = ds.path("devices");
        if (devs.isArray()) {
            for (JsonNode d : devs) {
                sum += d.path("bytes").asLong(0);
            }
        } else if (devs.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = devs.properties().iterator(); it.hasNext(); ) {
                sum += it.next().getValue().path("bytes").asLong(0);
            }
        }
        return sum;
    }

    /** RAM done in percent (0..100). */
    public double ramPercent() {
        return ramTotal <= 0 ? 0 : Math.min(100, 100.0 * ramDone / ramTotal);
    }

    public boolean finished() {
        return phase.equals("completed") || phase.equals("failed") || phase.equals("cancelled");
    }
}
