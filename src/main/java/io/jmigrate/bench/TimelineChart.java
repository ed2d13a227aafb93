package io.jmigrate.bench;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Draws a {@link Timeline} as a Gantt chart PNG: one row per lane (main channel, source save
 * threads, multifd channels, destination load threads), each span a bar coloured by its device,
 * each phase boundary a dashed vertical line labelled with its name and time. The lane that
 * ends last among the save and load threads (the one that set the downtime) is labelled in red.
 *
 * <p>Rendering is headless ({@code java.awt.headless=true} is set if nothing set it before) and
 * deterministic for a given timeline.
 */
public final class TimelineChart {
    static {
        Headless.ensure();
    }

    /** Tableau 10: distinguishable, and readable on white. */
    static final Color[] PALETTE = {
        new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x2ca02c), new Color(0xd62728), new Color(0x9467bd),
        new Color(0x8c564b), new Color(0xe377c2), new Color(0x17becf), new Color(0xbcbd22), new Color(0x7f7f7f)};
    static final Color RAM = new Color(0xb0b0b0);
    static final Color OTHER = new Color(0x606060);
    static final Color SOURCE_MARK = new Color(0x1a3d7c);
    static final Color DEST_MARK = new Color(0x8b1a1a);

    private static final int WIDTH = 1600;
    private static final int LABEL_W = 350;
    private static final int RIGHT = 40;
    private static final int LANE_H = 20;
    private static final int LANE_GAP = 6;
    private static final int GROUP_GAP = 18;

    private TimelineChart() {
    }

    /** Writes the chart of {@code t} to {@code png}. */
    public static void writePng(Timeline t, Path png) {
        BufferedImage img = render(t);
        try {
            if (png.getParent() != null) {
                Files.createDirectories(png.getParent());
            }
            if (!ImageIO.write(img, "png", png.toFile())) {
                throw new MigrationException(Category.INTERNAL, "no PNG writer in this JDK");
            }
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot write the timeline " + png + ": " + e.getMessage(), e);
        }
    }

    /**
     * Where the time axis ends: a little after the last span, and never before the source's last
     * phase (its phases all lie inside the downtime window, which channels closed ends). Markers
     * much later than that (a destination that resumes seconds after it loaded) are not covered:
     * they are listed at the right edge with their times.
     */
    static long axisEnd(Timeline t, long t0) {
        long spanEnd = t.lanes().stream().mapToLong(Timeline.Lane::lastEnd).max().orElse(Long.MIN_VALUE);
        long t1;
        if (spanEnd == Long.MIN_VALUE) {
            t1 = t.endNs();
        } else {
            long limit = spanEnd + Math.max(1_000_000, (spanEnd - t0) / 4);
            t1 = Math.max(spanEnd, t.markers().stream().mapToLong(Timeline.Marker::atNs).filter(a -> a <= limit)
                    .max().orElse(spanEnd));
        }
        t1 = Math.max(t1, t.markers().stream().filter(m -> m.side() == Timeline.Side.SOURCE)
                .mapToLong(Timeline.Marker::atNs).max().orElse(t1));
        return Math.max(t1, t0 + 1_000_000);
    }

    /** The chart as an image. */
    public static BufferedImage render(Timeline t) {
        Font title = new Font(Font.SANS_SERIF, Font.BOLD, 18);
        Font text = new Font(Font.SANS_SERIF, Font.PLAIN, 13);
        Font small = new Font(Font.SANS_SERIF, Font.PLAIN, 11);
        Font bold = new Font(Font.SANS_SERIF, Font.BOLD, 13);

        long t0 = Math.min(0, t.startNs());
        long t1 = axisEnd(t, t0);
        List<Timeline.Marker> offScale = t.markers().stream().filter(m -> m.atNs() > t1)
                .sorted(Comparator.comparingLong(Timeline.Marker::atNs)).toList();
        long pad = Math.max(1, (t1 - t0) / 50);
        long from = t0 - pad;
        long to = t1 + pad;
        int plotX = LABEL_W + 10;
        int plotW = WIDTH - plotX - RIGHT;

        // marker labels: rows so that no two overlap
        BufferedImage probe = new BufferedImage(1, 1, BufferedImage.TYPE_INT_RGB);
        Graphics2D pg = probe.createGraphics();
        FontMetrics sm = pg.getFontMetrics(small);
        List<Timeline.Marker> markers = new ArrayList<>(t.markers());
        markers.removeAll(offScale);
        markers.sort(Comparator.comparingLong(Timeline.Marker::atNs));
        List<Integer> rowEnds = new ArrayList<>();
        Map<Timeline.Marker, Integer> markerRow = new HashMap<>();
        for (Timeline.Marker m : markers) {
            int x = x(m.atNs(), from, to, plotX, plotW);
            int w = sm.stringWidth(markerText(m)) + 8;
            int lx = Math.min(x + 3, WIDTH - 4 - w);
            int row = 0;
            while (row < rowEnds.size() && rowEnds.get(row) > lx) {
                row++;
            }
            if (row == rowEnds.size()) {
                rowEnds.add(0);
            }
            rowEnds.set(row, lx + w);
            markerRow.put(m, row);
        }
        for (Timeline.Marker m : offScale) {
            int w = sm.stringWidth(markerText(m) + " \u2192") + 8;
            int lx = WIDTH - 4 - w;
            int row = 0;
            while (row < rowEnds.size() && rowEnds.get(row) > lx) {
                row++;
            }
            if (row == rowEnds.size()) {
                rowEnds.add(0);
            }
            rowEnds.set(row, lx + w);
            markerRow.put(m, row);
        }
        pg.dispose();

        int headerH = 64;
        int markerH = rowEnds.size() * 15 + 8;
        int lanesTop = headerH + markerH;
        int lanesH = 0;
        Timeline.Side prevSide = null;
        for (Timeline.Lane l : t.lanes()) {
            if (l.side() != prevSide) {
                lanesH += GROUP_GAP;
                prevSide = l.side();
            }
            lanesH += LANE_H + LANE_GAP;
        }
        List<String> devices = t.devices();
        int axisY = lanesTop + lanesH + 6;
        int legendY = axisY + 44;
        int height = legendY + 30;

        BufferedImage img = new BufferedImage(WIDTH, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, WIDTH, height);
            g.setColor(Color.BLACK);
            g.setFont(title);
            g.drawString(t.title(), 16, 26);
            g.setFont(text);
            g.setColor(new Color(0x333333));
            g.drawString(t.subtitle(), 16, 46);

            // time grid and axis
            double stepMs = niceStep((to - from) / 1e6 / 10);
            g.setFont(small);
            FontMetrics fm = g.getFontMetrics();
            for (double ms = Math.ceil(from / 1e6 / stepMs) * stepMs; ms * 1e6 <= to; ms += stepMs) {
                int x = x((long) (ms * 1e6), from, to, plotX, plotW);
                g.setColor(new Color(0xeeeeee));
                g.drawLine(x, lanesTop, x, axisY);
                g.setColor(Color.DARK_GRAY);
                g.drawLine(x, axisY, x, axisY + 4);
                String label = formatMs(ms, stepMs) + " ms";
                g.drawString(label, x - fm.stringWidth(label) / 2, axisY + 17);
            }
            g.setColor(Color.DARK_GRAY);
            g.drawLine(plotX, axisY, plotX + plotW, axisY);
            g.setFont(text);
            String axisLabel = "time from the source VM stop (ms)";
            g.drawString(axisLabel, plotX + plotW / 2 - g.getFontMetrics().stringWidth(axisLabel) / 2, axisY + 36);

            // lanes
            Timeline.Lane critical = t.critical();
            int y = lanesTop;
            prevSide = null;
            for (Timeline.Lane l : t.lanes()) {
                if (l.side() != prevSide) {
                    y += GROUP_GAP;
                    g.setFont(bold);
                    g.setColor(new Color(0x555555));
                    g.drawString(l.side() == Timeline.Side.SOURCE ? "source" : "destination", 16, y - 4);
                    g.setColor(new Color(0xcccccc));
                    g.drawLine(16, y - 1, WIDTH - RIGHT, y - 1);
                    prevSide = l.side();
                }
                g.setColor(new Color(0xf6f6f6));
                g.fillRect(plotX, y, plotW, LANE_H);
                boolean isCritical = l == critical;
                g.setFont(isCritical ? bold : text);
                g.setColor(isCritical ? new Color(0xc00000) : Color.BLACK);
                g.drawString(l.name(), 28, y + LANE_H - 5);
                String summary = summary(l);
                g.setFont(small);
                g.setColor(isCritical ? new Color(0xc00000) : Color.DARK_GRAY);
                g.drawString(summary, LABEL_W - g.getFontMetrics().stringWidth(summary), y + LANE_H - 6);
                for (Timeline.Span s : l.spans()) {
                    int xa = x(s.startNs(), from, to, plotX, plotW);
                    int xb = x(s.endNs(), from, to, plotX, plotW);
                    int w = Math.max(1, xb - xa);
                    g.setColor(color(s.device(), devices));
                    g.fillRect(xa, y + 2, w, LANE_H - 4);
                    if (w >= 6) {
                        g.setColor(g.getColor().darker());
                        g.drawRect(xa, y + 2, w - 1, LANE_H - 5);
                    }
                }
                if (isCritical) {
                    int xe = x(l.lastEnd(), from, to, plotX, plotW);
                    g.setColor(new Color(0xc00000));
                    g.setStroke(new BasicStroke(2f));
                    g.drawLine(xe, y - 2, xe, y + LANE_H + 2);
                    g.setStroke(new BasicStroke(1f));
                }
                y += LANE_H + LANE_GAP;
            }

            // phase markers over everything
            g.setFont(small);
            for (Timeline.Marker m : markers) {
                int x = x(m.atNs(), from, to, plotX, plotW);
                Color c = m.side() == Timeline.Side.SOURCE ? SOURCE_MARK : DEST_MARK;
                g.setColor(c);
                int row = markerRow.get(m);
                int ly = headerH + row * 15 + 12;
                g.setStroke(new BasicStroke(1f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {5f, 4f},
                        0f));
                g.drawLine(x, ly + 3, x, axisY);
                g.setStroke(new BasicStroke(1f));
                String mt = markerText(m);
                int w = sm.stringWidth(mt) + 8;
                int lx = Math.min(x + 3, WIDTH - 4 - w);
                g.drawString(mt, lx, ly);
            }

            // markers past the axis: listed at the top right, with an arrow
            g.setFont(small);
            for (Timeline.Marker m : offScale) {
                String mt = markerText(m) + " \u2192";
                int oy = headerH + markerRow.get(m) * 15 + 12;
                g.setColor(m.side() == Timeline.Side.SOURCE ? SOURCE_MARK : DEST_MARK);
                g.drawString(mt, WIDTH - 4 - (sm.stringWidth(mt) + 8), oy);
            }

            // legend
            int lx = 16;
            g.setFont(text);
            fm = g.getFontMetrics();
            List<String> legend = new ArrayList<>(devices);
            if (t.lanes().stream().anyMatch(l -> l.spans().stream().anyMatch(s -> s.device().equals("ram")))) {
                legend.add("ram");
            }
            for (String d : legend) {
                g.setColor(color(d, devices));
                g.fillRect(lx, legendY - 11, 12, 12);
                g.setColor(Color.BLACK);
                g.drawString(d, lx + 17, legendY);
                lx += 17 + fm.stringWidth(d) + 18;
            }
            g.setColor(SOURCE_MARK);
            String srcKey = "- - source phase";
            g.drawString(srcKey, lx + 10, legendY);
            lx += fm.stringWidth(srcKey) + 24;
            g.setColor(DEST_MARK);
            String dstKey = "- - destination phase";
            g.drawString(dstKey, lx, legendY);
            lx += fm.stringWidth(dstKey) + 24;
            if (critical != null) {
                g.setColor(new Color(0xc00000));
                g.drawString("red: the device lane that ends last (" + critical.name() + ", "
                        + formatMs(critical.lastEnd() / 1e6, 0.1) + " ms)", lx, legendY);
            }
        } finally {
            g.dispose();
        }
        return img;
    }

    private static String summary(Timeline.Lane l) {
        long bytes = l.bytes();
        if (l.spans().isEmpty()) {
            return "no events recorded";
        }
        double busyMs = l.spans().stream().mapToLong(s -> s.endNs() - s.startNs()).sum() / 1e6;
        String b = bytes == 0 ? "" : humanBytes(bytes) + ", ";
        return b + String.format(Locale.ROOT, "%.1f ms busy", busyMs);
    }

    static String humanBytes(long b) {
        if (b >= 1L << 30) {
            return String.format(Locale.ROOT, "%.2f GiB", b / (double) (1L << 30));
        }
        if (b >= 1L << 20) {
            return String.format(Locale.ROOT, "%.1f MiB", b / (double) (1L << 20));
        }
        if (b >= 1L << 10) {
            return String.format(Locale.ROOT, "%.1f KiB", b / 1024.0);
        }
        return b + " B";
    }

    private static String markerText(Timeline.Marker m) {
        return m.name() + " " + (m.atNs() >= 0 ? "+" : "") + formatMs(m.atNs() / 1e6, 0.1) + " ms";
    }

    static Color color(String device, List<String> devices) {
        if (device.equals("ram")) {
            return RAM;
        }
        int i = devices.indexOf(device);
        return i < 0 ? OTHER : PALETTE[i % PALETTE.length];
    }

    private static int x(long ns, long from, long to, int plotX, int plotW) {
        return plotX + (int) Math.round((ns - from) / (double) (to - from) * plotW);
    }

    /** 1, 2 or 5 times a power of ten, at least {@code raw}. */
    static double niceStep(double raw) {
        double p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-6))));
        for (double m : new double[] {1, 2, 5, 10}) {
            if (m * p >= raw) {
                return m * p;
            }
        }
        return 10 * p;
    }

    static String formatMs(double ms, double step) {
        if (Math.abs(ms) < Math.min(step, 1) / 2) {
            ms = 0; // never "-0"
        }
        if (step >= 1) {
            return String.format(Locale.ROOT, "%.0f", ms);
        }
        if (step >= 0.1) {
            return String.format(Locale.ROOT, "%.1f", ms);
        }
        return String.format(Locale.ROOT, "%.2f", ms);
    }
}
