package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 10 acceptance 5, a measurement rather than a test: the downtime of 4 equal emulated VFs
 * of 128 MiB, each paced at 512 MiB/s, over 6 multifd channels, with the VFIO state on multifd
 * (x-migration-multifd-transfer auto) against the main channel (off), in the same run, the two
 * modes alternating. Opt-in:
 *
 * <pre>
 * mvn -B verify -Dtest=NONE -Dsurefire.failIfNoSpecifiedTests=false -Dit.test=VfioDowntimeBenchIT \
 *     -Dvfio.bench=true [-Dvfio.bench.runs=5] [-Dvfio.bench.size=128M] [-Dvfio.bench.rate=512M] \
 *     [-Dvfio.bench.jfr=DIR]
 * </pre>
 *
 * With {@code vfio.bench.jfr} both VM processes of every run record a JFR profile
 * ({@code settings=profile}) to {@code DIR/<s|d><mode><run>.jfr}.
 *
 * Prints each run's source-side downtime (query-migrate {@code downtime}, with return-path, so
 * up to the destination's SHUT) and its phases, then the median of each mode and their ratio.
 */
@EnabledIfSystemProperty(named = "vfio.bench", matches = "true")
@Timeout(3600)
class VfioDowntimeBenchIT {
    static final String SIZE = System.getProperty("vfio.bench.size", "128M");
    static final String RATE = System.getProperty("vfio.bench.rate", "512M");
    static final String JFR = System.getProperty("vfio.bench.jfr", "");

    static List<String> jvm(String name) {
        return JFR.isEmpty() ? List.of() : List.of("-XX:StartFlightRecording=settings=profile,filename="
                + Path.of(JFR).resolve(name + ".jfr").toAbsolutePath());
    }

    @TempDir
    Path dir;

    static String[] vm(String mode, String... more) {
        List<String> a = new ArrayList<>(List.of("-m", "64M"));
        for (int i = 0; i < 4; i++) {
            a.add("--device");
            a.add("vfio-emu,id=vf" + i + ",state-size=" + SIZE + ",read-rate=" + RATE + ",write-rate=" + RATE
                    + ",dirty-rate=0,x-migration-multifd-transfer=" + mode);
        }
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    static void caps(VmProcess vm) {
        vm.exec("migrate-set-capabilities", Map.of("capabilities", List.of(
                Map.of("capability", "multifd", "state", true), Map.of("capability", "return-path", "state", true))));
        // switch over at the first check (the VFs' stop-copy size counts as pending, as in QEMU),
        // so that both modes stop the VM at the same point: after setup, guest RAM untouched
        vm.exec("migrate-set-parameters", Map.of("multifd-channels", 6, "max-bandwidth", 10L << 30,
                "downtime-limit", 60_000, "avail-switchover-bandwidth", 10L << 30));
    }

    @Test
    void fourVfsOf128MiBAt512MiBPerSecondOverSixChannels() throws Exception {
        int runs = Integer.getInteger("vfio.bench.runs", 3);
        List<Long> multifd = new ArrayList<>();
        List<Long> legacy = new ArrayList<>();
        StringBuilder report = new StringBuilder();
        for (int run = 0; run < runs; run++) {
            for (String mode : new String[] {"auto", "off"}) {
                String tag = mode + run;
                // the destination queues device-state buffers off-heap until its load threads
                // write them (no cap by default, as QEMU): the ITs' 96 MiB heap is enough
                try (VmProcess s = VmProcess.start(dir, "s" + tag, jvm("s" + tag), vm(mode));
                     VmProcess d = VmProcess.start(dir, "d" + tag, jvm("d" + tag), vm(mode, "--incoming", "defer"))) {
                    caps(s);
                    caps(d);
                    String uri = "unix:" + dir.resolve(tag + ".sock");
                    d.exec("migrate-incoming", Map.of("uri", uri));
                    s.exec("migrate", Map.of("uri", uri));
                    JsonNode si = s.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(300));
                    JsonNode di = d.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(120));
                    assertThat(si.path("status").asText()).as(si.toString()).isEqualTo("completed");
                    assertThat(di.path("status").asText()).as(di.toString()).isEqualTo("completed");
                    assertThat(d.exec("x-jmigrate-query-digest").path("incoming-devices"))
                            .isEqualTo(s.exec("x-jmigrate-query-digest").path("outgoing-devices"));
                    long downtime = si.path("downtime").asLong();
                    (mode.equals("auto") ? multifd : legacy).add(downtime);
                    report.append(String.format("run %d %-8s downtime %5d ms  vfio %d MiB  phases:", run,
                            mode.equals("auto") ? "multifd" : "legacy", downtime,
                            si.path("vfio").path("transferred").asLong() >> 20));
                    for (JsonNode p : si.path("x-jmigrate-device-state").path("phases")) {
                        report.append(' ').append(p.path("phase").asText()).append('=')
                                .append(Math.round(p.path("since-vm-stopped-ms").asDouble()));
                    }
                    report.append('\n');
                }
            }
        }
        long m = median(multifd);
        long l = median(legacy);
        report.append(String.format("median downtime: multifd %d ms, legacy %d ms, ratio %.2f (runs: multifd %s, "
                + "legacy %s)%n", m, l, (double) m / l, multifd, legacy));
        System.out.println("VFIO downtime benchmark (4 VFs x " + SIZE + " at " + RATE + "/s, 6 channels)\n" + report);
    }

    static long median(List<Long> v) {
        long[] a = v.stream().mapToLong(Long::longValue).toArray();
        Arrays.sort(a);
        return a.length == 0 ? 0 : a[a.length / 2];
    }
}
