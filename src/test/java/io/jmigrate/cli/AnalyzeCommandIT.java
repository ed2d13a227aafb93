package io.jmigrate.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPInputStream;

import static org.assertj.core.api.Assertions.assertThat;

/** {@code bin/jmigrate analyze} as a real process, as the README shows it. */
class AnalyzeCommandIT {

    record Run(int exit, String out, String err) {
    }

    static Path testdata() {
        return Path.of(System.getProperty("jmigrate.testdata"));
    }

    static Run run(String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add("bin/jmigrate");
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(Path.of("").toAbsolutePath().toFile());
        Path out = Files.createTempFile("analyze", ".out");
        Path err = Files.createTempFile("analyze", ".err");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile());
        Process p = pb.start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("bin/jmigrate " + String.join(" ", args) + " did not finish within 120 s");
        }
        Run r = new Run(p.exitValue(), Files.readString(out), Files.readString(err));
        Files.delete(out);
        Files.delete(err);
        return r;
    }

    static String gunzip(Path p) throws IOException {
        try (InputStream in = new GZIPInputStream(Files.newInputStream(p))) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    static String sha256(Path p) throws Exception {
        java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-256");
        try (InputStream in = Files.newInputStream(p)) {
            md.update(in.readAllBytes());
        }
        return java.util.HexFormat.of().formatHex(md.digest());
    }

    @Test
    void readmeMainExamplePrintsQemusStateDump() throws Exception {
        Path stream = testdata().resolve("qemu-10.0/none-stream.bin.gz");
        Run r = run("analyze", stream.toString());
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).isEqualTo(gunzip(testdata().resolve("qemu-10.0/none-stream.analyze-state.json.gz")));
        assertThat(r.err()).contains("note: MIG_CMD_SWITCHOVER_START at byte offset 4602905");
    }

    @Test
    void extractRamAndSummary(@TempDir Path dir) throws Exception {
        Path stream = testdata().resolve("qemu-7.2/none-stream.bin.gz");
        Run r = run("analyze", "-x", dir.toString(), "--ram", stream.toString());
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("ram", "16384", "1088");
        Path ram = dir.resolve("ram/ram.ram");
        assertThat(Files.size(ram)).isEqualTo(64L << 20);
        assertThat(sha256(ram))
                .isEqualTo("49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf");
        assertThat(dir.resolve("state.json")).exists();
        assertThat(dir.resolve("desc.json")).exists();
        assertThat(dir.resolve("devices/timer_0.json")).exists();
        assertThat(Files.readString(dir.resolve("summary.json"))).contains("\"machine\": \"none\"", "ram/ram.ram");
    }

    @Test
    void badInputExitsOneWithOffset(@TempDir Path dir) throws Exception {
        Path notAStream = dir.resolve("junk.bin");
        Files.write(notAStream, new byte[] {'J', 'U', 'N', 'K', 0, 0, 0, 3, 0});
        Run r = run("analyze", notAStream.toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("junk.bin at byte offset 0: wrong file magic");
    }

    @Test
    void readmeMultifdExampleReportsChannelsAndRebuiltRam() throws Exception {
        // exactly the README's command line, run from the repository root
        String d = "src/test/resources/qemu-testdata/qemu-10.0/none-multifd2/";
        Run r = run("analyze", d + "conn-00.c2s.bin.gz", "--multifd", d + "conn-01.c2s.bin.gz", d + "conn-02.c2s.bin.gz",
                "--ram");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("multifd: 2 channel(s), every packet valid; SYNC barrier on RAM_SAVE_FLAG_MULTIFD_FLUSH")
                .containsPattern("(?m)^ +0  conn-01\\.c2s\\.bin\\.gz +56 +3 +0 +576 +6208 +2434624$")
                .containsPattern("(?m)^ +1  conn-02\\.c2s\\.bin\\.gz +78 +3 +0 +512 +9088 +2202048$")
                .contains("  ram                          sha256 "
                        + "49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf");
    }

    @Test
    void readmeCompressedMultifdExampleRebuildsTheGuestImage() throws Exception {
        // exactly the README's command line (zstd), run from the repository root
        String d = "src/test/resources/qemu-testdata/qemu-10.0/none-multifd2-zstd/";
        Run r = run("analyze", d + "conn-00.c2s.bin.gz", "--multifd", d + "conn-01.c2s.bin.gz", d + "conn-02.c2s.bin.gz",
                "--ram");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("multifd: 2 channel(s), every packet valid; SYNC barrier on RAM_SAVE_FLAG_MULTIFD_FLUSH\n"
                        + "multifd-compression: zstd (from the packet flags)\n")
                .containsPattern("(?m)^ +0  conn-01\\.c2s\\.bin\\.gz +73 +3 +0 +512 +8448 +293760$")
                .containsPattern("(?m)^ +1  conn-02\\.c2s\\.bin\\.gz +61 +3 +0 +576 +6848 +539782$")
                .contains("  ram                          sha256 "
                        + "49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf");
    }

    @Test
    void zlibCaptureExtractsTheGuestImageAndAContradictingMethodExitsOne(@TempDir Path dir) throws Exception {
        Path c = testdata().resolve("qemu-10.0/none-multifd2-zlib");
        Run r = run("analyze", "-x", dir.toString(), c.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                c.resolve("conn-02.c2s.bin.gz").toString(), c.resolve("conn-01.c2s.bin.gz").toString());
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("ram/ram.ram  (RAMBlock ram)", "multifd-compression: zlib (from the packet flags)");
        assertThat(sha256(dir.resolve("ram/ram.ram")))
                .isEqualTo("49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf");
        Run wrong = run("analyze", c.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                c.resolve("conn-01.c2s.bin.gz").toString(), c.resolve("conn-02.c2s.bin.gz").toString(),
                "--multifd-compression", "zstd");
        assertThat(wrong.exit()).isEqualTo(1);
        assertThat(wrong.err()).isEqualTo("jmigrate analyze: multifd-compression zstd was asked for, but the packets say "
                + "zlib: multifd channel 0 (conn-01.c2s.bin.gz (gunzipped)) at byte offset 1408: RAM packet flags "
                + "0x00000002 (zlib)\n");
    }

    @Test
    void multifdExtractWritesRebuiltRam(@TempDir Path dir) throws Exception {
        Path c = testdata().resolve("qemu-7.2/multifd2-pattern-ram");
        Run r = run("analyze", "-x", dir.toString(), c.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                c.resolve("conn-02.c2s.bin.gz").toString(), c.resolve("conn-01.c2s.bin.gz").toString());
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("ram/pc.ram.ram  (RAMBlock pc.ram)", "SYNC barrier on each RAM EOS");
        assertThat(sha256(dir.resolve("ram/pc.ram.ram")))
                .isEqualTo("49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf");
    }

    @Test
    void multifdChannelCutMidPacketExitsOne(@TempDir Path dir) throws Exception {
        Path c = testdata().resolve("qemu-10.0/none-multifd2");
        Path cut = dir.resolve("conn-02.bin");
        try (InputStream in = new GZIPInputStream(Files.newInputStream(c.resolve("conn-02.c2s.bin.gz")))) {
            Files.write(cut, in.readNBytes(100_000));
        }
        Run r = run("analyze", c.resolve("conn-00.c2s.bin.gz").toString(), "--multifd",
                c.resolve("conn-01.c2s.bin.gz").toString(), cut.toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).containsPattern("jmigrate analyze: multifd channel \\d \\(conn-02\\.bin\\) at byte offset \\d+: "
                + "(channel dropped in the middle of a packet: )?truncated RAM (packet|payload)");
    }
}
