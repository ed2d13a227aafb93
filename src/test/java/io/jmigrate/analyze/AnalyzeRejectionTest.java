package io.jmigrate.analyze;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.StreamException;
import io.jmigrate.stream.StreamLimits;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.function.Consumer;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

/**
 * One rejection per kind of bad input, each built by mutating a real QEMU 10.0 main stream (the
 * 1143-byte main channel of the {@code none} guest's multifd migration) or from scratch. Every
 * error must name the byte offset and what was expected, come quickly (no hang) and without
 * allocating what a bogus length asks for.
 *
 * <pre>
 * offsets in the base stream:
 *    0 magic   4 version   8 0x07 configuration: 9 be32 len=4, 13 "none"
 *   17 START ram (id 1)   75 PART ram   101 COMMAND SWITCHOVER_START (102 be16 cmd, 104 be16 len)
 *  106 END ram   132 FULL timer: 133 id 0, 137 idstr len 5, 138 "timer", 143 instance, 147 version,
 *  151 fields, 175 footer 0x7e, 176 footer id   180 FULL globalstate   314 EOF   315 0x06 vmdesc,
 *  316 be32 length 823, 320 JSON
 * </pre>
 */
class AnalyzeRejectionTest {
    private static byte[] base;

    @TempDir
    Path tmp;

    @BeforeAll
    static void load() throws IOException {
        Path f = AnalyzeConformanceTest.testdata().resolve("qemu-10.0/none-multifd2/conn-00.c2s.bin.gz");
        try (InputStream in = new GZIPInputStream(Files.newInputStream(f))) {
            base = in.readAllBytes();
        }
        assertThat(base).hasSize(1143);
        assertThat(new String(base, 138, 5, StandardCharsets.US_ASCII)).isEqualTo("timer");
        assertThat(base[315]).isEqualTo((byte) 0x06);
    }

    private Path write(byte[] bytes) throws IOException {
        Path p = tmp.resolve("bad.bin");
        Files.write(p, bytes);
        return p;
    }

    private byte[] mutated(Consumer<byte[]> change) {
        byte[] b = base.clone();
        change.accept(b);
        return b;
    }

    private static void be32(byte[] b, int at, int v) {
        b[at] = (byte) (v >>> 24);
        b[at + 1] = (byte) (v >>> 16);
        b[at + 2] = (byte) (v >>> 8);
        b[at + 3] = (byte) v;
    }

    private MigrationException reject(byte[] bytes) throws IOException {
        return reject(bytes, StreamAnalyzer.Options.DEFAULT);
    }

    private MigrationException reject(byte[] bytes, StreamAnalyzer.Options options) throws IOException {
        Path p = write(bytes);
        return assertTimeoutPreemptively(Duration.ofSeconds(20),
                () -> assertThrows(MigrationException.class, () -> StreamAnalyzer.analyze(p, options)));
    }

    @Test
    void baseStreamIsAccepted() throws IOException {
        AnalysisResult r = StreamAnalyzer.analyze(write(base));
        assertThat(r.machine()).isEqualTo("none");
        assertThat(r.state().has("timer (0)")).isTrue();
    }

    @Test
    void truncatedFile() throws IOException {
        MigrationException e = reject(Arrays.copyOf(base, 50));
        assertThat(e).isInstanceOf(StreamException.class);
        assertThat(((StreamException) e).offset()).isEqualTo(46);
        assertThat(e.getMessage()).contains("bad.bin at byte offset 46", "truncated stream",
                "expected 8 byte(s) of RAMBlock used_length of 'ram' but only 4 remain");
    }

    @Test
    void truncatedFileAfterRamLosesTheVmdesc() throws IOException {
        MigrationException e = reject(Arrays.copyOf(base, 200));
        assertThat(e.getMessage()).contains("at byte offset 132", "FULL section 0 'timer'", "no vmdesc trailer",
                "truncated");
    }

