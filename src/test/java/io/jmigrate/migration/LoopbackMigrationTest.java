package io.jmigrate.migration;

import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.RunState;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.machine.WorkloadChecker;
import io.jmigrate.machine.WorkloadSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.assertj.core.api.Assertions.assertThat;

/** Source and destination VMs in one JVM, migrating over a real socket or file. */
@Timeout(60)
class LoopbackMigrationTest {
    @TempDir
    Path dir;

    private static VmConfig cfg(long mib, boolean paused, WorkloadSpec w, MachineType m) {
        return new VmConfig("t", null, mib << 20, null, false, m, paused, w);
    }

    private static void await(java.util.function.BooleanSupplier cond, String what) throws InterruptedException {
        await(cond, what, () -> "");
    }

    private static void await(java.util.function.BooleanSupplier cond, String what,
                              java.util.function.Supplier<String> state) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 30_000;
        while (!cond.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline) {
                throw new AssertionError("timed out waiting for " + what + ": " + state.get());
            }
            Thread.sleep(10);
        }
    }

    @Test
    void liveMigrationOverUnixSocketWithWorkload() throws Exception {
        List<String> srcEvents = new CopyOnWriteArrayList<>();
        try (Vm src = new Vm(cfg(32, false, new WorkloadSpec(40, "increment", 2), MachineType.DEFAULT), false);
             Vm dst = new Vm(cfg(32, false, null, MachineType.DEFAULT), true)) {
            MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
            dm.setCapabilities(List.of(Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
            src.setEventSink((e, d) -> srcEvents.add(e + d));
            MigrationManager sm = new MigrationManager(src, (e, d) -> srcEvents.add(e + d));
            sm.setCapabilities(List.of(Map.entry(Capability.EVENTS, true), Map.entry(Capability.RETURN_PATH, true),
                    Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
            sm.setParameters(Map.of("max-bandwidth", 64L << 20));
            await(() -> src.workload().pagesTouched() > 0, "the guest to run");
            Path sock = dir.resolve("mig.sock");
            IncomingMigration in = dm.startIncoming("unix:" + sock, false);
            OutgoingMigration out = sm.migrate("unix:" + sock);
            assertThat(out.join(30_000)).isTrue();
            assertThat(in.join(30_000)).isTrue();
            assertThat(out.error()).isNull();
            assertThat(out.state().get()).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(in.state().get()).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(out.digest()).isEqualTo(in.digest()).isNotNull();
            assertThat(src.runState()).isEqualTo(RunState.POSTMIGRATE);
            assertThat(dst.runState()).isEqualTo(RunState.RUNNING);
            assertThat(srcEvents).contains("MIGRATION{status=setup}", "MIGRATION{status=active}",
                    "MIGRATION{status=device}", "MIGRATION{status=completed}", "MIGRATION_PASS{pass=1}", "STOP{}");
            Map<String, Object> info = out.info();
            assertThat(info).containsKeys("downtime", "total-time", "setup-time");
            @SuppressWarnings("unchecked") Map<String, Object> ram = (Map<String, Object>) info.get("ram");
            assertThat((Long) ram.get("total")).isEqualTo(32L << 20);
            assertThat((Long) ram.get("normal") + (Long) ram.get("duplicate")).isGreaterThanOrEqualTo(8192);
        }
    }

    /**
     * Without capability x-jmigrate-digest (the default) nothing is digested: the destination
     * runs as soon as it has loaded, and x-jmigrate-query-digest reports empty digests.
     */
    @Test
    void withoutTheDigestCapabilityNothingIsDigested() throws Exception {
        try (Vm src = new Vm(cfg(8, false, new WorkloadSpec(10, "increment", 1), MachineType.DEFAULT), false);
             Vm dst = new Vm(cfg(8, false, null, MachineType.DEFAULT), true)) {
            MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
            MigrationManager sm = new MigrationManager(src, (e, d) -> { });
            sm.setCapabilities(List.of(Map.entry(Capability.RETURN_PATH, true)));
            assertThat(sm.queryCapabilities()).contains(Map.of("capability", "x-jmigrate-digest", "state", false));
            IncomingMigration in = dm.startIncoming("unix:" + dir.resolve("nodigest.sock"), false);
            OutgoingMigration out = sm.migrate("unix:" + dir.resolve("nodigest.sock"));
            assertThat(out.join(30_000)).isTrue();
            assertThat(in.join(30_000)).isTrue();
            assertThat(in.state().get()).as(String.valueOf(in.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(out.digests()).isFalse();
            assertThat(in.digests()).isFalse();
            assertThat(out.digest()).isNull();
            assertThat(in.digest()).isNull();
            assertThat(dst.runState()).isEqualTo(RunState.RUNNING);
            assertThat(dm.digests()).containsEntry("incoming", "").containsEntry("incoming-devices", Map.of());
            assertThat(sm.digests()).containsEntry("outgoing", "").containsEntry("outgoing-devices", Map.of());
        }
    }

    @Test
    @SuppressWarnings("unchecked")
    void incomingQueryMigrateShowsTheBoundSocketAddress() throws Exception {
        try (Vm dst = new Vm(cfg(4, false, null, MachineType.DEFAULT), true)) {
            IncomingMigration in = new MigrationManager(dst, (e, d) -> { }).startIncoming("tcp:127.0.0.1:0", false);
            try {
                List<Map<String, Object>> sa = (List<Map<String, Object>>) in.info().get("socket-address");
                assertThat(sa).hasSize(1);
                assertThat(sa.getFirst()).containsEntry("type", "inet").containsEntry("host", "127.0.0.1");
                assertThat(sa.getFirst().get("port")).isNotEqualTo("0");
                assertThat(in.boundUri()).isEqualTo("tcp:127.0.0.1:" + sa.getFirst().get("port"));
            } finally {
                in.cancel();
            }
        }
    }

    @Test
    void fileSaveOfPausedVmRestoresEqualDigest() throws Exception {
        try (Vm src = new Vm(cfg(8, true, null, MachineType.NONE), false);
             Vm dst = new Vm(cfg(8, false, null, MachineType.NONE), true)) {
            for (long p = 0; p < 2048; p += 3) {
                src.ramBlocks().getFirst().writeByte(p * 4096 + 17, (byte) p);
            }
            MigrationManager sm = new MigrationManager(src, (e, d) -> { });
            sm.setCapabilities(List.of(Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
            Path f = dir.resolve("vm.mig");
            OutgoingMigration out = sm.migrate("file:" + f);
            assertThat(out.join(30_000)).isTrue();
            assertThat(out.state().get()).as(String.valueOf(out.error())).isEqualTo(MigrationStatus.COMPLETED);
            byte[] bytes = Files.readAllBytes(f);
            assertThat(bytes[8]).isEqualTo((byte) 7); // configuration
            MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
            dm.setCapabilities(List.of(Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
            IncomingMigration in = dm.startIncoming("file:" + f, false);
            assertThat(in.join(30_000)).isTrue();
            assertThat(in.state().get()).as(String.valueOf(in.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(in.digest()).isEqualTo(out.digest());
            assertThat(dst.runState()).isEqualTo(RunState.PRELAUNCH);
            assertThat(in.vmdesc()).contains("\"globalstate\"");
        }
    }

    private byte[] saveToFile(VmConfig cfg, String name) throws Exception {
        try (Vm src = new Vm(cfg, false)) {
            Path f = dir.resolve(name);
            OutgoingMigration out = new MigrationManager(src, (e, d) -> { }).migrate("file:" + f);
            assertThat(out.join(30_000)).isTrue();
            assertThat(out.state().get()).isEqualTo(MigrationStatus.COMPLETED);
            return Files.readAllBytes(f);
        }
    }

    private static boolean hasSwitchoverStart(byte[] b) {
        for (int i = 0; i + 5 <= b.length; i++) {
            if (b[i] == 8 && b[i + 1] == 0 && b[i + 2] == 0x0b && b[i + 3] == 0 && b[i + 4] == 0) {
                return true;
            }
        }
        return false;
    }

    @Test
    void switchoverStartFollowsMachineCompatAndGlobalOverride() throws Exception {
        assertThat(hasSwitchoverStart(saveToFile(cfg(1, true, null, MachineType.JM_10_1), "a"))).isTrue();
        assertThat(hasSwitchoverStart(saveToFile(cfg(1, true, null, MachineType.JM_9_2), "b"))).isFalse();
        assertThat(hasSwitchoverStart(saveToFile(new VmConfig("t", null, 1 << 20, null, false, MachineType.NONE, true,
                null, Map.of("send-switchover-start", "off")), "c"))).isFalse();
        assertThat(hasSwitchoverStart(saveToFile(new VmConfig("t", null, 1 << 20, null, false, MachineType.JM_9_2,
                true, null, Map.of("send-switchover-start", "on")), "d"))).isTrue();
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> new VmConfig("t", null, 1 << 20, null, false,
                MachineType.NONE, true, null, Map.of("send-switchover-start", "maybe"))).hasMessageContaining("on or off");
    }

    @Test
    void machineMismatchFailsDestinationWithClearError() throws Exception {
        try (Vm src = new Vm(cfg(4, true, null, MachineType.JM_9_2), false);
             Vm dst = new Vm(cfg(4, false, null, MachineType.JM_10_1), true)) {
            Path f = dir.resolve("vm.mig");
            OutgoingMigration out = new MigrationManager(src, (e, d) -> { }).migrate("file:" + f);
            assertThat(out.join(30_000)).isTrue();
            IncomingMigration in = new MigrationManager(dst, (e, d) -> { }).startIncoming("file:" + f, false);
            assertThat(in.join(30_000)).isTrue();
            assertThat(in.state().get()).isEqualTo(MigrationStatus.FAILED);
            assertThat(in.error().getMessage()).contains("Machine type received is 'jm-9.2' and local is 'jm-10.1'");
        }
    }

    @Test
    void cancelResumesRunningSource() throws Exception {
        try (Vm src = new Vm(cfg(32, false, new WorkloadSpec(200, "increment", 1), MachineType.DEFAULT), false);
             Vm dst = new Vm(cfg(32, false, null, MachineType.DEFAULT), true)) {
            // The guest must have written every page before the migration starts: a vCPU thread not
            // yet scheduled (seen under load) leaves RAM all zero, the first pass sends 8192 zero
            // pages (75 KB), nothing is dirty, and the migration rightly converges and completes
            // before 1 MiB is ever sent. With every page non-zero the first pass alone holds 32 MiB.
            long pages = src.ramBlocks().getFirst().pages();
            await(() -> src.workload().pagesTouched() >= pages, "the guest to write all " + pages + " pages",
                    () -> src.workload().pagesTouched() + " written");
            MigrationManager sm = new MigrationManager(src, (e, d) -> { });
            sm.setParameters(Map.of("max-bandwidth", 8L << 20, "downtime-limit", 1L));
            Path sock = dir.resolve("c.sock");
            new MigrationManager(dst, (e, d) -> { }).startIncoming("unix:" + sock, false);
            OutgoingMigration out = sm.migrate("unix:" + sock);
            await(() -> out.state().get() == MigrationStatus.ACTIVE, "active");
            // cancelled in the middle of the first pass (32 MiB of written pages at 8 MiB/s: no convergence)
            await(() -> (Long) ((Map<?, ?>) out.info().get("ram")).get("transferred") > 1 << 20,
                    "1 MiB sent", () -> "source " + out.info() + ", error " + out.error() + ", destination "
                            + dst.runState());
            sm.cancel();
            assertThat(out.join(10_000)).isTrue();
            assertThat(out.state().get()).isEqualTo(MigrationStatus.CANCELLED);
            assertThat(src.runState()).isEqualTo(RunState.RUNNING);
            src.stop();
            List<WorkloadChecker.Result> r = src.workload().check();
            assertThat(r).allMatch(WorkloadChecker.Result::ok);
        }
    }
}
