package io.jmigrate.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jmigrate.analyze.AnalysisResult.CommandInfo;
import io.jmigrate.analyze.AnalysisResult.RamBlockStats;
import io.jmigrate.savevm.MigCommand;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Every real QEMU main stream in the test data (7.2, 10.0, 11.1; {@code pc} and {@code none}
 * guests; whole streams and the multifd main channels) decoded by {@link StreamAnalyzer} and
 * compared with what QEMU's own analyze-migration.py printed, the RAM sha256 values of the
 * READMEs, the RAM record flag counts of streams.json and the query-migrate page counters.
 */
class AnalyzeConformanceTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** sha256 of the 64 MiB pattern image (README, guest-ram-64m-pattern.sha256). */
    private static final String PATTERN_SHA = "49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf";

    static Path testdata() {
        String p = System.getProperty("jmigrate.testdata");
        assertThat(p).as("system property jmigrate.testdata").isNotNull();
        return Path.of(p);
    }

    static Stream<String> streams() {
        return Stream.of(
                "qemu-7.2/stream-zero-ram.bin.gz", "qemu-7.2/stream-pattern-ram.bin.gz", "qemu-7.2/none-stream.bin.gz",
                "qemu-10.0/stream-zero-ram.bin.gz", "qemu-10.0/stream-pattern-ram.bin.gz", "qemu-10.0/none-stream.bin.gz",
                "qemu-11.1/stream-zero-ram.bin.gz", "qemu-11.1/stream-pattern-ram.bin.gz");
    }

    static Stream<String> allMainStreams() {
        return Stream.concat(streams(), Stream.of("qemu-7.2/multifd2-pattern-ram/conn-00.c2s.bin.gz",
                "qemu-10.0/multifd2-pattern-ram/conn-00.c2s.bin.gz", "qemu-11.1/multifd2-pattern-ram/conn-00.c2s.bin.gz"));
    }

    static String gunzipText(Path p) throws IOException {
        try (InputStream in = new GZIPInputStream(Files.newInputStream(p))) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    static Path expectedState(Path stream) {
        String n = stream.getFileName().toString().replace(".c2s.bin.gz", "").replace(".bin.gz", "");
        return stream.resolveSibling(n + ".analyze-state.json.gz");
    }

    @ParameterizedTest
    @MethodSource("allMainStreams")
    void deviceStateEqualsQemuAnalyzer(String rel) throws IOException {
        Path f = testdata().resolve(rel);
        AnalysisResult res = StreamAnalyzer.analyze(f);
        String expectedText = gunzipText(expectedState(f));
        JsonNode expected = JSON.readTree(expectedText);
        JsonNode actual = JSON.readTree(PyJson.toString(res.state()));
        assertThat(actual).isEqualTo(expected);
        assertThat(actual.size()).isGreaterThanOrEqualTo(3);
        // Key order and text form too: byte-identical to analyze-migration.py's print().
        assertThat(PyJson.toString(res.state()) + "\n").isEqualTo(expectedText);
        assertThat(res.vmdescOffset()).isGreaterThan(res.eofOffset());
        assertThat(res.length()).isGreaterThan(res.vmdescOffset() + 5);
    }

    @ParameterizedTest
    @MethodSource("allMainStreams")
    void switchoverStartOnlyFromQemu10On(String rel) throws IOException {
        Path f = testdata().resolve(rel);
        AnalysisResult res = StreamAnalyzer.analyze(f);
        byte[] raw;
        try (InputStream in = new GZIPInputStream(Files.newInputStream(f))) {
            raw = in.readAllBytes();
        }
        if (rel.startsWith("qemu-7.2")) {
            assertThat(res.commands()).isEmpty();
            return;
        }
        assertThat(res.commands()).hasSize(1);
        CommandInfo c = res.commands().getFirst();
        assertThat(c.command().command()).isEqualTo(MigCommand.SWITCHOVER_START);
        int at = (int) c.offset();
        assertThat(HexFormat.of().formatHex(raw, at, at + 5)).isEqualTo("08000b0000");
        // Right before the final END section of ram (PROTOCOL.md §1.9, README).
        assertThat(res.sections()).anySatisfy(s -> {
            assertThat(s.offset()).isEqualTo(at + 5);
            assertThat(s.idstr()).isEqualTo("ram");
            assertThat(s.type().name()).isEqualTo("END");
        });
    }

    @ParameterizedTest
    @MethodSource("streams")
    void ramRecordFlagCountsMatchStreamsJson(String rel) throws IOException {
        Path f = testdata().resolve(rel);
        AnalysisResult res = StreamAnalyzer.analyze(f);
        String name = f.getFileName().toString().replace(".bin.gz", "");
        JsonNode info = JSON.readTree(f.resolveSibling(name + ".info.json").toFile());
        JsonNode qm = info.path("query_migrate_src").path("ram");
        long normal = res.ramBlocks().stream().mapToLong(RamBlockStats::normalPages).sum();
        long zero = res.ramBlocks().stream().mapToLong(RamBlockStats::zeroPages).sum();
        assertThat(normal).as("normal pages vs query-migrate").isEqualTo(qm.path("normal").asLong());
        assertThat(zero).as("zero pages vs query-migrate duplicate").isEqualTo(qm.path("duplicate").asLong());
        assertThat(res.ramBlocks().stream().mapToLong(RamBlockStats::usedLength).sum())
                .as("sum of RAMBlock lengths vs query-migrate total").isEqualTo(qm.path("total").asLong());

        Path streamsJson = f.resolveSibling("streams.json");
        JsonNode expected = JSON.readTree(streamsJson.toFile()).get(name);
        if (expected == null) {
            assertThat(name).isEqualTo("none-stream");
            assertThat(res.ramBlocks()).extracting(RamBlockStats::idstr).containsExactly("ram");
            assertThat(res.ramBlocks().getFirst().usedLength()).isEqualTo(64L << 20);
            return;
        }
        Map<String, Long> want = new LinkedHashMap<>();
        expected.get("ram_record_flags").properties().forEach(e -> want.put(e.getKey(), e.getValue().asLong()));
        assertThat(res.ramFlagCounts()).isEqualTo(want);
        assertThat(res.length()).isEqualTo(expected.get("bytes").asLong());
        assertThat(res.sectionCount()).isGreaterThanOrEqualTo(expected.get("sections").asLong());
        Map<String, Long> blocks = new LinkedHashMap<>();
        res.ramBlocks().forEach(b -> blocks.put(b.idstr().replaceFirst("^/", ""), b.usedLength()));
        Map<String, Long> wantBlocks = new LinkedHashMap<>();
        expected.get("ramblocks").properties().forEach(e -> wantBlocks.put(e.getKey(), e.getValue().asLong()));
        assertThat(blocks).isEqualTo(wantBlocks);
    }

    @ParameterizedTest
    @MethodSource("streams")
    void extractedRamHasTheReadmeSha256(String rel, @TempDir Path dir) throws Exception {
        Path f = testdata().resolve(rel);
        AnalysisResult res = StreamAnalyzer.analyze(f, StreamAnalyzer.Options.DEFAULT.withExtractDir(dir));
        String block = rel.contains("none-") ? "ram" : "pc.ram";
        Path file = res.extractedRam().get(block);
        assertThat(file).exists().hasFileName(block + ".ram");
        assertThat(Files.size(file)).isEqualTo(64L << 20);
        String want = rel.contains("zero-ram") ? sha256OfZeros(64 << 20) : PATTERN_SHA;
        assertThat(sha256(file)).isEqualTo(want);
        assertThat(res.extractedRam()).hasSize(res.ramBlocks().size());
        for (Path p : res.extractedRam().values()) {
            assertThat(p.getParent()).isEqualTo(dir);
            assertThat(p.getFileName().toString()).doesNotContain("/").endsWith(".ram");
        }
        // State does not depend on extraction.
        assertThat(res.state()).isEqualTo(JSON.readTree(gunzipText(expectedState(f))));
    }

    static String sha256(Path p) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (InputStream in = Files.newInputStream(p)) {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    static String sha256OfZeros(int len) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        byte[] z = new byte[1 << 16];
        for (int i = 0; i < len; i += z.length) {
            md.update(z);
        }
        return HexFormat.of().formatHex(md.digest());
    }

    @ParameterizedTest
    @MethodSource("streams")
    void descDumpIsTheTrailerJson(String rel) throws IOException {
        Path f = testdata().resolve(rel);
        VmDesc d = StreamAnalyzer.readVmdesc(f, StreamAnalyzer.Options.DEFAULT);
        byte[] raw;
        try (InputStream in = new GZIPInputStream(Files.newInputStream(f))) {
            raw = in.readAllBytes();
        }
        int nul = -1;
        for (int i = raw.length - 1; i >= 0; i--) {
            if (raw[i] == 0) {
                nul = i;
                break;
            }
        }
        String tailText = new String(raw, nul + 1, raw.length - nul - 1, StandardCharsets.UTF_8);
        assertThat(d.json()).isEqualTo(JSON.readTree(tailText.substring(tailText.indexOf('{'))));
        assertThat(d.pageSize()).isEqualTo(4096);
        assertThat(d.devices().keySet()).extracting(VmDesc.DeviceKey::idstr).contains("timer", "globalstate");
        // Every device section of QEMU's analyzer output has a description.
        JSON.readTree(gunzipText(expectedState(f))).properties().forEach(e -> {
            String idstr = e.getKey().substring(0, e.getKey().lastIndexOf(" ("));
            assertThat(idstr.equals("ram") || d.devices().keySet().stream().anyMatch(k -> k.idstr().equals(idstr)))
                    .as(idstr).isTrue();
        });
    }
}