    @Test
    void truncatedGzipFile() throws IOException {
        Path p = tmp.resolve("cut.bin.gz");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(p))) {
            out.write(base, 0, 60);
        }
        MigrationException e = assertThrows(MigrationException.class, () -> StreamAnalyzer.analyze(p));
        assertThat(e.getMessage()).contains("cut.bin.gz (gunzipped) at byte offset 54",
                "truncated stream: expected 8 byte(s) of RAM record header but only 6 remain");
    }

    @Test
    void emptyFile() throws IOException {
        MigrationException e = reject(new byte[0]);
        assertThat(e.getMessage()).contains("is empty", "QEVM");
    }

    @Test
    void wrongMagic() throws IOException {
        MigrationException e = reject(mutated(b -> b[0] = 'X'));
        assertThat(e.getMessage()).contains("at byte offset 0", "wrong file magic 0x5845564d", "expected 0x5145564d");
    }

    @Test
    void unsupportedVersion() throws IOException {
        MigrationException e = reject(mutated(b -> be32(b, 4, 4)));
        assertThat(e.getMessage()).contains("at byte offset 4", "unsupported stream version 4, expected 3");
        e = reject(mutated(b -> be32(b, 4, 2)));
        assertThat(e.getMessage()).contains("at byte offset 4", "version 2 is obsolete");
    }

    @Test
    void unknownSectionType() throws IOException {
        MigrationException e = reject(mutated(b -> b[132] = 0x09));
        assertThat(e.getMessage()).contains("at byte offset 132", "unknown section type 0x09",
                "expected one of EOF 0x00, START 0x01");
    }

    @Test
    void footerIdMismatch() throws IOException {
        MigrationException e = reject(mutated(b -> be32(b, 176, 7)));
        assertThat(e.getMessage()).contains("at byte offset 175", "section footer id mismatch", "'timer'",
                "expected 0, got 7");
    }

    @Test
    void missingFooter() throws IOException {
        MigrationException e = reject(mutated(b -> b[175] = 0x00));
        assertThat(e.getMessage()).contains("at byte offset 175", "missing section footer", "expected byte 0x7e, got 0x00");
    }

    @Test
    void overLongIdstrRunsIntoBinaryFields() throws IOException {
        // Length byte 9 instead of 5: the name swallows the be32 instance_id's zero bytes.
        MigrationException e = reject(mutated(b -> b[137] = 9));
        assertThat(e.getMessage()).contains("at byte offset 137", "over-long or corrupt idstr", "length byte says 9",
                "byte 5 of the name is 0x00", "not printable");
    }

    @Test
    void idstrLengthPastTheEnd() throws IOException {
        byte[] b = Arrays.copyOf(base, 141);
        b[137] = (byte) 200;
        MigrationException e = reject(b);
        assertThat(e.getMessage()).contains("at byte offset 138", "expected 200 byte(s) of idstr",
                "stream ended after 3");
    }

    @Test
    void lengthBeyondConfiguredMaximum() throws IOException {
        MigrationException e = reject(mutated(b -> be32(b, 9, 0x7fff_ffff)));
        assertThat(e).isInstanceOf(StreamException.class);
        assertThat(((StreamException) e).category()).isEqualTo(Category.LIMIT);
        assertThat(e.getMessage()).contains("at byte offset 9", "length 2147483647 of configuration machine name",
                "exceeds the configured maximum of 256 bytes");

        // A configured buffer limit (6) below the 8-byte 'unused' field of timer.
        StreamAnalyzer.Options small = StreamAnalyzer.Options.DEFAULT.withLimits(
                new StreamLimits(6, StreamAnalyzer.DEFAULT_MAX_VMDESC, 64));
        e = reject(base, small);
        assertThat(e.getMessage()).contains("at byte offset 159", "length 8 of FULL section 0 'timer'",
                "field unused", "exceeds the maximum of 6 bytes");
    }

    @Test
    void lengthPastTheEndOfTheFile() throws IOException {
        byte[] b = Arrays.copyOf(base, 17);
        be32(b, 9, 200);
        MigrationException e = reject(b);
        assertThat(e.getMessage()).contains("at byte offset 9", "length 200 of configuration machine name",
                "runs past the end of the stream: only 4 byte(s) remain");
    }

    @Test
    void unknownCommandNumber() throws IOException {
        MigrationException e = reject(mutated(b -> b[103] = 99));
        assertThat(e.getMessage()).contains("at byte offset 102", "unknown QEMU_VM_COMMAND 99", "expected 1..11");
        e = reject(mutated(b -> b[105] = 1));
        assertThat(e.getMessage()).contains("at byte offset 104", "MIG_CMD_SWITCHOVER_START has length 1, expected 0");
    }

    @Test
    void malformedVmdescJson() throws IOException {
        MigrationException e = reject(mutated(b -> b[336] = (byte) 0x23));
        assertThat(e.getMessage()).contains("malformed vmdesc JSON trailer starting at byte offset 320",
                "at character 16", "'#'");
    }

    @Test
    void vmdescJsonWithoutPageSize() throws IOException {
        String json = new String(base, 320, base.length - 320, StandardCharsets.UTF_8);
        String bad = json.replace("\"page_size\"", "\"page_sizX\"");
        assertThat(bad).isNotEqualTo(json);
        byte[] b = base.clone();
        System.arraycopy(bad.getBytes(StandardCharsets.UTF_8), 0, b, 320, bad.length());
        MigrationException e = reject(b);
        assertThat(e.getMessage()).contains("invalid vmdesc JSON trailer (at byte offset 320)", "page_size",
                "expected a power of two");
    }

    @Test
    void partSectionWithoutStart() throws IOException {
        MigrationException e = reject(mutated(b -> be32(b, 76, 42)));
        assertThat(e.getMessage()).contains("at byte offset 75", "PART section with id 42 has no START section");
    }

    @Test
    void bytesAfterTheVmdescAreNotAStream() throws IOException {
        byte[] b = Arrays.copyOf(base, base.length + 3);
        MigrationException e = reject(b);
        // The trailer no longer ends the file, so it is not found and timer cannot be decoded.
        assertThat(e.getMessage()).contains("at byte offset 132", "no vmdesc trailer");
    }
}
