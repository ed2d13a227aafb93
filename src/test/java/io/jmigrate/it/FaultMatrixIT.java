package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.it.PhaseFaultProxy.Action;
import io.jmigrate.it.PhaseFaultProxy.Phase;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentSkipListMap;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 13's phase × fault matrix with real VM processes (mvn -B verify -Pfaults): every fault
 * (drop the main channel, drop multifd channel 1, stall a channel, kill the destination, kill the
 * source) at every phase (setup, RAM iteration, switchover and device-state transfer, completion),
 * injected by a {@link PhaseFaultProxy} that recognises the phase on the wire.
 *
 * <p>One long-lived source serves every cell (a fresh destination per cell). Its RAM is filled with
 * pseudo-random bytes and it has two blob devices and an emulated VFIO VF; it runs without a
 * workload and its devices keep their state, so its RAM and device digests
 * ({@code x-jmigrate-query-digest} "current", "current-devices") must be the same before and
 * after every cell.
 * In every cell: the source ends {@code failed} and keeps running with that digest (a killed
 * source: the destination's side only); the destination ends {@code failed} with an error and
 * never runs; then a retry to a fresh destination completes with the source's digest.
 */
@Tag("faults")
@Timeout(900)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class FaultMatrixIT {
    static final String MEM = "32M";
    /** The source's x-jmigrate-stall-timeout; destinations have twice as long, so the source notices first. */
    static final long STALL_TIMEOUT_MS = 3000;
    static final Map<String, String> TABLE = new ConcurrentSkipListMap<>();

    enum Fault { DROP_MAIN, DROP_MULTIFD, STALL_MAIN, STALL_MULTIFD, KILL_DESTINATION, KILL_SOURCE }

    @TempDir
    static Path dir;
    VmProcess src;
    String digest;
    JsonNode devices;
    int serial;

    /**
     * Every VM's devices: two blobs and an emulated VFIO VF, whose state goes over multifd device
     * state at the switchover; they keep their state while running (mutate=off, dirty-rate=0) so
     * that the source's device digests, like its RAM's, must not change across a failed migration.
     */
    static final List<String> DEVICES = List.of("--device", "blob,id=b0,size=4M,mutate=off",
            "--device", "blob,id=b1,size=1M,chunk=256K,mutate=off",
            "--device", "vfio-emu,id=vf0,state-size=4M,dirty-rate=0");

    static VmProcess vm(String name, String... more) throws Exception {
        List<String> args = new ArrayList<>(List.of("-m", MEM));
        args.addAll(DEVICES);
        args.addAll(List.of(more));
        return VmProcess.start(dir, name, args.toArray(String[]::new));
    }

    /** A source: guest RAM filled with the same pseudo-random bytes (every page normal). */
    static VmProcess source(String name) throws Exception {
        return vm(name, "--x-fill-random", "7");
    }

    @BeforeAll
    void startTheSource() throws Exception {
        src = source("src");
        digest = current(src);
        devices = src.exec("x-jmigrate-query-digest").path("current-devices");
        assertThat(digest).hasSize(64);
        assertThat(devices.size()).as(devices.toString()).isEqualTo(3);
    }

    @AfterAll
    void stopTheSourceAndPrintTheTable() throws Exception {
        if (src != null) {
            src.close();
        }
        StringBuilder sb = new StringBuilder("| phase | fault | source | destination | retry |\n|---|---|---|---|---|\n");
        TABLE.values().forEach(sb::append);
        Path out = Path.of("target", "fault-matrix.md");
        Files.createDirectories(out.getParent());
        Files.writeString(out, sb.toString());
        System.out.println(sb);
    }

    /** Every cell, or those -Dfaults.cells=PHASE:FAULT,... names (to rerun one while debugging). */
    static List<Object[]> cells() {
        String only = System.getProperty("faults.cells", "");
        List<Object[]> l = new ArrayList<>();
        for (Phase p : Phase.values()) {
            for (Fault f : Fault.values()) {
                if (!only.isEmpty() && !List.of(only.split(",")).contains(p + ":" + f)) {
                    continue;
                }
                l.add(new Object[] {p, f});
            }
        }
        return l;
    }

    static String current(VmProcess vm) {
        return vm.exec("x-jmigrate-query-digest").path("current").asText();
    }

    static void configure(VmProcess vm, long bandwidth, long stallTimeoutMs) {
        vm.exec("migrate-set-capabilities", Map.of("capabilities", List.of(
                Map.of("capability", "multifd", "state", true),
                Map.of("capability", "return-path", "state", true))));
        vm.exec("migrate-set-parameters", Map.of("multifd-channels", 2, "max-bandwidth", bandwidth,
                "x-jmigrate-stall-timeout", stallTimeoutMs));
    }

    /** A destination listening on a free loopback port; returns that port. */
    static int listen(VmProcess dst) {
        dst.exec("migrate-incoming", Map.of("uri", "tcp:127.0.0.1:0"));
        return Integer.parseInt(dst.exec("query-migrate").path("socket-address").get(0).path("port").asText());
    }

    @ParameterizedTest(name = "{0} x {1}")
    @MethodSource("cells")
    void faultLeavesTheSourceIntactAndARetrySucceeds(Phase phase, Fault fault) throws Exception {
        int n = ++serial;
        if (!src.status().equals("running")) {
            src.exec("cont"); // an earlier cell failed and left it stopped: this cell starts clean
        }
        VmProcess source = src;
        VmProcess killedSource = null;
        if (fault == Fault.KILL_SOURCE) {
            killedSource = source("ks" + n);
            source = killedSource;
        }
        String srcOutcome;
        String dstOutcome;
        String srcWhy = "";
        String dstWhy = "";
        try (VmProcess dst = vm("d" + n, "--incoming", "defer")) {
            configure(source, 32L << 20, STALL_TIMEOUT_MS);
            configure(dst, 32L << 20, 2 * STALL_TIMEOUT_MS);
            int port = listen(dst);
            Action action = switch (fault) {
                case DROP_MAIN, DROP_MULTIFD -> Action.DROP;
                case STALL_MAIN, STALL_MULTIFD -> Action.STALL;
                case KILL_DESTINATION, KILL_SOURCE -> Action.FREEZE;
            };
            int target = fault == Fault.DROP_MULTIFD || fault == Fault.STALL_MULTIFD ? 1 : PhaseFaultProxy.MAIN;
            try (PhaseFaultProxy proxy = new PhaseFaultProxy(new InetSocketAddress("127.0.0.1", port), phase, action,
                    target)) {
                source.exec("migrate", Map.of("uri", proxy.uri()));
                if (action == Action.FREEZE) {
                    assertThat(proxy.awaitFired(60)).as("%s never reached on the wire", phase).isTrue();
                    if (fault == Fault.KILL_DESTINATION) {
                        dst.kill();
                        proxy.release(); // what the source sends now meets a dead peer
                    } else {
                        killedSource.kill();
                        proxy.close(); // the dead source's connections end; nothing it sent after the phase arrives
                    }
                }
                String ctx = phase + " x " + fault;
                if (fault != Fault.KILL_SOURCE) {
                    JsonNode s = source.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
                    assertThat(proxy.hasFired()).as("%s: the fault was never injected: %s", ctx, s).isTrue();
                    assertThat(s.path("status").asText())
                            .as("%s (fired at %s): source %s\n%s", ctx, proxy.firedAt(), s, logs(source, dst))
                            .isEqualTo("failed");
                    String why = s.path("error-desc").asText();
                    srcWhy = why;
                    assertThat(why).as("%s: source error", ctx).isNotBlank();
                    assertThat(source.status()).as("%s: the source runs again", ctx).isEqualTo("running");
                    JsonNode now = source.exec("x-jmigrate-query-digest");
                    assertThat(now.path("current").asText()).as("%s: source RAM digest after the failure", ctx)
                            .isEqualTo(digest);
                    assertThat(now.path("current-devices")).as("%s: source device digests after the failure", ctx)
                            .isEqualTo(devices);
                    srcOutcome = "failed, running, digests unchanged: " + why;
                } else {
                    srcOutcome = "killed (at " + proxy.firedAt() + ")";
                }
                if (fault != Fault.KILL_DESTINATION) {
                    JsonNode d = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
                    assertThat(d.path("status").asText()).as("%s: destination %s\n%s", ctx, d, logs(source, dst))
                            .isEqualTo("failed");
                    String why = d.path("error-desc").asText();
                    dstWhy = why;
                    assertThat(why).as("%s: destination error", ctx).isNotBlank();
                    String run = dst.status();
                    assertThat(run).as("%s: the destination never runs a half-loaded guest", ctx)
                            .isNotEqualTo("running");
                    dstOutcome = "failed, " + run + ": " + why;
                } else {
                    assertThat(dst.process.isAlive()).isFalse();
                    dstOutcome = "killed (at " + proxy.firedAt() + ")";
                }
            }
        } finally {
            if (killedSource != null) {
                killedSource.close();
            }
        }
        assertNamesTheCause(phase + " x " + fault, fault, srcWhy, dstWhy);
        String retry = retry(n);
        TABLE.put(String.format("%d-%d", phase.ordinal(), fault.ordinal()),
                "| " + phase + " | " + fault + " | " + srcOutcome.replace("|", "/") + " | "
                        + dstOutcome.replace("|", "/") + " | " + retry + " |\n");
    }

    /** The cause named by the side that can see it (both errors are also in the table). */
    private static void assertNamesTheCause(String ctx, Fault fault, String src, String dst) {
        String both = src + "\n" + dst;
        switch (fault) {
            case DROP_MAIN -> assertThat(src).as(ctx).contains("main channel");
            case DROP_MULTIFD -> assertThat(both).as(ctx).containsPattern("multifd channel(\\(s\\))? 1");
            case STALL_MAIN -> assertThat(dst).as(ctx).contains("x-jmigrate-stall-timeout")
                    .contains("waiting for the main channel");
            case STALL_MULTIFD -> assertThat(both).as(ctx).contains("x-jmigrate-stall-timeout")
                    .containsPattern("multifd channel 1[ ,].*stalled|waiting for multifd channel 1 ");
            case KILL_DESTINATION -> assertThat(src).as(ctx).contains("the destination closed");
            // whichever channel the destination was reading when the source's connections ended
            case KILL_SOURCE -> assertThat(dst).as(ctx)
                    .containsPattern("\\(main\\) at byte offset \\d+: truncated|multifd channel(\\(s\\))? \\d+ .*ended");
        }
    }

    /** The retry: the source to a fresh destination, straight (no proxy), at full speed. */
    private String retry(int n) throws Exception {
        try (VmProcess dst = vm("r" + n, "--incoming", "defer")) {
            configure(src, 1L << 30, STALL_TIMEOUT_MS);
            configure(dst, 1L << 30, 2 * STALL_TIMEOUT_MS);
            int port = listen(dst);
            src.exec("migrate", Map.of("uri", "tcp:127.0.0.1:" + port));
            JsonNode s = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
            assertThat(s.path("status").asText()).as("retry: source %s\n%s", s, logs(src, dst)).isEqualTo("completed");
            JsonNode d = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(30));
            assertThat(d.path("status").asText()).as("retry: destination %s", d).isEqualTo("completed");
            JsonNode sd = src.exec("x-jmigrate-query-digest");
            JsonNode dd = dst.exec("x-jmigrate-query-digest");
            assertThat(sd.path("outgoing").asText()).isEqualTo(digest);
            assertThat(dd.path("incoming").asText()).isEqualTo(digest);
            assertThat(sd.path("outgoing-devices")).isEqualTo(devices);
            assertThat(dd.path("incoming-devices")).isEqualTo(devices);
            assertThat(dst.status()).isEqualTo("running");
            src.exec("cont"); // the source goes on as the source of the next cell
            assertThat(src.status()).isEqualTo("running");
            return "completed, digests match";
        }
    }

    private static String logs(VmProcess a, VmProcess b) throws Exception {
        return a.name + " log:\n" + Files.readString(a.log) + "\n" + b.name + " log:\n"
                + (b.log.toFile().exists() ? Files.readString(b.log) : "");
    }
}
