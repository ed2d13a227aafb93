package io.jmigrate.bench;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.bench.Timeline.Kind;
import io.jmigrate.bench.Timeline.Lane;
import io.jmigrate.bench.Timeline.Marker;
import io.jmigrate.bench.Timeline.Side;
import io.jmigrate.bench.Timeline.Span;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What was recorded of one switchover, and its conversion into a {@link Timeline}.
 *
 * <p>The sources, all recorded by the VM processes themselves (nothing is re-timed here):
 * <ul>
 *   <li>both sides' {@code query-migrate} member {@code x-jmigrate-device-state}: per device the
 *       save (source) or load (destination) thread's {@code thread-start-us} and
 *       {@code thread-end-us}, its {@code bytes}; per channel its {@code bytes}; the phases with
 *       {@code at-us} (wall-clock µs since the epoch, so both processes on one host share the
 *       axis);</li>
 *   <li>when the VMs ran with a JFR recording, its {@code io.jmigrate.DeviceStatePacketSent} and
 *       {@code io.jmigrate.DeviceStatePacketReceived} events: one span per packet on the lane of
 *       the channel thread that wrote or handed it on ({@code mig/src/send_N},
 *       {@code mig/dst/recv_N}).</li>
 * </ul>
 * The main channel's lanes are drawn from the phases: on the source from the VM stop to the END
 * sections written and from the save threads joined to EOF sent; on the destination from
 * SWITCHOVER_START loaded to EOF loaded. The origin is the source's {@code vm-stopped}.
 *
 * @param title    the timeline's title
 * @param subtitle its second line
 * @param source   the source's final {@code query-migrate}
 * @param dest     the destination's final {@code query-migrate}
 * @param srcJfr   the source's recording, or null
 * @param dstJfr   the destination's recording, or null
 */
