package io.jmigrate.bench;

import io.jmigrate.bench.Timeline.Kind;
import io.jmigrate.bench.Timeline.Lane;
import io.jmigrate.bench.Timeline.Marker;
import io.jmigrate.bench.Timeline.Side;
import io.jmigrate.bench.Timeline.Span;

import java.util.ArrayList;
import java.util.List;

/** Synthetic switchovers for the chart tests: deterministic, shaped like a real one. */
final class SampleTimelines {
    private SampleTimelines() {
    }

    static final long MS = 1_000_000;

    /**
     * {@code devices} devices of 1 MiB chunks over {@code channels} channels: device i has
     * 8 + 4·i chunks, each read in 3 ms, sent round-robin, written in 2 ms on the destination.
     */
    static Timeline parallel(int devices, int channels) {
        List<List<Span>> send = new ArrayList<>();
        List<List<Span>> recv = new ArrayList<>();
        for (int c = 0; c < channels; c++) {
            send.add(new ArrayList<>());
            recv.add(new ArrayList<>());
        }
        List<Lane> saves = new ArrayList<>();
        List<Lane> loads = new ArrayList<>();
        long[] chFree = new long[channels];
        int rr = 0;
        long lastLoad = 0;
        for (int d = 0; d < devices; d++) {
            String dev = "vf" + d;
            int chunks = 8 + 4 * d;
            long t = MS / 2 + d * MS / 10;
            long loadFree = 2 * MS;
            for (int k = 0; k < chunks; k++) {
                t += 3 * MS;                            // read one chunk
                int c = rr++ % channels;
                long s = Math.max(t, chFree[c]);
                long e = s + MS;                        // 1 MiB on the wire
                chFree[c] = e;
                send.get(c).add(new Span(s, e, dev, 1 << 20));
                recv.get(c).add(new Span(s + MS / 20, e + MS / 20, dev, 1 << 20));
                long ls = Math.max(loadFree, e + MS / 20);
                loadFree = ls + 2 * MS;
            }
            saves.add(new Lane("mig/src/save_" + dev, Side.SOURCE, Kind.SAVE_THREAD,
                    List.of(new Span(MS / 2 + d * MS / 10, t, dev, (long) chunks << 20))));
            loads.add(new Lane("mig/dst/load_" + dev, Side.DESTINATION, Kind.LOAD_THREAD,
                    List.of(new Span(2 * MS, loadFree, dev, (long) chunks << 20))));
            lastLoad = Math.max(lastLoad, loadFree);
        }
        long joined = saves.stream().mapToLong(Lane::lastEnd).max().orElse(0) + MS / 5;
        List<Lane> lanes = new ArrayList<>();
        lanes.add(new Lane("mig/src/main", Side.SOURCE, Kind.MAIN_CHANNEL, List.of(
                new Span(0, 2 * MS, "ram", 4 << 20), new Span(joined, joined + MS, "", 4096))));
        lanes.addAll(saves);
        for (int c = 0; c < channels; c++) {
            lanes.add(new Lane("mig/src/send_" + c, Side.SOURCE, Kind.MULTIFD_CHANNEL, send.get(c)));
        }
        for (int c = 0; c < channels; c++) {
            lanes.add(new Lane("mig/dst/recv_" + c, Side.DESTINATION, Kind.MULTIFD_CHANNEL, recv.get(c)));
        }
        lanes.add(new Lane("mig/dst/main", Side.DESTINATION, Kind.MAIN_CHANNEL, List.of(
                new Span(MS / 10, 2 * MS + MS / 10, "ram", 4 << 20), new Span(joined + MS / 10, joined + MS, "", 4096))));
        lanes.addAll(loads);
        List<Marker> markers = List.of(
                new Marker("VM stopped", 0, Side.SOURCE),
                new Marker("END sections written", 2 * MS, Side.SOURCE),
                new Marker("save threads joined", joined, Side.SOURCE),
                new Marker("EOF sent", joined + MS, Side.SOURCE),
                new Marker("SWITCHOVER_START loaded", 2 * MS, Side.DESTINATION),
                new Marker("destination loaded", lastLoad + MS / 2, Side.DESTINATION),
                new Marker("destination resumed", lastLoad + MS, Side.DESTINATION));
        return new Timeline("switchover 3 of 3: " + devices + " blob devices, multifd device state on, " + channels
                + " channels", "synthetic sample: 1 MiB chunks, read 3 ms, wire 1 ms, write 2 ms", lanes, markers);
    }
}
