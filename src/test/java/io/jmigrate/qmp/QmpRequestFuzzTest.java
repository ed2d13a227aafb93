package io.jmigrate.qmp;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Hostile QMP input: bytes are framed by the session's {@link JsonFramer} (bounded), each text is
 * parsed as the session parses it, and an object's {@code execute} is decoded by
 * {@link QmpSchema#decode} against the command table. Every outcome must be a command, a
 * {@link QmpError} or a JSON parse error: any other exception, a hang or running out of the
 * capped heap is a finding. Seeds: src/test/resources/io/jmigrate/qmp/QmpRequestFuzzTestInputs.
 */
class QmpRequestFuzzTest {
    @FuzzTest(maxDuration = "10m")
    void framedRequestsDecodeOrFailWithAQmpError(byte[] input) {
        JsonFramer framer = new JsonFramer(8192, new JsonFramer.Handler() {
            @Override
            public void value(byte[] text, int length) {
                JsonNode req;
                try {
                    req = QmpServer.JSON.readTree(text, 0, length);
                } catch (JsonProcessingException e) {
                    return;
                } catch (IOException e) {
                    // e.g. CharConversionException for bytes Jackson takes for UTF-32: the session
                    // answers it as a JSON parse error too (reproducer: crash-utf32-char-conversion)
                    return;
                }
                if (req == null || !req.isObject() || !req.path("execute").isTextual()) {
                    return;
                }
                try {
                    QmpCommand c = QmpSchema.decode(req.get("execute").asText(), req.get("arguments"));
                    if (c == null) {
                        throw new AssertionError("decode returned null for " + req);
                    }
                } catch (QmpError e) {
                    if (e.getMessage() == null || e.getMessage().isEmpty()) {
                        throw new AssertionError("a QMP error without a description for " + req, e);
                    }
                }
            }

            @Override
            public void overLong() {
            }
        });
        framer.feed(ByteBuffer.wrap(input));
    }
}
