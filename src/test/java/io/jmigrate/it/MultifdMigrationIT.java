package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 4 acceptance 1 with real VM processes: live multifd migrations of a 64 MiB guest with a
 * running workload, for channels 1, 2, 4, 8 × compression none, zlib, zstd × zero-page detection
 * multifd and legacy, plus the legacy per-section flush mode. To keep it quick the guest hops
 * along a chain of processes: each destination becomes the next hop's source, so one workload
 * runs through every combination and each hop checks equal RAM digests and the workload checker.
 */
@Timeout(600)
class MultifdMigrationIT {
    static final String WL = "dirty-rate=20,pattern=increment";

    @TempDir
    Path dir;

    record Hop(int channels, String compression, String zeroPages, boolean legacyFlush) {
        @Override
        public String toString() {
            return channels + " ch, " + compression + ", zero pages " + zeroPages + (legacyFlush ? ", legacy flush" : "");
        }
    }

    static List<Hop> hops() {
        List<Hop> out = new ArrayList<>();
        for (int ch : new int[] {1, 2, 4, 8}) {
            for (String comp : new String[] {"none", "zlib", "zstd"}) {
                for (String zpd : new String[] {"multifd", "legacy"}) {
                    out.add(new Hop(ch, comp, zpd, false));
                }
            }
        }
        out.add(new Hop(2, "none", "legacy", true));
        out.add(new Hop(4, "zstd", "multifd", true));
        return out;
    }

    static void configure(VmProcess vm, Hop h) {
        vm.exec("migrate-set-capabilities", Map.of("capabilities", List.of(
                Map.of("capability", "multifd", "state", true))));
        vm.exec("migrate-set-parameters", Map.of("multifd-channels", h.channels(), "multifd-compression",
                h.compression(), "zero-page-detection", h.zeroPages(), "max-bandwidth", 1L << 30,
                "multifd-zlib-level", 1, "multifd-zstd-level", 3));
    }

    /**
     * 26 hops, each a new VM process and a 64 MiB migration. The class's 600 s bounded their
     * sum, which measures the machine's load rather than a hang: at load average 40 on 2 cores
     * the chain ran out of it mid-way (every hop so far had passed). A hang is caught per hop
     * instead, by each step's own wait (VM start 30 s, source 60 s, destination 30 s, each QMP
     * call); this bound is 2 minutes per hop, and each hop prints how long it took.
     */
    @Test
    @Timeout(value = 26 * 120)
    void everyCombinationAlongAChainOfProcesses() throws Exception {
        List<Hop> hops = hops();
        VmProcess src = VmProcess.start(dir, "vm0", "-m", "64M", "--workload", WL);
        try {
            src.awaitPagesTouched(1);
            for (int i = 0; i < hops.size(); i++) {
                long t0 = System.nanoTime();
                Hop h = hops.get(i);
                boolean nextLegacy = i + 1 < hops.size() && hops.get(i + 1).legacyFlush();
                List<String> args = new ArrayList<>(List.of("-m", "64M", "--workload", WL, "--incoming", "defer"));
                if (nextLegacy) {
                    args.addAll(List.of("--global", "migration.multifd-flush-after-each-section=on"));
                }
                VmProcess dst = VmProcess.start(dir, "vm" + (i + 1), args.toArray(String[]::new));
                try {
                    try {
                        configure(src, h);
                        configure(dst, h);
                    } catch (RuntimeException | AssertionError e) {
                        throw new AssertionError(h + ": configuring failed: " + e.getMessage() + "\nsource log:\n"
                                + Files.readString(src.log) + "\ndestination log:\n" + Files.readString(dst.log), e);
                    }
                    String uri = "unix:" + dir.resolve("m" + i + ".sock");
                    dst.exec("migrate-incoming", Map.of("uri", uri));
                    src.exec("migrate", Map.of("uri", uri));
                    assertMigrated(h, src, dst);
                    System.out.printf("hop %d/%d (%s): %.1f s%n", i + 1, hops.size(), h,
                            (System.nanoTime() - t0) / 1e9);
                } catch (Throwable t) {
                    dst.close();
                    throw t;
                }
                src.close();
                src = dst;
            }
        } finally {
            src.close();
        }
    }

