package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 10 acceptance 2-4 with real VM processes over real sockets: emulated VFIO VFs of 64 MiB
 * (paced at 512 MiB/s), a RAM workload running.
 *
 * <ul>
 *   <li>2 VFs hop three times, as one guest: 2 channels, x-migration-multifd-transfer auto, vf0
 *       with precopy and switchover-ack; then qom-set off on both sides and 6 channels (the
 *       stats show the main-channel path: acceptance 4); then qom-set on, 6 channels. 1 VF over
 *       2 channels and 4 VFs over 6 channels once each. Every hop: RAM and device digests
 *       equal; multifd hops: vf0's packets arrived out of order (its test hook
 *       x-test-corrupt-packet=reverse queues them last idx first, so two on one channel arrive
 *       inverted), asserted from the destination's reassembler.</li>
 *   <li>bad input, each against a fresh destination: an error naming the device and idx, the
 *       source VM and its VF back in RUNNING; finally one good migration shows nothing was
 *       lost.</li>
 * </ul>
 */
@Timeout(900)
class VfioMigrationIT {
    static final String WL = "dirty-rate=20,pattern=increment";
    static final String VF = "state-size=64M,read-rate=512M,write-rate=512M,dirty-rate=2M";

    @TempDir
    Path dir;

    static String[] vm(List<String> devices, String... more) {
        List<String> a = new ArrayList<>(List.of("-m", "32M", "--workload", WL));
        for (String d : devices) {
            a.add("--device");
            a.add(d);
        }
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    static void caps(VmProcess vm, int channels, boolean returnPath, boolean ack) {
        List<Map<String, Object>> c = new ArrayList<>();
        c.add(Map.of("capability", "multifd", "state", true));
        c.add(Map.of("capability", "return-path", "state", returnPath));
        c.add(Map.of("capability", "switchover-ack", "state", ack));
        vm.exec("migrate-set-capabilities", Map.of("capabilities", c));
        vm.exec("migrate-set-parameters", Map.of("multifd-channels", channels, "max-bandwidth", 1L << 30,
                "downtime-limit", 60_000));
    }

    static void qomSet(VmProcess vm, String id, String prop, Object value) {
        vm.exec("qom-set", Map.of("path", "/machine/peripheral/" + id, "property", prop, "value", value));
    }

    static String qomGet(VmProcess vm, String id, String prop) {
        return vm.exec("qom-get", Map.of("path", "/machine/peripheral/" + id, "property", prop)).asText();
    }

    static JsonNode device(JsonNode info, String idstr) {
        for (JsonNode d : info.path("x-jmigrate-device-state").path("devices")) {
            if (d.path("idstr").asText().equals(idstr)) {
                return d;
            }
        }
        throw new AssertionError("no device " + idstr + " in " + info);
    }

    /** One successful hop; returns the destination's query-migrate. */
    static JsonNode hop(VmProcess src, VmProcess dst, Path sock, List<String> ids, String transfer) throws Exception {
        return hop(src, dst, sock, ids, transfer, transfer.equals("multifd"));
    }

    static JsonNode hop(VmProcess src, VmProcess dst, Path sock, List<String> ids, String transfer,
                        boolean outOfOrder) throws Exception {
        String uri = "unix:" + sock;
        dst.exec("migrate-incoming", Map.of("uri", uri));
        src.exec("migrate", Map.of("uri", uri));
        JsonNode si = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(240));
        JsonNode di = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(120));
        String what = src.name + " -> " + dst.name;
        assertThat(si.path("status").asText()).as(what + ": source " + si + "\n" + src.describeProcess())
                .isEqualTo("completed");
        assertThat(di.path("status").asText()).as(what + ": destination " + di + "\n" + dst.describeProcess())
                .isEqualTo("completed");
        JsonNode sd = src.exec("x-jmigrate-query-digest");
        JsonNode dd = dst.exec("x-jmigrate-query-digest");
        assertThat(dd.path("incoming").asText()).as(what + ": RAM digest").hasSize(64)
                .isEqualTo(sd.path("outgoing").asText());
        assertThat(sd.path("outgoing-devices").size()).as(what).isEqualTo(ids.size());
        assertThat(dd.path("incoming-devices")).as(what + ": VF digests").isEqualTo(sd.path("outgoing-devices"));
        assertThat(si.path("vfio").path("transferred").asLong()).as(what + ": vfio.transferred")
                .isGreaterThanOrEqualTo(ids.size() * (64L << 20));
        if (transfer.equals("main")) {
            assertThat(si.path("x-jmigrate-device-state").path("devices")).as(what + ": no save threads").isEmpty();
            for (JsonNode c : si.path("x-jmigrate-device-state").path("channels")) {
                assertThat(c.path("device-state-packets").asLong()).as(what).isZero();
            }
        }
        for (String id : ids) {
            if (transfer.equals("multifd")) {
                assertThat(device(si, id + "/vfio").path("transfer").asText()).as(what + " " + id).isEqualTo(transfer);
            }
            assertThat(device(di, id + "/vfio").path("transfer").asText()).as(what + " " + id).isEqualTo(transfer);
            assertThat(qomGet(dst, id, "x-device-state")).as(what + " " + id).isEqualTo("running");
            assertThat(qomGet(src, id, "x-device-state")).as(what + " " + id).isEqualTo("stop");
        }
        if (outOfOrder) {
            JsonNode vf0 = device(di, ids.getFirst() + "/vfio");
            assertThat(vf0.path("late-arrivals").asLong()).as(what + ": out of order: " + vf0).isPositive();
            assertThat(vf0.path("packets-per-channel").size()).as(what + ": channels: " + vf0).isGreaterThan(1);
        }
        assertThat(dst.status()).isEqualTo("running");
        return di;
    }

    @Test
    void twoVfsHopOverPathsChannelsAndPrecopyThenOneAndFour() throws Exception {
        List<String> two = List.of("vfio-emu,id=vf0," + VF + ",precopy-size=8M,x-test-corrupt-packet=reverse,"
                + "migration-events=on", "vfio-emu,id=vf1," + VF);
        List<String> ids = List.of("vf0", "vf1");
        try (VmProcess s = VmProcess.start(dir, "s", vm(two));
             VmProcess d1 = VmProcess.start(dir, "d1", vm(two, "--incoming", "defer"))) {
            caps(s, 2, true, true);
            caps(d1, 2, true, true);
            hop(s, d1, dir.resolve("m1.sock"), ids, "multifd");
            // vf0 has PRE_COPY: the source went through it, and switchover waited for its INIT_DATA_SENT
            assertThat(s.qmp.awaitEvent(e -> e.path("event").asText().equals("VFIO_MIGRATION")
                    && e.path("data").path("device-state").asText().equals("pre-copy"), Duration.ofSeconds(5)))
                    .as("VFIO_MIGRATION pre-copy event").isNotNull();

            try (VmProcess d2 = VmProcess.start(dir, "d2", vm(two, "--incoming", "defer"))) {
                for (String id : ids) { // acceptance 4: the next migration takes the main channel
                    qomSet(d1, id, "x-migration-multifd-transfer", "off");
                    qomSet(d2, id, "x-migration-multifd-transfer", "off");
                }
                assertThat(qomGet(d1, "vf0", "x-migration-multifd-transfer")).isEqualTo("off");
                caps(d1, 6, false, false);
                caps(d2, 6, false, false);
                JsonNode di = hop(d1, d2, dir.resolve("m2.sock"), ids, "main");
                for (JsonNode c : di.path("x-jmigrate-device-state").path("channels")) {
                    assertThat(c.path("device-state-packets").asLong()).isZero();
                }
                try (VmProcess d3 = VmProcess.start(dir, "d3", vm(two, "--incoming", "defer"))) {
                    for (String id : ids) {
                        qomSet(d2, id, "x-migration-multifd-transfer", "on");
                        qomSet(d3, id, "x-migration-multifd-transfer", "on");
                    }
                    caps(d2, 6, true, false);
                    caps(d3, 6, true, false);
                    hop(d2, d3, dir.resolve("m3.sock"), ids, "multifd");
                }
            }
        }
        for (int n : new int[] {1, 4}) {
            List<String> devs = new ArrayList<>();
            List<String> vfIds = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                devs.add("vfio-emu,id=vf" + i + "," + VF + (i == 0 ? ",x-test-corrupt-packet=reverse" : ""));
                vfIds.add("vf" + i);
            }
            int channels = n == 1 ? 2 : 6;
            try (VmProcess s = VmProcess.start(dir, "s" + n, vm(devs));
                 VmProcess d = VmProcess.start(dir, "d" + n, vm(devs, "--incoming", "defer"))) {
                caps(s, channels, true, false);
                caps(d, channels, true, false);
                hop(s, d, dir.resolve("n" + n + ".sock"), vfIds, "multifd");
            }
        }
    }

    /** A migration that must fail; returns the failing side's error-desc. */
    static String failed(VmProcess src, VmProcess dst, Path sock, boolean destinationError) throws Exception {
        String uri = "unix:" + sock;
        dst.exec("migrate-incoming", Map.of("uri", uri));
        src.exec("migrate", Map.of("uri", uri));
        JsonNode si = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(240));
        JsonNode di = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(120));
        assertThat(si.path("status").asText()).as("source " + si).isEqualTo("failed");
        assertThat(di.path("status").asText()).as("destination " + di).isEqualTo("failed");
        assertThat(dst.status()).as("the destination never runs").isNotEqualTo("running");
        assertThat(src.status()).as("the source runs again").isEqualTo("running");
        assertThat(qomGet(src, "vf0", "x-device-state")).as("the source VF is back in RUNNING").isEqualTo("running");
        return (destinationError ? di : si).path("error-desc").asText();
    }

    @Test
    void badInputNamesTheDeviceAndIdxAndLosesNothing() throws Exception {
        List<String> src = List.of("vfio-emu,id=vf0," + VF + ",precopy-size=8M");
        try (VmProcess s = VmProcess.start(dir, "s", vm(src))) {
            caps(s, 1, true, false);
            record Case(String name, String srcProp, Object srcValue, String dstProp, Object dstValue,
                        boolean destinationError, String... expected) {
            }
            List<Case> cases = List.of(
                    new Case("duplicate", "x-test-corrupt-packet", "duplicate", null, null, true,
                            "vf0/vfio", "state buffer 0 already filled"),
                    new Case("after-config", "x-test-corrupt-packet", "after-config", null, null, true,
                            "vf0/vfio: state buffer", "comes after the config packet idx"),
                    new Case("config-not-last", "x-test-corrupt-packet", "config-not-last", null, null, true,
                            "vf0/vfio: config packet idx", "is not last: state buffer"),
                    new Case("version", "x-test-corrupt-packet", "version", null, null, true,
                            "VFIO device vf0/vfio: device-state packet idx 0 has version 1, expected 0"),
                    new Case("cap", null, null, "x-migration-max-queued-buffers-size", 512 * 1024, true,
                            "vf0/vfio: queuing state buffer 0", "would exceed the size max of 524288"),
                    new Case("config-on-main", "x-migration-multifd-transfer", "off", null, null, true,
                            "VFIO device vf0/vfio", "got DEV_CONFIG_STATE in main migration channel but doing "
                            + "multifd transfer"),
                    new Case("on-off", null, null, "x-migration-multifd-transfer", "off", true,
                            "VFIO device vf0/vfio", "got device state packet but not doing multifd transfer"),
                    new Case("forbidden-arc", "x-test-request-state", "pre-copy", null, null, false,
                            "VFIO device vf0/vfio", "STOP_COPY -> PRE_COPY", "the uAPI forbids STOP_COPY -> PRE_COPY"),
                    new Case("read-error", "x-test-read-error-at", 32L << 20, null, null, false,
                            "vfio-emu 'vf0'", "EIO", "stop-copy stream byte 33554432"));
            int i = 0;
            for (Case c : cases) {
                try (VmProcess d = VmProcess.start(dir, "d-" + c.name(), vm(src, "--incoming", "defer"))) {
                    caps(d, 1, true, false);
                    if (c.srcProp() != null) {
                        qomSet(s, "vf0", c.srcProp(), c.srcValue());
                    }
                    if (c.dstProp() != null) {
                        qomSet(d, "vf0", c.dstProp(), c.dstValue());
                    }
                    String err = failed(s, d, dir.resolve("f" + i++ + ".sock"), c.destinationError());
                    assertThat(err).as(c.name()).contains(c.expected());
                    if (c.srcProp() != null && c.srcProp().equals("x-migration-multifd-transfer")) {
                        qomSet(s, "vf0", c.srcProp(), "auto");
                    }
                }
            }
            try (VmProcess d = VmProcess.start(dir, "d-good", vm(src, "--incoming", "defer"))) {
                caps(d, 1, true, false);
                hop(s, d, dir.resolve("good.sock"), List.of("vf0"), "multifd", false);
            }
        }
    }
}
