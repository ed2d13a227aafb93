package io.jmigrate.qmp;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/** The QMP input framer: what it splits, where it resynchronises, and that it stays bounded. */
class JsonFramerTest {
    private final List<String> out = new ArrayList<>();

    private final JsonFramer.Handler handler = new JsonFramer.Handler() {
        @Override
        public void value(byte[] text, int length) {
            out.add(new String(text, 0, length, StandardCharsets.UTF_8));
        }

        @Override
        public void overLong() {
            out.add("<over-long>");
        }
    };

    private List<String> frame(int max, String... chunks) {
        JsonFramer f = new JsonFramer(max, handler);
        for (String c : chunks) {
            f.feed(ByteBuffer.wrap(c.getBytes(StandardCharsets.UTF_8)));
        }
        return out;
    }

    @Test
    void objectsAcrossLinesAndSeveralOnOneLine() {
        assertThat(frame(1 << 20, "{\"execute\":\n \"stop\"}{\"execute\": \"cont\"}  [1, {\"a\": [2]}]\r\n"))
                .containsExactly("{\"execute\":\n \"stop\"}", "{\"execute\": \"cont\"}", "[1, {\"a\": [2]}]");
    }

    @Test
    void bracesInsideStringsAndEscapesDoNotCount() {
        assertThat(frame(1 << 20, "{\"a\": \"}{\\\"]\"}", "\n\"top\\\"level\" 42 true\n"))
                .containsExactly("{\"a\": \"}{\\\"]\"}", "\"top\\\"level\"", "42", "true");
    }

    @Test
    void aTextSplitAcrossReadsIsReassembled() {
        assertThat(frame(1 << 20, "{\"exe", "cute\": \"st", "op\"", "}")).containsExactly("{\"execute\": \"stop\"}");
    }

    @Test
    void malformedTextsAreFramedSoTheParserCanRejectThemOneByOne() {
        assertThat(frame(1 << 20, "{not json}\n} ]\nnonsense{\"execute\":\"stop\"}\n"))
                .containsExactly("{not json}", "}", "]", "nonsense", "{\"execute\":\"stop\"}");
    }

    @Test
    void aRawNewlineInAStringEndsTheText() {
        assertThat(frame(1 << 20, "{\"execute\": \"query-status\n{\"execute\": \"stop\"}\n"))
                .containsExactly("{\"execute\": \"query-status\n", "{\"execute\": \"stop\"}");
    }

    @Test
    void anOverLongTextIsReportedOnceAndDiscardedUpToTheNextNewline() {
        String big = "{\"execute\": \"" + "x".repeat(5000) + "\"}";
        assertThat(frame(100, big.substring(0, 2000), big.substring(2000), " {\"ignored\": 1}\n{\"ok\": 1}\n"))
                .containsExactly("<over-long>", "{\"ok\": 1}");
    }

    @Test
    void aTextOfExactlyTheLimitIsAccepted() {
        String t = "[" + "1,".repeat(48) + "1]"; // 99 bytes
        assertThat(t).hasSize(99);
        assertThat(frame(99, t + "\n")).containsExactly(t);
    }

    @Test
    void aLongLineIsDiscardedWithoutBeingBuffered() {
        int max = 1 << 20;
        JsonFramer f = new JsonFramer(max, handler);
        byte[] chunk = "y".repeat(64 << 10).getBytes(StandardCharsets.UTF_8);
        f.feed(ByteBuffer.wrap("[\"".getBytes(StandardCharsets.UTF_8)));
        for (int i = 0; i < 512; i++) { // 32 MiB
            f.feed(ByteBuffer.wrap(chunk));
            assertThat(f.bufferCapacity()).isLessThanOrEqualTo(max);
        }
        assertThat(out).containsExactly("<over-long>");
        f.feed(ByteBuffer.wrap("\"]\n{\"execute\":\"stop\"}".getBytes(StandardCharsets.UTF_8)));
        assertThat(out).containsExactly("<over-long>", "{\"execute\":\"stop\"}");
        assertThat(f.midText()).isFalse();
        assertThat(f.bufferCapacity()).isLessThanOrEqualTo(64 << 10);
    }
}
