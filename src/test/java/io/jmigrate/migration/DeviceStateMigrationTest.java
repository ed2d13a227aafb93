package io.jmigrate.migration;

import io.jmigrate.machine.BlobSpec;
import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.RunState;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.machine.WorkloadSpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/** Device state over multifd between two VMs in one JVM (the process tests are DeviceStateIT). */
@Timeout(60)
class DeviceStateMigrationTest {
    @TempDir
    Path dir;

    static VmConfig cfg(MachineType m, boolean incoming, List<String> blobs) {
        return new VmConfig("t", null, 16 << 20, null, false, m, false, new WorkloadSpec(20, "increment", 1),
                Map.of(), null, blobs.stream().map(BlobSpec::parse).toList());
    }

    static void multifd(MigrationManager m, int channels) {
        m.setCapabilities(List.of(Map.entry(Capability.MULTIFD, true), Map.entry(Capability.RETURN_PATH, true),
                Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
        m.setParameters(Map.of("multifd-channels", (long) channels, "max-bandwidth", 1L << 30));
    }

    record Result(OutgoingMigration out, IncomingMigration in) {
    }

    Result migrate(Vm src, Vm dst, int channels, String sock) throws Exception {
        MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
        MigrationManager sm = new MigrationManager(src, (e, d) -> { });
        multifd(sm, channels);
        multifd(dm, channels);
        IncomingMigration in = dm.startIncoming("unix:" + dir.resolve(sock), false);
        OutgoingMigration out = sm.migrate("unix:" + dir.resolve(sock));
        assertThat(out.join(40_000)).isTrue();
        assertThat(in.join(20_000)).isTrue();
        return new Result(out, in);
    }

    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> list(Map<String, Object> m, String key) {
        return (List<Map<String, Object>>) ((Map<String, Object>) m.get("x-jmigrate-device-state")).get(key);
    }

    static long phase(Map<String, Object> info, String name) {
        return list(info, "phases").stream().filter(p -> p.get("phase").equals(name))
                .mapToLong(p -> (Long) p.get("at-us")).findFirst().orElseThrow(() -> new AssertionError(
                        "no phase " + name + " in " + info));
    }

    @Test
    void twoBlobsOverMultifdMatchDigestsAndLoadAfterSwitchoverStart() throws Exception {
        List<String> blobs = List.of("blob,id=b0,size=2M,chunk=64K,order=reverse", "blob,id=b1,size=1M,chunk=32K");
        try (Vm src = new Vm(cfg(MachineType.JM_10_1, false, blobs), false);
             Vm dst = new Vm(cfg(MachineType.JM_10_1, true, blobs), true)) {
            MultifdMigrationTest.awaitGuestRunning(src); // live: the guest's vCPUs run (instead of a 50 ms sleep)
            Result r = migrate(src, dst, 2, "m.sock");
            assertThat(r.in.error()).as("destination").isNull();
            assertThat(r.out.error()).as("source").isNull();
            assertThat(r.out.digest()).isEqualTo(r.in.digest());
            assertThat(r.out.deviceDigests()).containsOnlyKeys("b0/blob", "b1/blob").isEqualTo(r.in.deviceDigests());
            assertThat(dst.runState()).isEqualTo(RunState.RUNNING);
            Map<String, Object> si = r.out.info();
            Map<String, Object> di = r.in.info();
            List<Map<String, Object>> sdev = list(si, "devices");
            assertThat(sdev).extracting(d -> d.get("idstr")).containsExactly("b0/blob", "b1/blob");
            assertThat(sdev).allSatisfy(d -> assertThat(d.get("transfer")).isEqualTo("multifd"));
            assertThat(sdev.get(0).get("packets")).isEqualTo(32L);
            List<Map<String, Object>> ddev = list(di, "devices");
            Map<String, Object> b0 = ddev.stream().filter(d -> d.get("idstr").equals("b0/blob")).findFirst().orElseThrow();
            assertThat(b0.get("packets")).isEqualTo(32L);
            assertThat((Long) b0.get("out-of-order")).isPositive();
            long sw = phase(di, "switchover-start-loaded");
            long completed = phase(di, "completed");
            for (Map<String, Object> d : ddev) {
                assertThat((Long) d.get("thread-start-us")).isGreaterThanOrEqualTo(sw);
                assertThat((Long) d.get("thread-end-us")).isLessThanOrEqualTo(completed);
            }
            assertThat(phase(si, "vm-stopped")).isLessThanOrEqualTo(phase(si, "switchover-start-sent"));
            assertThat(phase(si, "end-sections-written")).isLessThanOrEqualTo(phase(si, "save-threads-joined"));
            assertThat(phase(si, "eof-sent")).isLessThanOrEqualTo(phase(si, "destination-loaded"));
        }
    }

    @Test
    void jm92SendsNoSwitchoverStartAndDeviceStateGoesOnTheMainChannel() throws Exception {
        List<String> blobs = List.of("blob,id=b0,size=1M,chunk=64K");
        try (Vm src = new Vm(cfg(MachineType.JM_9_2, false, blobs), false);
             Vm dst = new Vm(cfg(MachineType.JM_9_2, true, blobs), true)) {
            Result r = migrate(src, dst, 2, "n.sock");
            assertThat(r.in.error()).as("destination").isNull();
            assertThat(r.out.error()).as("source").isNull();
            assertThat(r.out.deviceDigests()).isEqualTo(r.in.deviceDigests()).containsOnlyKeys("b0/blob");
            Map<String, Object> di = r.in.info();
            assertThat(list(di, "phases")).extracting(p -> p.get("phase")).doesNotContain("switchover-start-loaded");
            assertThat(list(di, "devices").getFirst()).containsEntry("transfer", "main").containsEntry("packets", 0L);
            assertThat(list(di, "channels")).allSatisfy(c -> assertThat(c.get("device-state-packets")).isEqualTo(0L));
        }
    }
}
