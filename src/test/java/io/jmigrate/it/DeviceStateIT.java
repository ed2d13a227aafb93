package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.migration.MultifdFaultProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 9 acceptance with real VM processes over real sockets: blob devices whose switchover
 * state travels as multifd device state, while a RAM workload runs.
 *
 * <ol>
 *   <li>1, 2 and 4 blob devices, each guest hopping over 2 then 6 channels: RAM and every device
 *       digest match; the reverse-order device's chunks arrived on several channels and out of
 *       order (from the destination's stats); SWITCHOVER_START was loaded before any load
 *       thread started; the destination reported completed after every load thread ended. The
 *       first hop is recorded with JFR on both sides and read back with {@code jfr print}.</li>
 *   <li>jm-9.2: no SWITCHOVER_START, device state on the main channel; {@code analyze} of a
 *       {@code file:} save shows the command for jm-10.1 only.</li>
 *   <li>faults (save thread throws, load thread throws, channel dropped during device state,
 *       packet for an unknown instance, cancel during device state): the source keeps running,
 *       the destination never runs, and the next migration carries RAM and devices intact.</li>
 * </ol>
 */
@Timeout(600)
class DeviceStateIT {
    static final String WL = "dirty-rate=20,pattern=increment";

    @TempDir
    Path dir;

    static List<String> blobArgs(int n, String extra0) {
        List<String> a = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            a.add("--device");
            a.add("blob,id=b" + i + ",size=4M,chunk=128K" + (i == 0 ? ",order=reverse" + extra0 : ""));
        }
        return a;
    }

    static String[] vmArgs(List<String> blobs, String... more) {
        List<String> a = new ArrayList<>(List.of("-m", "32M", "--workload", WL));
        a.addAll(blobs);
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    static void multifd(VmProcess vm, int channels) {
        vm.exec("migrate-set-capabilities", Map.of("capabilities", List.of(
                Map.of("capability", "multifd", "state", true), Map.of("capability", "return-path", "state", true))));
        vm.exec("migrate-set-parameters", Map.of("multifd-channels", channels, "max-bandwidth", 1L << 30));
    }

    static long phase(JsonNode info, String name) {
        for (JsonNode p : info.path("x-jmigrate-device-state").path("phases")) {
            if (p.path("phase").asText().equals(name)) {
                return p.path("at-us").asLong();
            }
        }
        throw new AssertionError("no phase " + name + " in " + info);
    }

    static boolean hasPhase(JsonNode info, String name) {
        for (JsonNode p : info.path("x-jmigrate-device-state").path("phases")) {
            if (p.path("phase").asText().equals(name)) {
                return true;
            }
        }
        return false;
    }

    /** Migrates src to dst (both configured) and checks everything acceptance 1 asks for. */
    static void migrateAndCheck(VmProcess src, VmProcess dst, String uri, int devices, int channels) throws Exception {
        dst.exec("migrate-incoming", Map.of("uri", uri));
        src.exec("migrate", Map.of("uri", uri));
        JsonNode si = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(120));
        JsonNode di = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
        String hop = devices + " device(s), " + channels + " channels";
        assertThat(di.path("status").asText()).as(hop + ": destination " + di + "\n" + dst.describeProcess())
                .isEqualTo("completed");
        assertThat(si.path("status").asText()).as(hop + ": source " + si).isEqualTo("completed");
        assertThat(dst.status()).isEqualTo("running");
        JsonNode sd = src.exec("x-jmigrate-query-digest");
        JsonNode dd = dst.exec("x-jmigrate-query-digest");
        assertThat(sd.path("outgoing").asText()).as(hop + ": RAM digest").hasSize(64)
                .isEqualTo(dd.path("incoming").asText());
        assertThat(sd.path("outgoing-devices").size()).isEqualTo(devices);
        assertThat(dd.path("incoming-devices")).as(hop + ": device digests").isEqualTo(sd.path("outgoing-devices"));

        JsonNode sds = si.path("x-jmigrate-device-state");
        assertThat(sds.path("devices")).hasSize(devices);
        for (JsonNode d : sds.path("devices")) {
            assertThat(d.path("transfer").asText()).isEqualTo("multifd");
            assertThat(d.path("packets").asLong()).isEqualTo(32);
        }
        JsonNode dds = di.path("x-jmigrate-device-state");
        assertThat(dds.path("channels")).hasSize(channels);
        long switchoverStart = phase(di, "switchover-start-loaded");
        long completed = phase(di, "completed");
        for (JsonNode d : dds.path("devices")) {
            String id = d.path("idstr").asText();
            assertThat(d.path("packets").asLong()).as(id).isEqualTo(32);
            assertThat(d.path("chunks-loaded").asLong()).as(id).isEqualTo(32);
            assertThat(d.path("thread-start-us").asLong()).as(id + ": load thread after SWITCHOVER_START")
                    .isGreaterThanOrEqualTo(switchoverStart);
            assertThat(d.path("thread-end-us").asLong()).as(id + ": completed after the load thread ended")
                    .isLessThanOrEqualTo(completed);
            if (id.equals("b0/blob")) { // order=reverse: two chunks of one channel always arrive inverted
                assertThat(d.path("packets-per-channel").size()).as(id + " channels used: " + d).isGreaterThan(1);
                assertThat(d.path("out-of-order").asLong()).as(id + ": " + d).isPositive();
            }
        }
        assertThat(phase(si, "vm-stopped")).isLessThanOrEqualTo(phase(si, "switchover-start-sent"));
        assertThat(phase(si, "switchover-start-sent")).isLessThanOrEqualTo(phase(si, "end-sections-written"));
        assertThat(phase(si, "end-sections-written")).isLessThanOrEqualTo(phase(si, "save-threads-joined"));
        assertThat(phase(si, "save-threads-joined")).isLessThanOrEqualTo(phase(si, "eof-sent"));
        assertThat(phase(si, "eof-sent")).isLessThanOrEqualTo(phase(si, "destination-loaded"));
        assertThat(phase(di, "load-threads-joined")).isLessThanOrEqualTo(phase(si, "destination-loaded"));
    }

    @Test
    void oneTwoAndFourBlobsOverTwoThenSixChannelsWithJfr() throws Exception {
        for (int devices : new int[] {1, 2, 4}) {
            List<String> blobs = blobArgs(devices, "");
            boolean jfr = devices == 2;
            Path srcJfr = dir.resolve("src" + devices + ".jfr");
            Path dstJfr = dir.resolve("d" + devices + "a.jfr");
            try (VmProcess src = VmProcess.start(dir, "s" + devices, jfr ? List.of(
                    "-XX:StartFlightRecording=filename=" + srcJfr) : List.of(), vmArgs(blobs));
                 VmProcess d1 = VmProcess.start(dir, "d" + devices + "a", jfr ? List.of(
                         "-XX:StartFlightRecording=filename=" + dstJfr) : List.of(),
                         vmArgs(blobs, "--incoming", "defer"))) {
                multifd(src, 2);
                multifd(d1, 2);
                migrateAndCheck(src, d1, "unix:" + dir.resolve("m" + devices + "a.sock"), devices, 2);
                try (VmProcess d2 = VmProcess.start(dir, "d" + devices + "b", vmArgs(blobs, "--incoming", "defer"))) {
                    multifd(d1, 6);
                    multifd(d2, 6);
                    migrateAndCheck(d1, d2, "unix:" + dir.resolve("m" + devices + "b.sock"), devices, 6);
                }
                if (jfr) {
                    quit(src);
                    quit(d1);
                }
            }
            if (jfr) {
                String sent = jfrPrint(srcJfr, "io.jmigrate.DeviceStatePacketSent,io.jmigrate.MigrationPhase");
                assertThat(sent).contains("io.jmigrate.DeviceStatePacketSent", "device = \"b0/blob\"",
                        "io.jmigrate.MigrationPhase", "phase = \"save-threads-joined\"");
                String received = jfrPrint(dstJfr, "io.jmigrate.DeviceStatePacketReceived,io.jmigrate.MigrationPhase");
                assertThat(received).contains("io.jmigrate.DeviceStatePacketReceived", "device = \"b1/blob\"",
                        "phase = \"load-threads-joined\"");
            }
        }
    }

    static void quit(VmProcess vm) throws Exception {
        try {
            vm.exec("quit");
        } catch (AssertionError | RuntimeException e) {
            // the connection may close before the reply
        }
        assertThat(vm.process.waitFor(30, TimeUnit.SECONDS)).as(vm.name + " exits on quit").isTrue();
    }

    static String jfrPrint(Path recording, String events) throws Exception {
        Path out = Files.createTempFile("jfr", ".txt");
        Process p = VmProcess.track(new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "jfr").toString(),
                "print", "--events", events, recording.toString()).redirectErrorStream(true)
                .redirectOutput(out.toFile()).start());
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        String text = Files.readString(out);
        Files.delete(out);
        assertThat(p.exitValue()).as(text).isZero();
        return text;
    }

    @Test
    void jm92FallsBackToTheMainChannelAndAnalyzeShowsSwitchoverStartFor101Only() throws Exception {
        List<String> blobs = blobArgs(2, "");
        try (VmProcess src = VmProcess.start(dir, "s92", vmArgs(blobs, "--machine", "jm-9.2"));
             VmProcess dst = VmProcess.start(dir, "d92", vmArgs(blobs, "--machine", "jm-9.2", "--incoming", "defer"))) {
            multifd(src, 2);
            multifd(dst, 2);
            String uri = "unix:" + dir.resolve("m92.sock");
            dst.exec("migrate-incoming", Map.of("uri", uri));
            src.exec("migrate", Map.of("uri", uri));
            JsonNode si = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(120));
            JsonNode di = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
            assertThat(di.path("status").asText()).as(di.toString()).isEqualTo("completed");
            assertThat(si.path("status").asText()).as(si.toString()).isEqualTo("completed");
            assertThat(hasPhase(si, "switchover-start-sent")).isFalse();
            assertThat(hasPhase(di, "switchover-start-loaded")).isFalse();
            assertThat(hasPhase(si, "save-threads-joined")).isFalse();
            for (JsonNode d : di.path("x-jmigrate-device-state").path("devices")) {
                assertThat(d.path("transfer").asText()).isEqualTo("main");
                assertThat(d.path("packets").asLong()).isZero();
            }
            for (JsonNode c : di.path("x-jmigrate-device-state").path("channels")) {
                assertThat(c.path("device-state-packets").asLong()).isZero();
            }
            assertThat(dst.exec("x-jmigrate-query-digest").path("incoming-devices"))
                    .isEqualTo(src.exec("x-jmigrate-query-digest").path("outgoing-devices"));
        }
        Map<String, String> analyzed = new HashMap<>();
        for (String machine : new String[] {"jm-10.1", "jm-9.2"}) {
            Path file = dir.resolve(machine + ".mig");
            try (VmProcess vm = VmProcess.start(dir, "f" + machine, "-m", "16M", "--machine", machine, "-S")) {
                vm.exec("migrate", Map.of("uri", "file:" + file));
                JsonNode info = vm.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
                assertThat(info.path("status").asText()).as(info.toString()).isEqualTo("completed");
            }
            Path out = dir.resolve(machine + ".analyze");
            int rc = VmProcess.run(out, "analyze", file.toString());
            analyzed.put(machine, Files.readString(out));
            assertThat(rc).as(analyzed.get(machine)).isZero();
        }
        assertThat(analyzed.get("jm-10.1")).contains("SWITCHOVER_START");
        assertThat(analyzed.get("jm-9.2")).doesNotContain("SWITCHOVER_START");
    }

    /** The failed migration left the source running and the destination not running. */
    static void assertFailedCleanly(VmProcess src, VmProcess dst, String expectedError) throws Exception {
        JsonNode si = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
        JsonNode di = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
        assertThat(si.path("status").asText()).as(si.toString()).isIn("failed", "cancelled");
        assertThat(di.path("status").asText()).as(di.toString()).isIn("failed", "cancelled");
        assertThat(si.path("error-desc").asText() + " / " + di.path("error-desc").asText())
                .as("source / destination errors").contains(expectedError);
        assertThat(src.status()).isEqualTo("running");
        assertThat(dst.status()).isNotEqualTo("running");
        assertThat(src.exec("x-jmigrate-query-workload").path("ok").asBoolean()).isTrue();
    }

    @Test
    void faultsLeaveTheSourceRunningAndTheNextMigrationIntact() throws Exception {
        List<String> srcBlobs = blobArgs(2, ",fail-at=save:3");
        List<String> plain = blobArgs(2, "");
        int n = 0;
        try (VmProcess src = VmProcess.start(dir, "src", vmArgs(srcBlobs))) {
            multifd(src, 2);
            // a save thread throws (the hook fires in the first migration only)
            try (VmProcess dst = VmProcess.start(dir, "f" + n, vmArgs(plain, "--incoming", "defer"))) {
                multifd(dst, 2);
                String uri = "unix:" + dir.resolve("f" + n++ + ".sock");
                dst.exec("migrate-incoming", Map.of("uri", uri));
                src.exec("migrate", Map.of("uri", uri));
                assertFailedCleanly(src, dst, "injected save failure at chunk 3");
            }
            // a load thread throws
            try (VmProcess dst = VmProcess.start(dir, "f" + n, vmArgs(blobArgs(2, ",fail-at=load:2"),
                    "--incoming", "defer"))) {
                multifd(dst, 2);
                String uri = "unix:" + dir.resolve("f" + n++ + ".sock");
                dst.exec("migrate-incoming", Map.of("uri", uri));
                src.exec("migrate", Map.of("uri", uri));
                assertFailedCleanly(src, dst, "injected load failure at chunk 2");
            }
            // a multifd channel drops half-way through a device-state packet; then a packet for
            // an unknown instance id
            for (MultifdFaultProxy.Fault f : new MultifdFaultProxy.Fault[] {
                    MultifdFaultProxy.Fault.DEVICE_STATE_DROPPED, MultifdFaultProxy.Fault.DEVICE_STATE_UNKNOWN_INSTANCE}) {
                try (VmProcess dst = VmProcess.start(dir, "f" + n, vmArgs(plain, "--incoming", "defer"))) {
                    multifd(dst, 2);
                    dst.exec("migrate-incoming", Map.of("uri", "tcp:127.0.0.1:0"));
                    int port = dst.exec("query-migrate").path("socket-address").get(0).path("port").asInt();
                    try (MultifdFaultProxy proxy = new MultifdFaultProxy(new InetSocketAddress("127.0.0.1", port), f,
                            -1, 2)) {
                        src.exec("migrate", Map.of("uri", proxy.uri()));
                        assertFailedCleanly(src, dst, f == MultifdFaultProxy.Fault.DEVICE_STATE_DROPPED
                                ? "dropped in the middle of a packet" : "instance 7");
                    }
                    n++;
                }
            }
            try (VmProcess dst = VmProcess.start(dir, "ok", vmArgs(plain, "--incoming", "defer"))) {
                multifd(dst, 2);
                migrateAndCheck(src, dst, "unix:" + dir.resolve("ok.sock"), 2, 2);
            }
        }
    }

    @Test
    void cancelDuringDeviceStateTransferResumesTheSource() throws Exception {
        List<String> blobs = List.of("--device", "blob,id=b0,size=4M,chunk=128K,order=reverse",
                "--device", "blob,id=b1,size=4M,chunk=128K,hold-at=save:5");
        List<String> plain = blobArgs(2, "");
        try (VmProcess src = VmProcess.start(dir, "src", vmArgs(blobs))) {
            multifd(src, 2);
            try (VmProcess dst = VmProcess.start(dir, "c0", vmArgs(plain, "--incoming", "defer"))) {
                multifd(dst, 2);
                String uri = "unix:" + dir.resolve("c0.sock");
                dst.exec("migrate-incoming", Map.of("uri", uri));
                src.exec("migrate", Map.of("uri", uri));
                // b1's save thread holds before chunk 5 until the migration is aborted
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (true) {
                    JsonNode info = src.exec("query-migrate");
                    JsonNode devs = info.path("x-jmigrate-device-state").path("devices");
                    if (devs.size() == 2 && devs.get(1).path("packets").asLong() == 5) {
                        assertThat(info.path("status").asText()).isEqualTo("device");
                        break;
                    }
                    assertThat(VmProcess.isFinal(info.path("status").asText())).as(info.toString()).isFalse();
                    assertThat(System.nanoTime()).as("b1 reaches chunk 5: " + info).isLessThan(deadline);
                    Thread.sleep(20);
                }
                src.exec("migrate_cancel");
                assertFailedCleanly(src, dst, "");
                assertThat(src.migrationStatus()).isEqualTo("cancelled");
            }
            try (VmProcess dst = VmProcess.start(dir, "c1", vmArgs(plain, "--incoming", "defer"))) {
                multifd(dst, 2);
                migrateAndCheck(src, dst, "unix:" + dir.resolve("c1.sock"), 2, 2);
            }
        }
    }
}
