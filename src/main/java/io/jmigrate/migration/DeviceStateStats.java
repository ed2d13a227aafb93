package io.jmigrate.migration;

import io.jmigrate.multifd.ChannelStats;
import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * The {@code x-jmigrate-device-state} member of {@code query-migrate} (one side of one
 * migration), plus the JFR phase events. Times are wall-clock microseconds since the epoch
 * ({@code *-us}), so that a source's and a destination's figures on one host line up.
 *
 * <pre>
 * "x-jmigrate-device-state": {
 *   "channels": [{"id": 0, "bytes": 9437328, "device-state-packets": 36}, …],
 *   "devices": [{"idstr": "b0/blob", "instance-id": 0, "transfer": "multifd",
 *                "thread-start-us": …, "thread-end-us": …, "packets": 64, "bytes": 16778240,
 *                "packets-per-channel": {"0": 33, "1": 31}, …device counters…}, …],
 *   "phases": [{"phase": "vm-stopped", "at-us": …, "since-vm-stopped-ms": 0.0}, …]
 * }
 * </pre>
 *
 * Source phases: {@code vm-stopped}, {@code switchover-start-sent}, {@code end-sections-written},
 * {@code save-threads-joined}, {@code eof-sent}, {@code destination-loaded} (SHUT received; with
 * a return path only), {@code channels-closed} (the downtime's end). Destination phases:
 * {@code switchover-start-loaded}, {@code eof-loaded}, {@code load-threads-joined} (the
 * destination has loaded), {@code completed}, {@code resumed}.
 */
final class DeviceStateStats {
    /** One phase of the switchover as a JFR span: from the previous phase mark to this one. */
    @Name("io.jmigrate.MigrationPhase")
    @Label("Migration phase")
    @Category({"jmigrate", "migration"})
    @Description("The span from the previous phase mark of one side of a migration to this one")
    static final class PhaseEvent extends Event {
        @Label("Side")
        String side;
        @Label("Phase reached")
        String phase;
    }

    /** Counters of one device on this side. */
    static final class DeviceRecord {
        final String idstr;
        final int instanceId;
        volatile String transfer = "main";
        volatile long threadStartUs = -1;
        volatile long threadEndUs = -1;
        final AtomicLong packets = new AtomicLong();
        final AtomicLong bytes = new AtomicLong();
        final Map<Integer, AtomicLong> perChannel = new ConcurrentHashMap<>();
        volatile Supplier<Map<String, Object>> extra = Map::of;

        DeviceRecord(String idstr, int instanceId) {
            this.idstr = idstr;
            this.instanceId = instanceId;
        }

        void packet(int channel, long size) {
            packets.incrementAndGet();
            bytes.addAndGet(size);
            if (channel >= 0) {
                perChannel.computeIfAbsent(channel, c -> new AtomicLong()).incrementAndGet();
            }
        }
    }

    private final String side;
    private final Map<String, DeviceRecord> devices = new ConcurrentHashMap<>();
    /** The records in creation order; a record is listed only once it is in {@link #devices}. */
    private final List<DeviceRecord> order = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final List<Map.Entry<String, Long>> phases = new java.util.concurrent.CopyOnWriteArrayList<>();
    private volatile long vmStoppedUs = -1;
    private PhaseEvent open;

    /**
     * @param side {@code source} or {@code destination}
     */
    DeviceStateStats(String side) {
        this.side = side;
        warmUpEvents();
    }

    /**
     * Loads and initialises the JFR event classes now, when a migration is created: the first
     * use of an event class costs hundreds of milliseconds on a loaded machine (jdk.jfr
     * initialisation), which must not land inside the downtime.
     */
    static void warmUpEvents() {
        PhaseEvent p = new PhaseEvent();
        p.begin();
        p.end();
        p.shouldCommit();
        io.jmigrate.multifd.DeviceStateEvents.warmUp();
    }

    static long nowUs() {
        Instant i = Instant.now();
        return i.getEpochSecond() * 1_000_000 + i.getNano() / 1000;
    }

    DeviceRecord device(String idstr, int instanceId) {
        // listed after the map holds it (computeIfAbsent inserts only once the function
        // returned): listing the key from inside the function let a concurrent query-migrate
        // find the key but no record (an NPE seen during a device-state transfer)
        boolean[] created = {false};
        DeviceRecord r = devices.computeIfAbsent(idstr + "\u0000" + instanceId, k -> {
            created[0] = true;
            return new DeviceRecord(idstr, instanceId);
        });
        if (created[0]) {
            order.add(r);
        }
        return r;
    }

    /** Records that {@code phase} was reached now, and commits the JFR span that ends here. */
    synchronized void phase(String phase) {
        long now = nowUs();
        if (phase.equals("vm-stopped")) {
            vmStoppedUs = now;
        }
        phases.add(Map.entry(phase, now));
        if (open != null) {
            open.end();
            if (open.shouldCommit()) {
                open.side = side;
                open.phase = phase;
                open.commit();
            }
        }
        open = new PhaseEvent();
        open.begin();
    }

    /** Epoch µs when {@code phase} was reached, or -1. */
    long phaseAt(String phase) {
        for (Map.Entry<String, Long> e : phases) {
            if (e.getKey().equals(phase)) {
                return e.getValue();
            }
        }
        return -1;
    }

    boolean isEmpty() {
        return devices.isEmpty() && phases.isEmpty();
    }

    Map<String, Object> toQmp(List<ChannelStats> channels) {
        Map<String, Object> m = new LinkedHashMap<>();
        List<Object> ch = new ArrayList<>();
        for (ChannelStats c : channels) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("id", c.id());
            e.put("bytes", c.bytes());
            e.put("device-state-packets", c.deviceStatePackets());
            ch.add(e);
        }
        m.put("channels", ch);
        List<Object> devs = new ArrayList<>();
        for (DeviceRecord d : order) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("idstr", d.idstr);
            e.put("instance-id", d.instanceId);
            e.put("transfer", d.transfer);
            if (d.threadStartUs >= 0) {
                e.put("thread-start-us", d.threadStartUs);
            }
            if (d.threadEndUs >= 0) {
                e.put("thread-end-us", d.threadEndUs);
            }
            e.put("packets", d.packets.get());
            e.put("bytes", d.bytes.get());
            Map<String, Object> pc = new java.util.TreeMap<>();
            d.perChannel.forEach((c, n) -> pc.put(String.valueOf(c), n.get()));
            e.put("packets-per-channel", pc);
            e.putAll(d.extra.get());
            devs.add(e);
        }
        m.put("devices", devs);
        List<Object> ph = new ArrayList<>();
        for (Map.Entry<String, Long> p : phases) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("phase", p.getKey());
            e.put("at-us", p.getValue());
            if (vmStoppedUs >= 0) {
                e.put("since-vm-stopped-ms", Math.round((p.getValue() - vmStoppedUs) / 10.0) / 100.0);
            }
            ph.add(e);
        }
        m.put("phases", ph);
        return m;
    }
}
