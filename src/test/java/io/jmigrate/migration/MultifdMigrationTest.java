package io.jmigrate.migration;

import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.RunState;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.machine.WorkloadSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Multifd migrations between two VMs in one JVM over real sockets (the process matrix is MultifdMigrationIT). */
@Timeout(60)
class MultifdMigrationTest {
    @TempDir
    Path dir;

    static VmConfig cfg(long mib, boolean paused, WorkloadSpec w, Map<String, String> globals) {
        return new VmConfig("t", null, mib << 20, null, false, MachineType.DEFAULT, paused, w, globals);
    }

    static void multifd(MigrationManager m, int channels, String compression, String zpd) {
        m.setCapabilities(List.of(Map.entry(Capability.MULTIFD, true), Map.entry(Capability.RETURN_PATH, true),
                Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
        m.setParameters(Map.of("multifd-channels", (long) channels, "multifd-compression", compression,
                "zero-page-detection", zpd, "max-bandwidth", 1L << 30));
    }

    @ParameterizedTest(name = "{0} channels, {1}, zero pages {2}, legacy flush {3}")
    @CsvSource({"2,none,multifd,false", "3,zstd,legacy,false", "2,zlib,none,true", "1,none,legacy,true"})
    void liveMultifdMigrationWithWorkload(int channels, String comp, String zpd, boolean legacy) throws Exception {
        Map<String, String> g = legacy ? Map.of("multifd-flush-after-each-section", "on") : Map.of();
        try (Vm src = new Vm(cfg(32, false, new WorkloadSpec(20, "increment", 2), g), false);
             Vm dst = new Vm(cfg(32, false, new WorkloadSpec(20, "increment", 2), Map.of()), true)) {
            MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
            MigrationManager sm = new MigrationManager(src, (e, d) -> { });
            multifd(sm, channels, comp, zpd);
            multifd(dm, channels, comp, zpd);
            awaitGuestRunning(src);
            Path sock = dir.resolve("mig.sock");
            IncomingMigration in = dm.startIncoming("unix:" + sock, false);
            OutgoingMigration out = sm.migrate("unix:" + sock);
            assertThat(out.join(40_000)).isTrue();
            assertThat(in.join(20_000)).isTrue();
            assertThat(out.error()).isNull();
            assertThat(in.error()).isNull();
            assertThat(out.state().get()).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(in.state().get()).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(out.digest()).isEqualTo(in.digest()).isNotNull();
            assertThat(dst.runState()).isEqualTo(RunState.RUNNING);
            assertThat(dst.incomingWorkloadCheck().ok()).as(dst.incomingWorkloadCheck().toString()).isTrue();
            @SuppressWarnings("unchecked") Map<String, Object> ram = (Map<String, Object>) out.info().get("ram");
            long mfd = (Long) ram.get("multifd-bytes");
            assertThat((Long) ram.get("transferred")).isGreaterThan(mfd);
            assertThat((Long) ram.get("normal")).isPositive();
            if (comp.equals("none")) {
                assertThat(mfd).isGreaterThan((Long) ram.get("normal") * 4096);
            } else {
                assertThat(mfd).isPositive();
            }
            // whether any page is still zero when the first pass reaches it depends on how far
            // the guest got first: the zero-page counts are checked exactly below, paused
        }
    }

    /** The source's vCPUs have written at least one page (the guest really runs). */
    static void awaitGuestRunning(Vm src) throws InterruptedException {
        while (src.workload().pagesTouched() == 0) {
            Thread.sleep(5);
        }
    }

    /**
     * With the source paused every page goes exactly once, so query-migrate's normal and
     * duplicate are exact: duplicate counts the zero pages (on the main channel with legacy
     * detection, on the channels with multifd detection), none with detection off.
     */
    @ParameterizedTest(name = "{0} channels, {1}, zero pages {2}, legacy flush {3}")
    @CsvSource({"2,none,multifd,false", "3,zstd,legacy,false", "2,zlib,none,true", "1,none,legacy,true"})
    void pausedMultifdMigrationCountsZeroAndNormalPagesExactly(int channels, String comp, String zpd, boolean legacy)
            throws Exception {
        Map<String, String> g = legacy ? Map.of("multifd-flush-after-each-section", "on") : Map.of();
        try (Vm src = new Vm(cfg(16, true, null, g), false);
             Vm dst = new Vm(cfg(16, true, null, Map.of()), true)) {
            MultifdFaultTest.fill(src.ramBlocks().getFirst()); // pages 2, 5, 8, ... stay zero
            long pages = src.ramBlocks().getFirst().pages();
            long zero = pages / 3;
            MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
            MigrationManager sm = new MigrationManager(src, (e, d) -> { });
            multifd(sm, channels, comp, zpd);
            multifd(dm, channels, comp, zpd);
            Path sock = dir.resolve("paused.sock");
            IncomingMigration in = dm.startIncoming("unix:" + sock, false);
            OutgoingMigration out = sm.migrate("unix:" + sock);
            assertThat(out.join(40_000)).isTrue();
            assertThat(in.join(20_000)).isTrue();
            assertThat(out.error()).isNull();
            assertThat(in.error()).isNull();
            assertThat(out.digest()).isEqualTo(in.digest()).isNotNull();
            @SuppressWarnings("unchecked") Map<String, Object> ram = (Map<String, Object>) out.info().get("ram");
            long expectZero = zpd.equals("none") ? 0 : zero;
            assertThat((Long) ram.get("duplicate")).isEqualTo(expectZero);
            assertThat((Long) ram.get("normal")).isEqualTo(pages - expectZero);
        }
    }

    @Test
    void multifdNeedsASocketAndIsFrozenOnceIncomingStarted() throws Exception {
        try (Vm src = new Vm(cfg(8, true, null, Map.of()), false);
             Vm dst = new Vm(cfg(8, false, null, Map.of()), true)) {
            MigrationManager sm = new MigrationManager(src, (e, d) -> { });
            sm.setCapabilities(List.of(Map.entry(Capability.MULTIFD, true)));
            assertThatThrownBy(() -> sm.migrate("file:" + dir.resolve("x"))).hasMessageContaining("tcp: or unix:");
            assertThatThrownBy(() -> sm.setParameters(Map.of("multifd-channels", 0L))).hasMessageContaining("1 and 255");
            assertThatThrownBy(() -> sm.setParameters(Map.of("multifd-zstd-level", 21L))).hasMessageContaining("0 and 20");
            assertThatThrownBy(() -> sm.setParameters(Map.of("multifd-zlib-level", 10L))).hasMessageContaining("0 and 9");
            assertThatThrownBy(() -> sm.setParameters(Map.of("multifd-compression", "lz4")))
                    .hasMessageContaining("expected none, zlib or zstd");
            MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
            IncomingMigration in = dm.startIncoming("unix:" + dir.resolve("m.sock"), false);
            assertThatThrownBy(() -> dm.setCapabilities(List.of(Map.entry(Capability.MULTIFD, true))))
                    .hasMessageContaining("before the incoming migration starts");
            assertThat(dm.config().parametersAsMap()).containsEntry("multifd-channels", 2)
                    .containsEntry("multifd-zlib-level", 1).containsEntry("multifd-zstd-level", 1)
                    .containsEntry("zero-page-detection", "multifd");
            in.cancel();
        }
    }
}
