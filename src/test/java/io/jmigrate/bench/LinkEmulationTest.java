package io.jmigrate.bench;

import io.jmigrate.common.MigrationException;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link LinkEmulation} for real: namespaces, a shaped veth pair, bytes moved across it by two
 * processes (one in each namespace), and everything gone afterwards, also after a failed set-up.
 * Skipped, saying why, where this is not root or iproute2 is missing (CI runs as root).
 */
class LinkEmulationTest {
    static final long BYTES = 16L << 20;

    @Test
    void parsesRatesAndDelays() {
        assertThat(LinkSpec.parse("25gbit")).isEqualTo(new LinkSpec(25_000_000_000L, Duration.ZERO));
        assertThat(LinkSpec.parse("10gbit,delay=1ms")).isEqualTo(new LinkSpec(10_000_000_000L, Duration.ofMillis(1)));
        assertThat(LinkSpec.parse("2.5gbit,delay=50us")).isEqualTo(new LinkSpec(2_500_000_000L,
                Duration.ofNanos(50_000)));
        assertThat(LinkSpec.parse("100mbit").describe()).isEqualTo("100 Mbit/s");
        assertThat(LinkSpec.parse("25gbit,delay=1ms").describe()).isEqualTo("25 Gbit/s, 1 ms delay each way");
        assertThat(LinkSpec.parse("25gbit").tcRate()).isEqualTo("25000000000bit");
        assertThat(LinkSpec.parse("1gbit,delay=2ms").tcDelay()).isEqualTo("2000us");
        assertThatThrownBy(() -> LinkSpec.parse("25gb")).isInstanceOf(MigrationException.class)
                .hasMessageContaining("must be a number with bit, kbit, mbit or gbit");
        assertThatThrownBy(() -> LinkSpec.parse("25gbit,jitter=1ms")).hasMessageContaining("unknown option 'jitter=1ms'");
        assertThatThrownBy(() -> LinkSpec.parse("25gbit,delay=1h")).hasMessageContaining("us, ms or s");
        assertThatThrownBy(() -> LinkSpec.parse("1kbit")).hasMessageContaining("outside 1mbit..400gbit");
    }

    static void assumeCanEmulate() {
        List<String> missing = LinkEmulation.missingPrerequisites();
        assumeTrue(missing.isEmpty(), () -> "link emulation test skipped, missing: " + String.join("; ", missing));
    }

    static List<String> java(String... args) {
        List<String> c = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), LinkProbe.class.getName()));
        c.addAll(List.of(args));
        return c;
    }

    static String firstLine(Process p) throws IOException {
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line = r.readLine();
        return line == null ? "(no output; exit " + (p.isAlive() ? "-" : p.exitValue()) + ")" : line;
    }

    @Test
    void movesBytesOverTheShapedLinkAndRemovesEverything() throws Exception {
        assumeCanEmulate();
        LinkEmulation link = LinkEmulation.create(LinkSpec.parse("1gbit"));
        String srcNs = link.sourceNamespace();
        String dstNs = link.destinationNamespace();
        Process sink = null;
        Process sender = null;
        try {
            assertThat(LinkEmulation.namespaceExists(srcNs)).isTrue();
            assertThat(LinkEmulation.namespaceExists(dstNs)).isTrue();
            // the veth ends live only inside the namespaces
            assertThat(Path.of("/sys/class/net", link.sourceDevice())).doesNotExist();
            assertThat(Path.of("/sys/class/net", link.destinationDevice())).doesNotExist();
            assertThat(link.qdiscStats(true)).contains("tbf", "rate 1Gbit");

            sink = new ProcessBuilder(link.inDestination(java("listen", link.destinationAddress())))
                    .redirectError(ProcessBuilder.Redirect.INHERIT).start();
            String listening = firstLine(sink);
            assertThat(listening).startsWith("listening ");
            String port = listening.substring("listening ".length());
            sender = new ProcessBuilder(link.inSource(java("send", link.destinationAddress(), port,
                    Long.toString(BYTES), "7"))).redirectError(ProcessBuilder.Redirect.INHERIT).start();
            String sent = firstLine(sender);
            String received = firstLine(sink);
            assertThat(sender.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(sink.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(sender.exitValue()).isZero();
            assertThat(sink.exitValue()).isZero();
            assertThat(sent).startsWith("sent " + BYTES + " ");
            assertThat(received).isEqualTo("received " + sent.substring("sent ".length()));

            // the payload went through the source end's tbf
            String stats = link.qdiscStats(true);
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("Sent (\\d+) bytes").matcher(stats);
            assertThat(m.find()).as(stats).isTrue();
            assertThat(Long.parseLong(m.group(1))).as(stats).isGreaterThanOrEqualTo(BYTES);
        } finally {
            for (Process p : new Process[] {sender, sink}) {
                if (p != null) {
                    p.destroyForcibly();
                    p.waitFor(10, TimeUnit.SECONDS);
                }
            }
            link.close();
        }
        assertThat(LinkEmulation.namespaceExists(srcNs)).isFalse();
        assertThat(LinkEmulation.namespaceExists(dstNs)).isFalse();
        link.close(); // idempotent
    }

    @Test
    void aFailedSetUpRemovesWhatItMade() {
        assumeCanEmulate();
        AtomicReference<LinkEmulation> made = new AtomicReference<>();
        assertThatThrownBy(() -> LinkEmulation.create(LinkSpec.parse("10gbit"), l -> {
            made.set(l);
            assertThat(LinkEmulation.namespaceExists(l.sourceNamespace())).isTrue();
            throw new MigrationException(MigrationException.Category.IO, "injected after set-up");
        })).hasMessage("injected after set-up");
        assertThat(LinkEmulation.namespaceExists(made.get().sourceNamespace())).isFalse();
        assertThat(LinkEmulation.namespaceExists(made.get().destinationNamespace())).isFalse();
    }

    @Test
    void aDelayNeedsNetemAndWithoutItNothingIsLeft() throws IOException {
        assumeCanEmulate();
        String mine = "jmigrate-" + Long.toString(ProcessHandle.current().pid(), 36);
        LinkEmulation link;
        try {
            link = LinkEmulation.create(LinkSpec.parse("10gbit,delay=1ms"));
        } catch (MigrationException e) {
            // a kernel without sch_netem: the error names it, and nothing of ours remains
            assertThat(e.getMessage()).contains("netem", "drop ,delay=");
            try (Stream<Path> s = Files.list(Path.of("/run/netns"))) {
                assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith(mine));
            }
            return;
        }
        try {
            assertThat(link.qdiscStats(false)).contains("tbf", "netem", "delay 1");
        } finally {
            link.close();
        }
    }

    @Test
    void missingPrerequisitesAreNamed() {
        // whatever this machine has, each missing item says what to do
        for (String m : LinkEmulation.missingPrerequisites()) {
            assertThat(m).containsAnyOf("run as root", "apt-get install -y iproute2");
        }
    }
}