    @Test
    void killedDestinationFailsTheMultifdSourceWhichKeepsRunningAndMigratesAgain() throws Exception {
        Hop h = new Hop(4, "none", "multifd", false);
        try (VmProcess src = VmProcess.start(dir, "ksrc", "-m", "64M", "--workload", WL);
             VmProcess d1 = VmProcess.start(dir, "kd1", "-m", "64M", "--workload", WL, "--incoming", "defer")) {
            configure(src, h);
            configure(d1, h);
            // 4 MiB of written pages first: with RAM still zero (vCPU not yet scheduled) the first
            // pass is cheap zero pages and the migration completes before 2 MiB are sent
            src.awaitPagesTouched(4 << 8);
            src.exec("migrate-set-parameters", Map.of("max-bandwidth", 4 << 20));
            String uri = "unix:" + dir.resolve("k1.sock");
            d1.exec("migrate-incoming", Map.of("uri", uri));
            src.exec("migrate", Map.of("uri", uri));
            src.awaitMigration(s -> s.equals("active"), Duration.ofSeconds(10));
            src.awaitTransferred(2 << 20); // killed in the middle of the stream (64 MiB at 4 MiB/s)
            d1.kill();
            JsonNode failed = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(30));
            assertThat(failed.path("status").asText()).as(failed.toString()).isEqualTo("failed");
            // the cause this side sees, on whichever channel it noticed first
            assertThat(failed.path("error-desc").asText())
                    .matches("^the destination closed (multifd channel \\d+|the main channel) \\(.*");
            assertThat(src.status()).isEqualTo("running");
            assertThat(src.exec("x-jmigrate-query-workload").path("ok").asBoolean()).isTrue();
            try (VmProcess d2 = VmProcess.start(dir, "kd2", "-m", "64M", "--workload", WL, "--incoming", "defer")) {
                configure(src, h);
                configure(d2, h);
                String uri2 = "unix:" + dir.resolve("k2.sock");
                d2.exec("migrate-incoming", Map.of("uri", uri2));
                src.exec("migrate", Map.of("uri", uri2));
                assertMigrated(h, src, d2);
            }
        }
    }

    private static void assertMigrated(Hop h, VmProcess src, VmProcess dst) throws Exception {
        JsonNode info = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
        if (!info.path("status").asText().equals("completed")) {
            // the source's error often only says the peer went away: the destination knows why
            throw new AssertionError(h + ": source " + info + "\nsource log:\n" + Files.readString(src.log)
                    + "\ndestination " + dst.exec("query-migrate") + "\ndestination log:\n"
                    + Files.readString(dst.log));
        }
        JsonNode dinfo = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(30));
        assertThat(dinfo.path("status").asText()).as("%s: %s\n%s", h, dinfo, Files.readString(dst.log))
                .isEqualTo("completed");
        JsonNode ram = info.path("ram");
        assertThat(ram.path("multifd-bytes").asLong()).as("%s multifd-bytes", h).isPositive();
        assertThat(ram.path("transferred").asLong()).isGreaterThan(ram.path("multifd-bytes").asLong());
        // the workload soon touches every page, so later hops may have no zero pages left
        assertThat(ram.path("normal").asLong()).as("%s normal pages", h).isPositive();
        assertThat(ram.path("pages-per-second").asLong()).isNotNegative();
        String out = src.exec("x-jmigrate-query-digest").path("outgoing").asText();
        String in = dst.exec("x-jmigrate-query-digest").path("incoming").asText();
        assertThat(in).as("%s digest", h).hasSize(64).isEqualTo(out);
        JsonNode w = dst.exec("x-jmigrate-query-workload");
        assertThat(w.path("resume-check-ok").asBoolean()).as("%s workload %s", h, w).isTrue();
        assertThat(dst.status()).isEqualTo("running");
    }
}
