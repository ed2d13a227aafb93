package io.jmigrate.bench;

import java.io.PrintStream;
import java.util.Locale;

/**
 * The live progress of one migration: phase, RAM %, device-state bytes, throughput and
 * expected downtime.
 *
 * <p>On a terminal it is one line redrawn in place ({@code \r}) with a bar:
 * <pre>
 *   a→b [##########..........]  active  RAM 52% (532/1024 MiB)  dev 0 B  4.21 Gbit/s  exp. downtime 38 ms
 * </pre>
 * Anywhere else (a pipe, a file, CI) it prints plain lines instead: one when the phase changes
 * and at most one per {@code plainInterval} otherwise, and a final line when the migration ends.
 * The caller samples {@code query-migrate} and passes the time, so the display itself never
 * sleeps or reads a clock.
 */
public final class ProgressDisplay {
    private static final int BAR = 24;

    private final PrintStream out;
    private final boolean terminal;
    private final long plainIntervalNs;
    private final String prefix;
    private String lastPhase;
    private long lastPlainNs = Long.MIN_VALUE;
    private int lastWidth;

    /**
     * @param terminal        redraw one line with a bar (true) or print plain lines (false)
     * @param plainIntervalNs least time between two plain lines of the same phase
     * @param prefix          what the line starts with (e.g. the direction "a→b")
     */
    public ProgressDisplay(PrintStream out, boolean terminal, long plainIntervalNs, String prefix) {
        this.out = out;
        this.terminal = terminal;
        this.plainIntervalNs = plainIntervalNs;
        this.prefix = prefix;
    }

    /** Terminal mode if this JVM's console is a terminal, else plain lines every second. */
    public static ProgressDisplay forConsole(PrintStream out, String prefix) {
        return new ProgressDisplay(out, isTerminal(), 1_000_000_000L, prefix);
    }

    /** Whether standard output is a terminal ({@link System#console()} and {@code Console.isTerminal}). */
    public static boolean isTerminal() {
        java.io.Console c = System.console();
        return c != null && c.isTerminal();
    }

    public boolean terminal() {
        return terminal;
    }

    /** Shows {@code p}, sampled at {@code nowNs}. */
    public void update(Progress p, long nowNs) {
        boolean phaseChanged = !p.phase().equals(lastPhase);
        lastPhase = p.phase();
        if (terminal) {
            String line = barLine(p);
            int pad = Math.max(0, lastWidth - line.length());
            out.print("\r" + line + " ".repeat(pad));
            lastWidth = line.length();
            if (p.finished()) {
                out.println();
                lastWidth = 0;
            }
            out.flush();
            return;
        }
        if (phaseChanged || p.finished() || lastPlainNs == Long.MIN_VALUE || nowNs - lastPlainNs >= plainIntervalNs) {
            out.println(plainLine(p));
            out.flush();
            lastPlainNs = nowNs;
        }
    }

    /** The terminal line. */
    public String barLine(Progress p) {
        int filled = (int) Math.round(p.ramPercent() / 100 * BAR);
        return String.format(Locale.ROOT, "%s[%s%s]  %s", prefix.isEmpty() ? "" : prefix + " ",
                "#".repeat(filled), ".".repeat(BAR - filled), fields(p));
    }

    /** The plain line. */
    public String plainLine(Progress p) {
        return (prefix.isEmpty() ? "" : prefix + " ") + fields(p);
    }

    private static String fields(Progress p) {
        StringBuilder sb = new StringBuilder();
        sb.append(p.phase());
        sb.append(String.format(Locale.ROOT, "  RAM %.0f%% (%d/%d MiB)", p.ramPercent(), p.ramDone() >> 20,
                p.ramTotal() >> 20));
        sb.append("  dev ").append(TimelineChart.humanBytes(p.deviceStateBytes()));
        sb.append(String.format(Locale.ROOT, "  %.2f Gbit/s", p.mbps() / 1000));
        if (p.downtimeMs() >= 0) {
            sb.append("  downtime ").append(p.downtimeMs()).append(" ms");
        } else if (p.expectedDowntimeMs() >= 0) {
            sb.append("  exp. downtime ").append(p.expectedDowntimeMs()).append(" ms");
        }
        return sb.toString();
    }
}
