package io.jmigrate.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.zip.GZIPInputStream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code jmigrate analyze MAIN --multifd CH ...} through the command's code path (picocli, in
 * process) on every multifd capture in the test data: every packet validates, the per-channel
 * report equals channels.json (and the relay's byte counts in manifest.json), the main channel's
 * RAM record counts and device state equal what QEMU's tools found, and the extracted RAM has the
 * README's sha256.
 */
@Timeout(120)
class AnalyzeMultifdTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** sha256 of the 64 MiB pattern image every capture's guest RAM holds (READMEs). */
    private static final String PATTERN_SHA256 = "49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf";

    record Run(int exit, String out, String err) {
    }

    static Run analyze(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        var cl = Main.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        List<String> a = new ArrayList<>();
        a.add("analyze");
        a.addAll(List.of(args));
        int exit = cl.execute(a.toArray(String[]::new));
        return new Run(exit, out.toString(), err.toString());
    }

    static Path testdata() {
        return Path.of(System.getProperty("jmigrate.testdata"));
    }

    static String sha256(Path p) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (InputStream in = Files.newInputStream(p)) {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    static byte[] gunzip(Path p) throws IOException {
        try (InputStream in = new GZIPInputStream(Files.newInputStream(p))) {
            return in.readAllBytes();
        }
    }

    @ParameterizedTest(name = "{0}/{1}")
    @CsvSource({"qemu-7.2,multifd2-pattern-ram,pc.ram,pc.ram.ram", "qemu-10.0,multifd2-pattern-ram,pc.ram,pc.ram.ram",
            "qemu-11.1,multifd2-pattern-ram,pc.ram,pc.ram.ram", "qemu-7.2,none-multifd2,ram,ram.ram",
            "qemu-10.0,none-multifd2,ram,ram.ram", "qemu-10.0,none-multifd2-zlib,ram,ram.ram",
            "qemu-10.0,none-multifd2-zstd,ram,ram.ram"})
    void everyCaptureValidatesMatchesFactsAndRebuildsRam(String version, String capture, String block, String ramFile,
                                                          @TempDir Path x) throws Exception {
        Path dir = testdata().resolve(version).resolve(capture);
        // channels in reverse order: ids come from the init packets, not from the argument order
        Run r = analyze("-x", x.toString(), "--ram", dir.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                dir.resolve("conn-02.c2s.bin.gz").toString(), dir.resolve("conn-01.c2s.bin.gz").toString());
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.err()).isEmpty();

        // the reconstructed RAM, as extracted and as reported
        assertThat(sha256(x.resolve("ram").resolve(ramFile))).isEqualTo(PATTERN_SHA256);
        assertThat(r.out()).containsPattern("(?m)^  " + block + " +sha256 " + PATTERN_SHA256 + "$");
        assertThat(r.out()).contains("multifd: 2 channel(s), every packet valid; SYNC barrier on "
                + (version.equals("qemu-7.2") ? "each RAM EOS" : "RAM_SAVE_FLAG_MULTIFD_FLUSH"));

        JsonNode summary = JSON.readTree(x.resolve("summary.json").toFile());
        JsonNode channels = summary.path("multifd").path("channels");
        assertThat(channels).hasSize(2);
        assertThat(summary.path("multifd").path("ram_sha256").path(block).asText()).isEqualTo(PATTERN_SHA256);

        // every channel file was consumed to its last byte: the relay's count of what QEMU sent
        JsonNode manifest = JSON.readTree(dir.resolve("manifest.json").toFile());
        for (JsonNode ch : channels) {
            String file = Path.of(ch.get("file").asText()).getFileName().toString();
            int index = Integer.parseInt(file.substring(5, 7));
            assertThat(ch.get("bytes").asLong()).as(file)
                    .isEqualTo(manifest.get("connections").get(index).get("c2s_bytes").asLong());
            assertThat(ch.get("sync_packets").asLong()).as(file).isEqualTo(3);
            assertThat(ch.get("device_state_packets").asLong()).as(file).isZero();
            assertThat(r.out()).containsPattern("(?m)^ +" + ch.get("id").asInt() + "  " + file.replace(".", "\\.")
                    + " +" + ch.get("packets").asLong() + " +3 +0 +" + ch.get("normal_pages").asLong() + " +"
                    + ch.get("zero_pages").asLong() + " +" + ch.get("bytes").asLong() + "$");
        }
        // 16384 pages of 64 MiB guest RAM: each on the main channel or in a multifd packet
        long pages = 0;
        for (JsonNode ch : channels) {
            pages += ch.get("normal_pages").asLong() + ch.get("zero_pages").asLong();
        }
        pages += summary.path("ram").path(block).path("normal_pages").asLong()
                + summary.path("ram").path(block).path("zero_pages").asLong();
        assertThat(pages).isGreaterThanOrEqualTo(16384);

        Path factsFile = dir.resolve("channels.json");
        if (Files.exists(factsFile)) {
            JsonNode facts = JSON.readTree(factsFile.toFile());
            for (JsonNode want : facts.get("channels")) {
                if (want.has("main_channel")) {
                    assertThat(summary.get("ram_record_flags")).isEqualTo(want.get("ram_record_flags"));
                    continue;
                }
                JsonNode got = null;
                for (JsonNode ch : channels) {
                    if (ch.get("id").asInt() == want.get("id").asInt()) {
                        got = ch;
                    }
                }
                assertThat(got).as("channel id " + want.get("id")).isNotNull();
                assertThat(Path.of(got.get("file").asText()).getFileName().toString()).isEqualTo(want.get("file").asText());
                for (String k : List.of("packets", "sync_packets", "device_state_packets", "normal_pages", "zero_pages")) {
                    assertThat(got.get(k).asLong()).as(want.get("file").asText() + " " + k).isEqualTo(want.get(k).asLong());
                }
            }
            // the main channel's device state still decodes as QEMU's analyze-migration.py printed it
            assertThat(Files.readString(x.resolve("state.json"))).isEqualTo(
                    new String(gunzip(dir.resolve("conn-00.analyze-state.json.gz")), StandardCharsets.UTF_8));
        }
    }

    @Test
    void mainChannelMayBeAnyOfTheFilesAndStateStillPrints() {
        Path dir = testdata().resolve("qemu-10.0/none-multifd2");
        Run r = analyze(dir.resolve("conn-02.c2s.bin.gz").toString(), "--multifd",
                dir.resolve("conn-00.c2s.bin.gz").toString(), dir.resolve("conn-01.c2s.bin.gz").toString());
        assertThat(r.exit()).as(r.err()).isZero();
        // the usual output first (device state JSON of the main channel), then the channel report
        assertThat(r.out()).startsWith("{\n    \"ram (").contains("\"globalstate (").contains("multifd: 2 channel(s)");
        assertThat(r.out().indexOf("multifd: 2")).isGreaterThan(r.out().lastIndexOf("}"));
        assertThat(r.err()).contains("note: MIG_CMD_SWITCHOVER_START");
    }

    @ParameterizedTest
    @CsvSource({"header,truncated RAM packet of 1344 bytes", "payload,truncated RAM payload"})
    void channelCutMidPacketNamesTheChannelAndOffset(String where, String message, @TempDir Path tmp) throws Exception {
        Path dir = testdata().resolve("qemu-10.0/multifd2-pattern-ram");
        java.nio.ByteBuffer ch = java.nio.ByteBuffer.wrap(gunzip(dir.resolve("conn-01.c2s.bin.gz")));
        // walk the 1344-byte packets (+ normal_pages x 4096 bytes) after the 64-byte init to the first with data
        int pos = 64;
        while (ch.getInt(pos + 16) == 0) {
            pos += 1344;
        }
        int cutAt = where.equals("header") ? pos + 100 : pos + 1344 + 4096 + 100;
        Path cut = tmp.resolve("conn-01.cut.bin");
        try (OutputStream o = Files.newOutputStream(cut)) {
            o.write(ch.array(), 0, cutAt);
        }
        Run r = analyze(dir.resolve("conn-00.c2s.bin.gz").toString(), "--multifd", cut.toString(),
                dir.resolve("conn-02.c2s.bin.gz").toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).startsWith("jmigrate analyze: multifd channel 0 (conn-01.cut.bin) at byte offset ")
                .contains(message, "channel ended after");
        assertThat(r.out()).isEmpty();
    }

    @Test
    void channelCutBetweenPacketsNamesTheChannelMissingItsSync(@TempDir Path tmp) throws Exception {
        Path dir = testdata().resolve("qemu-10.0/multifd2-pattern-ram");
        Path cut = tmp.resolve("conn-02.c2s.bin.gz");
        // the init packet only: the channel ends cleanly before any SYNC
        Files.write(cut, java.util.Arrays.copyOf(gunzip(dir.resolve("conn-02.c2s.bin.gz")), 64));
        Run r = analyze(dir.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                dir.resolve("conn-01.c2s.bin.gz").toString(), cut.toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("multifd channel(s) 1 (conn-02.c2s.bin.gz) ended before reaching the SYNC");
    }

    @Test
    void filesWithoutAMainChannelOrWithTwoAreRejected() {
        Path dir = testdata().resolve("qemu-7.2/none-multifd2");
        Run none = analyze(dir.resolve("conn-01.c2s.bin.gz").toString(), "--multifd",
                dir.resolve("conn-02.c2s.bin.gz").toString());
        assertThat(none.exit()).isEqualTo(1);
        assertThat(none.err()).contains("no main channel among", "\"QEVM\"");
        Run two = analyze(dir.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                testdata().resolve("qemu-7.2/none-stream.bin.gz").toString(), dir.resolve("conn-01.c2s.bin.gz").toString());
        assertThat(two.exit()).isEqualTo(1);
        assertThat(two.err()).contains("two main channels", "none-stream.bin.gz");
    }

    @Test
    void aMissingChannelFileIsNamed() {
        Path dir = testdata().resolve("qemu-10.0/multifd2-pattern-ram");
        // only channel id 1 given: out of range for a one-channel decode, named by its file
        Run r = analyze(dir.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                dir.resolve("conn-02.c2s.bin.gz").toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("conn-02.c2s.bin.gz", "channel id 1 is out of range");
    }

    // ---- compressed captures (multifd-compression zlib / zstd, QEMU 10.0) -----------------------

    static Path compressed(String method) {
        return testdata().resolve("qemu-10.0/none-multifd2-" + method);
    }

    static String[] captureArgs(Path dir, String... extra) {
        List<String> a = new ArrayList<>(List.of(extra));
        a.addAll(List.of(dir.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                dir.resolve("conn-01.c2s.bin.gz").toString(), dir.resolve("conn-02.c2s.bin.gz").toString()));
        return a.toArray(String[]::new);
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"qemu-10.0,zlib,0x02", "qemu-10.0,zstd,0x04", "qemu-7.2,zlib,0x02", "qemu-7.2,zstd,0x04"})
    void compressedCaptureRebuildsTheGuestImageByteForByte(String version, String method, String flag, @TempDir Path x)
            throws Exception {
        Path dir = testdata().resolve(version).resolve("none-multifd2-" + method);
        Run r = analyze(captureArgs(dir, "-x", x.toString(), "--ram"));
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(sha256(x.resolve("ram/ram.ram"))).isEqualTo(PATTERN_SHA256);
        assertThat(r.out()).contains("multifd-compression: " + method + " (from the packet flags)")
                .containsPattern("(?m)^  ram +sha256 " + PATTERN_SHA256 + "$");
        JsonNode m = JSON.readTree(x.resolve("summary.json").toFile()).path("multifd");
        assertThat(m.path("compression").asText()).isEqualTo(method);
        assertThat(m.path("sync").asText()).isEqualTo(version.equals("qemu-7.2") ? "legacy: each RAM EOS" : "MULTIFD_FLUSH");
        // every channel file was consumed to its last byte: the relay's count of what QEMU sent
        JsonNode manifest = JSON.readTree(dir.resolve("manifest.json").toFile());
        for (JsonNode ch : m.path("channels")) {
            int index = Integer.parseInt(Path.of(ch.get("file").asText()).getFileName().toString().substring(5, 7));
            assertThat(ch.get("bytes").asLong()).isEqualTo(manifest.get("connections").get(index).get("c2s_bytes").asLong());
        }
        assertThat(m.path("compression_detected_at").asText())
                .matches("multifd channel \\d \\(conn-0[12]\\.c2s\\.bin\\.gz \\(gunzipped\\)\\) at byte offset \\d+: "
                        + "RAM packet flags 0x000000" + flag.substring(2) + " \\(" + method + "\\)");
        // the same capture with the method named gives the same RAM
        Run named = analyze(captureArgs(dir, "--ram", "--multifd-compression", method));
        assertThat(named.exit()).as(named.err()).isZero();
        assertThat(named.out()).containsPattern("(?m)^  ram +sha256 " + PATTERN_SHA256 + "$");
    }

    @ParameterizedTest
    @CsvSource({"zlib,zstd", "zstd,zlib", "zlib,none", "none,zstd"})
    void aNamedMethodThatThePacketsContradictIsAClearError(String captured, String named) {
        Path dir = captured.equals("none") ? testdata().resolve("qemu-10.0/none-multifd2") : compressed(captured);
        Run r = analyze(captureArgs(dir, "--multifd-compression", named));
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).startsWith("jmigrate analyze: multifd-compression " + named + " was asked for, but the "
                        + "packets say " + captured + ": multifd channel ")
                .containsPattern("\\(conn-0[12]\\.c2s\\.bin\\.gz \\(gunzipped\\)\\) at byte offset \\d+: RAM packet flags");
        assertThat(r.out()).isEmpty();
    }

    @Test
    void channelFilesOfDifferentMethodsAreRejectedNamingBoth() {
        // zlib channel file and zstd channel file of two captures (both UUIDs are zero, ids 0 and 1)
        Path zlib = channelWithId(compressed("zlib"), 0);
        Path zstd = channelWithId(compressed("zstd"), 1);
        Run r = analyze(compressed("zlib").resolve("conn-00.c2s.bin.gz").toString(), "--multifd", zlib.toString(),
                zstd.toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("multifd channel files disagree on multifd-compression (zlib and zstd)",
                "multifd channel 0 (" + zlib.getFileName(), "multifd channel 1 (" + zstd.getFileName(),
                "(zlib)", "(zstd)");
    }

    static Path channelWithId(Path dir, int id) {
        for (String f : List.of("conn-01.c2s.bin.gz", "conn-02.c2s.bin.gz")) {
            try {
                if (gunzip(dir.resolve(f))[24] == id) {
                    return dir.resolve(f);
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
        throw new AssertionError("no channel id " + id + " in " + dir);
    }

    /** Byte offsets of each RAM packet's payload in a channel (after the init, 1344-byte packets). */
    static List<int[]> payloads(byte[] ch) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(ch);
        List<int[]> out = new ArrayList<>();
        int pos = 64;
        while (pos < ch.length) {
            int normal = b.getInt(pos + 16);
            int next = b.getInt(pos + 20);
            pos += 1344;
            if (normal > 0) {
                out.add(new int[] {pos, next});
                pos += next;
            }
        }
        return out;
    }

    @ParameterizedTest(name = "{0}, payload {1}")
    @CsvSource({"zlib,first,corrupt zlib payload: incorrect header check",
            "zlib,second,corrupt zlib payload: invalid block type",
            "zstd,first,corrupt zstd payload: Unknown frame descriptor",
            "zstd,second,corrupt zstd payload: Data corruption detected"})
    void aCorruptedCompressedPayloadNamesChannelFileAndOffset(String method, String which, String message,
                                                             @TempDir Path tmp) throws Exception {
        Path dir = compressed(method);
        Path good = channelWithId(dir, 1);
        byte[] ch = gunzip(good);
        List<int[]> p = payloads(ch);
        assertThat(p).hasSizeGreaterThan(2);
        int[] hit = which.equals("first") ? p.get(0) : p.get(1);
        // first payload: its stream header (zlib 78 01 / zstd frame magic) becomes ff bytes; second:
        // its first block header becomes ff bytes (deflate BTYPE 11 and zstd block type 3 are reserved)
        java.util.Arrays.fill(ch, hit[0], hit[0] + 4, (byte) 0xff);
        Path bad = tmp.resolve("conn-bad.bin");
        Files.write(bad, ch);
        Run r = analyze(dir.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                channelWithId(dir, 0).toString(), bad.toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).startsWith("jmigrate analyze: multifd channel 1 (conn-bad.bin) at byte offset " + hit[0]
                + ": " + message);
        assertThat(r.out()).isEmpty();
    }
}
