package io.jmigrate.ram;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jmigrate.common.MigrationException;
import io.jmigrate.multifd.ChannelStats;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Every real QEMU multifd capture in testdata: packets validate, facts match, RAM rebuilds exactly. */
@Timeout(120)
class MultifdCaptureTest {
    /** sha256 of the 64 MiB pattern image every capture's guest RAM holds (READMEs). */
    private static final String PATTERN_SHA256 = "49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf";

    private static Path testdata() {
        return Path.of(System.getProperty("jmigrate.testdata", "../shared/testdata"));
    }

    private static List<Path> files(Path dir) throws Exception {
        List<Path> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(dir)) {
            s.filter(p -> p.getFileName().toString().matches("conn-\\d+\\.c2s\\.bin\\.gz")).forEach(out::add);
        }
        Collections.reverse(out); // any order: the main channel is found by its magic
        return out;
    }

    @ParameterizedTest
    @CsvSource({"qemu-7.2,multifd2-pattern-ram,pc.ram", "qemu-10.0,multifd2-pattern-ram,pc.ram",
            "qemu-11.1,multifd2-pattern-ram,pc.ram", "qemu-7.2,none-multifd2,ram", "qemu-10.0,none-multifd2,ram"})
    void decodesCaptureAndRebuildsRam(String version, String capture, String block) throws Exception {
        Path dir = testdata().resolve(version).resolve(capture);
        try (Arena arena = Arena.ofShared()) {
            MultifdCapture.Result r = MultifdCapture.decode(files(dir), 4096, arena, Duration.ofSeconds(30));
            assertThat(r.mainFile().getFileName().toString()).isEqualTo("conn-00.c2s.bin.gz");
            assertThat(r.channels()).hasSize(2);
            assertThat(r.sha256(block)).isEqualTo(PATTERN_SHA256);
            assertThat(r.legacySync()).isEqualTo(version.equals("qemu-7.2"));
            for (MultifdCapture.ChannelReport c : r.channels()) {
                assertThat(c.stats().syncPackets()).isEqualTo(3);
                assertThat(c.stats().deviceStatePackets()).isZero();
                assertThat(c.stats().bytes()).as("whole file consumed").isEqualTo(gunzippedSize(Path.of(c.file())));
            }
            Path facts = dir.resolve("channels.json");
            if (Files.exists(facts)) {
                JsonNode j = new ObjectMapper().readTree(facts.toFile());
                for (JsonNode ch : j.get("channels")) {
                    if (ch.has("main_channel")) {
                        Map<String, Long> want = new java.util.TreeMap<>();
                        ch.get("ram_record_flags").properties().forEach(e -> want.put(e.getKey(), e.getValue().asLong()));
                        Map<String, Long> got = new java.util.TreeMap<>();
                        r.ramRecords().forEach((k, v) -> got.put("0x" + Integer.toHexString(k), v));
                        // the reader reports kinds without CONTINUE: compare totals per kind
                        assertThat(sumByKind(got)).isEqualTo(sumByKind(want));
                        continue;
                    }
                    MultifdCapture.ChannelReport rep = r.channels().stream()
                            .filter(c -> c.stats().id() == ch.get("id").asInt()).findFirst().orElseThrow();
                    assertThat(Path.of(rep.file()).getFileName().toString()).isEqualTo(ch.get("file").asText());
                    ChannelStats s = rep.stats();
                    assertThat(s.packets()).isEqualTo(ch.get("packets").asLong());
                    assertThat(s.syncPackets()).isEqualTo(ch.get("sync_packets").asLong());
                    assertThat(s.deviceStatePackets()).isEqualTo(ch.get("device_state_packets").asLong());
                    assertThat(s.normalPages()).isEqualTo(ch.get("normal_pages").asLong());
                    assertThat(s.zeroPages()).isEqualTo(ch.get("zero_pages").asLong());
                }
            }
        }
    }

    private static Map<Integer, Long> sumByKind(Map<String, Long> m) {
        Map<Integer, Long> out = new java.util.TreeMap<>();
        m.forEach((k, v) -> out.merge(Integer.decode(k) & ~RamFlags.CONTINUE, v, Long::sum));
        return out;
    }

    private static long gunzippedSize(Path p) throws Exception {
        try (var in = MultifdCapture.open(p)) {
            return in.transferTo(java.io.OutputStream.nullOutputStream());
        }
    }

    @ParameterizedTest
    @CsvSource({"qemu-10.0,multifd2-pattern-ram"})
    void missingChannelFileIsAClearError(String version, String capture) throws Exception {
        List<Path> f = files(testdata().resolve(version).resolve(capture));
        f.removeIf(p -> p.getFileName().toString().startsWith("conn-01"));
        try (Arena arena = Arena.ofShared()) {
            // only channel id 1 given: out of range for a one-channel decode, named by its file
            assertThatThrownBy(() -> MultifdCapture.decode(f, 4096, arena, Duration.ofSeconds(5)))
                    .isInstanceOf(MigrationException.class).hasMessageContaining("conn-02.c2s.bin.gz")
                    .hasMessageContaining("channel id 1 is out of range");
        }
    }
}
