package io.jmigrate.bench;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A switchover as recorded events, the input of {@link TimelineChart}: lanes of intervals (one
 * lane per thread or channel) plus phase markers, on one time axis.
 *
 * <p>This is a plain data model on purpose. Whatever recorded the switchover is converted into
 * it: the {@code x-jmigrate-device-state} member of both sides' {@code query-migrate} (per-device
 * save and load thread times, phases), or a JFR recording's packet and phase events. Nothing is
 * re-timed: every span and marker is a recorded time.
 *
 * <p>Times are nanoseconds from the timeline's origin (by convention the moment the source VM
 * stopped, so the downtime window starts at 0). Source and destination share one clock when
 * both processes run on the same host (both report wall-clock or CLOCK_MONOTONIC times); the
 * converter subtracts the origin.
 *
 * @param title    first line above the chart (e.g. "switchover 20 of 20: 4 VFs, multifd device state on")
 * @param subtitle second line (parameters; may be empty)
 * @param lanes    in drawing order, top to bottom
 * @param markers  phase boundaries, any order
 */
public record Timeline(String title, String subtitle, List<Lane> lanes, List<Marker> markers) {
    public Timeline {
        Objects.requireNonNull(title);
        Objects.requireNonNull(subtitle);
        lanes = List.copyOf(lanes);
        markers = List.copyOf(markers);
    }

    /** Which process a lane or marker belongs to. */
    public enum Side {
        SOURCE, DESTINATION
    }

    /** What a lane is, as the picture has them. */
    public enum Kind {
        /** The main channel (mig/src/main sending, mig/dst/main loading). */
        MAIN_CHANNEL,
        /** A device's save thread, mig/src/save_DEV. */
        SAVE_THREAD,
        /** A multifd channel thread, mig/src/send_N or mig/dst/recv_N. */
        MULTIFD_CHANNEL,
        /** A device's load thread, mig/dst/load_DEV. */
        LOAD_THREAD
    }

    /**
     * One row of the chart.
     *
     * @param name  the thread or channel name as it appears in thread dumps (mig/src/save_vf0)
     * @param side  source or destination
     * @param kind  what it is
     * @param spans what it did, any order, may overlap
     */
    public record Lane(String name, Side side, Kind kind, List<Span> spans) {
        public Lane {
            Objects.requireNonNull(name);
            Objects.requireNonNull(side);
            Objects.requireNonNull(kind);
            spans = List.copyOf(spans);
        }

        /** The end of its last span, or Long.MIN_VALUE without spans. */
        public long lastEnd() {
            return spans.stream().mapToLong(Span::endNs).max().orElse(Long.MIN_VALUE);
        }

        public long bytes() {
            return spans.stream().mapToLong(Span::bytes).sum();
        }
    }

    /**
     * A busy interval: a thread working for a device, or a packet (or a run of packets) on a
     * channel.
     *
     * @param startNs from the origin
     * @param endNs   from the origin, not before start
     * @param device  the device it was for (the colour); "ram" for RAM, "" for none
     * @param bytes   bytes moved, 0 if unknown
     */
    public record Span(long startNs, long endNs, String device, long bytes) {
        public Span {
            if (endNs < startNs) {
                throw new IllegalArgumentException("span ends (" + endNs + " ns) before it starts (" + startNs + " ns)");
            }
            Objects.requireNonNull(device);
            if (bytes < 0) {
                throw new IllegalArgumentException("negative bytes");
            }
        }
    }

    /**
     * A phase boundary (PROTOCOL's downtime phases: VM stopped, END sections written, save threads
     * joined, EOF sent, destination loaded, destination resumed).
     */
    public record Marker(String name, long atNs, Side side) {
        public Marker {
            Objects.requireNonNull(name);
            Objects.requireNonNull(side);
        }
    }

    /** The earliest span start or marker, or 0 if empty. */
    public long startNs() {
        long s = Long.MAX_VALUE;
        for (Lane l : lanes) {
            for (Span sp : l.spans) {
                s = Math.min(s, sp.startNs);
            }
        }
        for (Marker m : markers) {
            s = Math.min(s, m.atNs);
        }
        return s == Long.MAX_VALUE ? 0 : s;
    }

    /** The latest span end or marker, or 0 if empty. */
    public long endNs() {
        long e = Long.MIN_VALUE;
        for (Lane l : lanes) {
            e = Math.max(e, l.lastEnd());
        }
        for (Marker m : markers) {
            e = Math.max(e, m.atNs);
        }
        return e == Long.MIN_VALUE ? 0 : e;
    }

    /** Devices in the order they first appear (the legend's order), RAM and "" left out. */
    public List<String> devices() {
        Map<String, Boolean> seen = new LinkedHashMap<>();
        for (Lane l : lanes) {
            for (Span s : l.spans) {
                if (!s.device.isEmpty() && !s.device.equals("ram")) {
                    seen.putIfAbsent(s.device, true);
                }
            }
        }
        return new ArrayList<>(seen.keySet());
    }

    /**
     * The device-state lane (save or load thread) that ends last: the one that set the downtime,
     * or null if there is none.
     */
    public Lane critical() {
        return lanes.stream().filter(l -> l.kind == Kind.SAVE_THREAD || l.kind == Kind.LOAD_THREAD)
                .filter(l -> !l.spans.isEmpty()).max(Comparator.comparingLong(Lane::lastEnd)).orElse(null);
    }

    /** This timeline with every time shifted so that {@code originNs} becomes 0. */
    public Timeline relativeTo(long originNs) {
        List<Lane> ls = new ArrayList<>();
        for (Lane l : lanes) {
            ls.add(new Lane(l.name, l.side, l.kind, l.spans.stream()
                    .map(s -> new Span(s.startNs - originNs, s.endNs - originNs, s.device, s.bytes)).toList()));
        }
        return new Timeline(title, subtitle, ls, markers.stream()
                .map(m -> new Marker(m.name, m.atNs - originNs, m.side)).toList());
    }
}
