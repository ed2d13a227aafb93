package io.jmigrate.bench;

import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class TimelineChartTest {
    /** Samples land in target/ so a person can look at them after the build. */
    static final Path OUT = Path.of("target", "test-charts");

    @Test
    void criticalLaneIsTheDeviceLaneThatEndsLast() {
        Timeline t = SampleTimelines.parallel(4, 6);
        assertThat(t.critical().name()).isEqualTo("mig/dst/load_vf3");
        assertThat(t.devices()).containsExactly("vf0", "vf1", "vf2", "vf3");
        assertThat(t.startNs()).isZero();
        Timeline shifted = t.relativeTo(SampleTimelines.MS);
        assertThat(shifted.startNs()).isEqualTo(-SampleTimelines.MS);
        assertThat(shifted.endNs()).isEqualTo(t.endNs() - SampleTimelines.MS);
    }

    @Test
    void spansMustNotEndBeforeTheyStart() {
        assertThatThrownBy(() -> new Timeline.Span(5, 4, "vf0", 0)).hasMessageContaining("ends (4 ns) before");
    }

    @Test
    void rendersAPngWithARowPerLane() throws Exception {
        Files.createDirectories(OUT);
        Timeline t = SampleTimelines.parallel(4, 6);
        Path png = OUT.resolve("timeline-4dev-6ch.png");
        TimelineChart.writePng(t, png);
        BufferedImage img = ImageIO.read(png.toFile());
        assertThat(img.getWidth()).isEqualTo(1600);
        // 1 + 4 + 6 source lanes, 6 + 1 + 4 destination lanes, 26 px each, plus header, axis and legend
        assertThat(img.getHeight()).isGreaterThan(22 * 26);

        Timeline small = SampleTimelines.parallel(1, 2);
        TimelineChart.writePng(small, OUT.resolve("timeline-1dev-2ch.png"));
        assertThat(ImageIO.read(OUT.resolve("timeline-1dev-2ch.png").toFile()).getHeight())
                .isLessThan(img.getHeight());
    }

    @Test
    void markersFarPastTheLastSpanAreListedInsteadOfStretchingTheAxis() throws Exception {
        Timeline t = SampleTimelines.parallel(2, 6);
        List<Timeline.Marker> ms = new java.util.ArrayList<>(t.markers());
        ms.add(new Timeline.Marker("destination resumed (late)", 40 * t.endNs(), Timeline.Side.DESTINATION));
        Timeline late = new Timeline(t.title(), "with a marker 40 times later than the rest", t.lanes(), ms);
        Files.createDirectories(OUT);
        BufferedImage a = TimelineChart.render(t);
        BufferedImage b = TimelineChart.render(late);
        TimelineChart.writePng(late, OUT.resolve("timeline-late-marker.png"));
        // same axis: the pixel columns of the lanes are identical, only the header differs
        assertThat(b.getWidth()).isEqualTo(a.getWidth());
        int ya = a.getHeight() - 60;
        int yb = b.getHeight() - 60;
        for (int x = 0; x < a.getWidth(); x += 7) {
            assertThat(b.getRGB(x, yb)).as("x=%d", x).isEqualTo(a.getRGB(x, ya));
        }
    }

    @Test
    void theAxisReachesTheSourcesLastPhaseEvenWhenEveryLaneEndsEarlier() {
        // an empty switchover: the device lanes end early, SHUT and channels closed come later
        Timeline t = SampleTimelines.parallel(1, 2);
        long end = 3 * t.endNs();
        List<Timeline.Marker> ms = new java.util.ArrayList<>(t.markers());
        ms.add(new Timeline.Marker("channels closed", end, Timeline.Side.SOURCE));
        ms.add(new Timeline.Marker("destination resumed", 40 * end, Timeline.Side.DESTINATION));
        Timeline late = new Timeline(t.title(), "", t.lanes(), ms);
        assertThat(TimelineChart.axisEnd(late, 0)).isEqualTo(end);
        assertThat(TimelineChart.axisEnd(t, 0)).isLessThan(end);
    }

    @Test
    void anEmptyTimelineStillRenders() throws Exception {
        Path png = OUT.resolve("timeline-empty.png");
        Files.createDirectories(OUT);
        TimelineChart.writePng(new Timeline("nothing recorded", "", List.of(), List.of()), png);
        assertThat(ImageIO.read(png.toFile()).getWidth()).isEqualTo(1600);
    }

    @Test
    void niceStepsAreOneTwoOrFiveTimesAPowerOfTen() {
        assertThat(TimelineChart.niceStep(0.7)).isEqualTo(1.0);
        assertThat(TimelineChart.niceStep(13)).isEqualTo(20.0);
        assertThat(TimelineChart.niceStep(41)).isEqualTo(50.0);
        assertThat(TimelineChart.niceStep(0.031)).isCloseTo(0.05, org.assertj.core.api.Assertions.within(1e-12));
    }
}
