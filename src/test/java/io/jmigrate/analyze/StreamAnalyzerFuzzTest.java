package io.jmigrate.analyze;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.jmigrate.common.MigrationException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Hostile main streams: the input is a saved migration stream (header, configuration, sections,
 * RAM records, commands, vmdesc), decoded by {@link StreamAnalyzer} through the same main-stream
 * walker a destination uses. Every outcome must be a result or a {@link MigrationException}
 * naming an offset; any other exception, a hang or running out of the capped heap is a finding.
 * Seeds (QEMU 10.0 streams, trimmed): src/test/resources/io/jmigrate/analyze/StreamAnalyzerFuzzTestInputs.
 */
class StreamAnalyzerFuzzTest {
    static final Path FILE;

    static {
        try {
            FILE = Files.createTempFile("jmigrate-fuzz-", ".bin");
            FILE.toFile().deleteOnExit();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @FuzzTest(maxDuration = "10m")
    void streamsDecodeOrFailWithAnOffset(byte[] input) throws IOException {
        Files.write(FILE, input);
        try {
            StreamAnalyzer.analyze(FILE, StreamAnalyzer.Options.DEFAULT);
        } catch (MigrationException e) {
            if (e.getMessage() == null || e.getMessage().isEmpty()) {
                throw new AssertionError("an error without a message", e);
            }
        }
    }
}
