package io.jmigrate.common;

import java.time.Duration;

/** Durations as people read them in messages: "5 s", "250 ms", "2 min 30 s" (not ISO's "PT5S"). */
public final class Durations {
    private Durations() {
    }

    public static String human(Duration d) {
        long ms = d.toMillis();
        if (ms < 1000) {
            return ms + " ms";
        }
        if (ms % 1000 != 0 && ms < 10_000) {
            return String.format("%.1f s", ms / 1000.0);
        }
        long s = d.toSeconds();
        if (s < 120) {
            return s + " s";
        }
        return (s / 60) + " min" + (s % 60 == 0 ? "" : " " + (s % 60) + " s");
    }
}