public record SwitchoverRecord(String title, String subtitle, JsonNode source, JsonNode dest, Path srcJfr,
                               Path dstJfr) {
    static final String SENT = "io.jmigrate.DeviceStatePacketSent";
    static final String RECEIVED = "io.jmigrate.DeviceStatePacketReceived";

    /** Phase name as recorded → as drawn. */
    static String phaseLabel(String p) {
        return switch (p) {
            case "vm-stopped" -> "VM stopped";
            case "switchover-start-sent" -> "SWITCHOVER_START sent";
            case "end-sections-written" -> "END sections written";
            case "save-threads-joined" -> "save threads joined";
            case "eof-sent" -> "EOF sent";
            case "destination-loaded" -> "destination loaded (SHUT)";
            case "channels-closed" -> "channels closed";
            case "switchover-start-loaded" -> "SWITCHOVER_START loaded";
            case "eof-loaded" -> "EOF loaded";
            case "load-threads-joined" -> "load threads joined";
            case "completed" -> "destination completed";
            case "resumed" -> "destination resumed";
            default -> p;
        };
    }

    private static Map<String, Long> phases(JsonNode info) {
        Map<String, Long> m = new java.util.LinkedHashMap<>();
        for (JsonNode p : info.path("x-jmigrate-device-state").path("phases")) {
            m.putIfAbsent(p.path("phase").asText(), p.path("at-us").asLong() * 1000);
        }
        return m;
    }

    /** The device name as drawn: the id before "/" of the idstr ("vf0/vfio" → "vf0"). */
    static String device(String idstr) {
        int slash = idstr.indexOf('/');
        return slash > 0 ? idstr.substring(0, slash) : idstr;
    }

    /** The source's VM stop, epoch ns, or -1 if the switchover recorded no phases. */
    public long originNs() {
        Long o = phases(source).get("vm-stopped");
        return o == null ? -1 : o;
    }

    /** The timeline, times relative to the source's VM stop. */
    public Timeline timeline() {
        Map<String, Long> sp = phases(source);
        Map<String, Long> dp = phases(dest);
        long origin = originNs();
        long windowStart = origin < 0 ? Long.MIN_VALUE : origin - 5_000_000_000L;
        long windowEnd = origin < 0 ? Long.MAX_VALUE : Math.max(maxValue(sp), maxValue(dp)) + 1_000_000_000L;
        List<Lane> lanes = new ArrayList<>();
        // source main channel
        List<Span> main = new ArrayList<>();
        span(main, sp.get("vm-stopped"), sp.get("end-sections-written"), "ram");
        span(main, sp.get("save-threads-joined"), sp.get("eof-sent"), "");
        lanes.add(new Lane("mig/src/main", Side.SOURCE, Kind.MAIN_CHANNEL, main));
        lanes.addAll(threadLanes(source, "mig/src/save_", Side.SOURCE, Kind.SAVE_THREAD));
        lanes.addAll(channelLanes(source, srcJfr, SENT, "mig/src/send_", Side.SOURCE, windowStart, windowEnd));
        lanes.addAll(channelLanes(dest, dstJfr, RECEIVED, "mig/dst/recv_", Side.DESTINATION, windowStart, windowEnd));
        List<Span> dmain = new ArrayList<>();
        span(dmain, dp.get("switchover-start-loaded"), dp.get("eof-loaded"), "");
        lanes.add(new Lane("mig/dst/main", Side.DESTINATION, Kind.MAIN_CHANNEL, dmain));
        lanes.addAll(threadLanes(dest, "mig/dst/load_", Side.DESTINATION, Kind.LOAD_THREAD));
        List<Marker> markers = new ArrayList<>();
        sp.forEach((k, v) -> markers.add(new Marker(phaseLabel(k), v, Side.SOURCE)));
        dp.forEach((k, v) -> markers.add(new Marker(phaseLabel(k), v, Side.DESTINATION)));
        Timeline t = new Timeline(title, subtitle, lanes, markers);
        return origin < 0 ? t : t.relativeTo(origin);
    }

    private static long maxValue(Map<String, Long> m) {
        return m.values().stream().mapToLong(Long::longValue).max().orElse(0);
    }

    private static void span(List<Span> into, Long a, Long b, String device) {
        if (a != null && b != null && b >= a) {
            into.add(new Span(a, b, device, 0));
        }
    }

    private static List<Lane> threadLanes(JsonNode info, String prefix, Side side, Kind kind) {
        List<Lane> out = new ArrayList<>();
        for (JsonNode d : info.path("x-jmigrate-device-state").path("devices")) {
            String dev = device(d.path("idstr").asText("?"));
            List<Span> spans = new ArrayList<>();
            long a = d.path("thread-start-us").asLong(-1);
            long b = d.path("thread-end-us").asLong(-1);
            if (a >= 0 && b >= a) {
                spans.add(new Span(a * 1000, b * 1000, dev, d.path("bytes").asLong(0)));
            }
            out.add(new Lane(prefix + dev, side, kind, spans));
        }
        return out;
    }

    /** One lane per multifd channel: its packets from the recording, or none without one. */
    private static List<Lane> channelLanes(JsonNode info, Path jfr, String event, String prefix, Side side,
                                           long from, long to) {
        Map<Integer, List<Span>> byChannel = new TreeMap<>();
        Map<Integer, String> threadName = new TreeMap<>();
        for (JsonNode c : info.path("x-jmigrate-device-state").path("channels")) {
            byChannel.put(c.path("id").asInt(), new ArrayList<>());
        }
        if (jfr != null && Files.isRegularFile(jfr)) {
            try (RecordingFile rf = new RecordingFile(jfr)) {
                while (rf.hasMoreEvents()) {
                    RecordedEvent e = rf.readEvent();
                    if (!e.getEventType().getName().equals(event)) {
                        continue;
                    }
                    long s = epochNs(e.getStartTime());
                    long en = epochNs(e.getEndTime());
                    if (s < from || s > to) {
                        continue;
                    }
                    int ch = e.getInt("channel");
                    byChannel.computeIfAbsent(ch, k -> new ArrayList<>()).add(new Span(s, Math.max(s, en),
                            device(e.getString("device")), e.getLong("size")));
                    if (e.getThread() != null && e.getThread().getJavaName() != null) {
                        threadName.putIfAbsent(ch, e.getThread().getJavaName());
                    }
                }
            } catch (IOException e) {
                // a recording cut short (process killed): draw what the QMP data has
            }
        }
        List<Lane> out = new ArrayList<>();
        byChannel.forEach((ch, spans) -> out.add(new Lane(threadName.getOrDefault(ch, prefix + ch), side,
                Kind.MULTIFD_CHANNEL, spans)));
        return out;
    }

    private static long epochNs(Instant i) {
        return i.getEpochSecond() * 1_000_000_000L + i.getNano();
    }
}
