package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * QEMU's own {@code scripts/analyze-migration.py} (from Debian's qemu source package, fetched at
 * test time by {@code scripts/fetch-qemu-analyzer.sh}, never committed) parses the {@code file:}
 * streams jmigrate writes, for every machine type, and extracts the guest RAM byte for byte.
 */
@Tag("interop")
@Timeout(300)
class QemuAnalyzerIT {
    private static final ObjectMapper JSON = new ObjectMapper();
    static Path analyzer;

    @TempDir
    Path dir;

    @BeforeAll
    static void fetchAnalyzer() throws Exception {
        Path out = Path.of("target", "qemu-analyzer");
        Process p = new ProcessBuilder("bash", "scripts/fetch-qemu-analyzer.sh", out.toString())
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String path = new String(p.getInputStream().readAllBytes()).trim();
        assertThat(p.waitFor(240, TimeUnit.SECONDS)).as("fetch-qemu-analyzer.sh finished").isTrue();
        assertThat(p.exitValue()).as("fetch-qemu-analyzer.sh exit status").isZero();
        analyzer = Path.of(path);
        assertThat(analyzer).exists();
    }

    static String python(Path cwd, String... args) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of("python3", analyzer.toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(cwd.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as("analyze-migration.py %s:\n%s", String.join(" ", args), out).isZero();
        return out;
    }

    @ParameterizedTest
    @ValueSource(strings = {"none", "jm-10.1", "jm-9.2"})
    void qemuAnalyzerParsesJmigrateFileStreams(String machine) throws Exception {
        Path ram = dir.resolve("guest.ram");
        try (FileChannel ch = FileChannel.open(ram, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(1), (32L << 20) - 1); // the file is the guest's 32 MiB
            byte[] page = new byte[4096];
            Random rnd = new Random(machine.hashCode());
            for (long off = 0; off < 32L << 20; off += 8192) { // every other page non-zero
                rnd.nextBytes(page);
                ch.write(ByteBuffer.wrap(page), off);
            }
        }
        Path stream = dir.resolve(machine + ".mig");
        try (VmProcess vm = VmProcess.start(dir, "src", "--machine", machine, "-m", "32M", "-S",
                "--memory-backend", "file=" + ram + ",share=on")) {
            vm.exec("migrate", Map.of("uri", "file:" + stream));
            JsonNode info = vm.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
            assertThat(info.path("status").asText()).isEqualTo("completed");
        }

        JsonNode state = JSON.readTree(python(dir, "-f", stream.toString(), "-d", "state"));
        String block = machine.equals("none") ? "ram" : "jm.ram";
        assertThat(state.fieldNames()).toIterable().anyMatch(k -> k.startsWith("ram ("))
                .anyMatch(k -> k.startsWith("timer (")).anyMatch(k -> k.startsWith("globalstate ("));
        JsonNode ramSection = state.properties().stream().filter(e -> e.getKey().startsWith("ram ("))
                .findFirst().orElseThrow().getValue();
        assertThat(ramSection.path("section sizes").path(block).asText()).isEqualTo("0x0000000002000000");
        JsonNode gs = state.properties().stream().filter(e -> e.getKey().startsWith("globalstate ("))
                .findFirst().orElseThrow().getValue();
        assertThat(gs.path("runstate").asText()).startsWith("70 72 65 6c 61 75 6e 63 68 00"); // "prelaunch"

        JsonNode desc = JSON.readTree(python(dir, "-f", stream.toString(), "-d", "desc"));
        assertThat(desc.path("page_size").asInt()).isEqualTo(4096);

        Path x = Files.createDirectory(dir.resolve("x-" + machine));
        python(x, "-f", stream.toString(), "-x");
        assertThat(Files.mismatch(x.resolve(block), ram)).as("RAM extracted by QEMU's analyzer").isEqualTo(-1L);
    }
}
