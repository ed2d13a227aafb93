package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jmigrate.qmp.QmpServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 8 point 3, two processes: a QMP client attached to the source that negotiates and then
 * never reads, while far more events than its socket can hold are emitted, stalls neither the
 * commands of other clients nor a live migration; its session survives and later gets the newest
 * events.
 */
@Timeout(300)
class QmpBackpressureIT {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    /** A raw QMP connection that negotiates, then reads only when the test says so. */
    private static final class MuteClient implements AutoCloseable {
        final SocketChannel ch;
        private final ByteBuffer buf = ByteBuffer.allocate(1 << 16);
        private final StringBuilder pending = new StringBuilder();

        MuteClient(Path qmp) throws IOException {
            ch = SocketChannel.open(UnixDomainSocketAddress.of(qmp));
            assertThat(readLine()).contains("\"QMP\"");
            write("{\"execute\": \"qmp_capabilities\"}\n");
            assertThat(readLine()).isEqualTo("{\"return\":{}}");
        }

        void write(String s) throws IOException {
            ByteBuffer b = ByteBuffer.wrap(s.getBytes(StandardCharsets.UTF_8));
            while (b.hasRemaining()) {
                ch.write(b);
            }
        }

        String readLine() throws IOException {
            while (true) {
                int nl = pending.indexOf("\n");
                if (nl >= 0) {
                    String line = pending.substring(0, nl).stripTrailing();
                    pending.delete(0, nl + 1);
                    return line;
                }
                buf.clear();
                if (ch.read(buf) < 0) {
                    return null;
                }
                pending.append(StandardCharsets.UTF_8.decode(buf.flip()));
            }
        }

        @Override
        public void close() throws IOException {
            ch.close();
        }
    }

    @Test
    void aClientThatNeverReadsDoesNotStallAMigration() throws Exception {
        String wl = "dirty-rate=20,pattern=increment";
        try (VmProcess src = VmProcess.start(dir, "src", "-m", "64M", "--workload", wl);
             VmProcess dst = VmProcess.start(dir, "dst", "-m", "64M", "--workload", wl, "--incoming", "defer");
             MuteClient mute = new MuteClient(src.qmpPath)) {
            // Fill the mute client's socket (both buffers, four times over) and its event queue:
            // each stop/cont emits STOP and RESUME, about 85 bytes each. Every command here must
            // still be answered: the VM thread that emits never waits for the mute client.
            long socketBytes = mute.ch.getOption(StandardSocketOptions.SO_SNDBUF)
                    + (long) mute.ch.getOption(StandardSocketOptions.SO_RCVBUF);
            long cycles = 4 * socketBytes / 170 + QmpServer.EVENT_QUEUE_CAPACITY;
            for (long i = 0; i < cycles; i++) {
                src.exec("stop");
                src.exec("cont");
            }
            // the flood did overflow the mute session's queue (so the socket was full)
            src.awaitLog("QMP session \\d+ (is not reading its events)", Duration.ofSeconds(30));

            String sock = "unix:" + dir.resolve("mig.sock");
            dst.exec("migrate-incoming", Map.of("uri", sock));
            src.exec("migrate", Map.of("uri", sock));
            JsonNode info = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(120));
            assertThat(info.path("status").asText()).as(info.toString()).isEqualTo("completed");
            JsonNode dinfo = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
            assertThat(dinfo.path("status").asText()).as(dinfo.toString()).isEqualTo("completed");
            String out = src.exec("x-jmigrate-query-digest").path("outgoing").asText();
            assertThat(dst.exec("x-jmigrate-query-digest").path("incoming").asText()).hasSize(64).isEqualTo(out);
            assertThat(dst.exec("x-jmigrate-query-workload").path("ok").asBoolean()).isTrue();

            // the mute client's session is alive: it gets the newest events, which include the
            // migration's end, and then the answer to its command
            mute.write("{\"execute\": \"query-status\", \"id\": \"late\"}\n");
            List<String> statuses = new ArrayList<>();
            String line;
            while ((line = mute.readLine()) != null && !line.contains("\"return\"")) {
                JsonNode ev = JSON.readTree(line);
                assertThat(ev.has("event")).as(line).isTrue();
                if (ev.path("event").asText().equals("MIGRATION")) {
                    statuses.add(ev.path("data").path("status").asText());
                }
            }
            assertThat(line).as("the mute session ended instead of answering").isNotNull();
            JsonNode reply = JSON.readTree(line);
            assertThat(reply.path("id").asText()).isEqualTo("late");
            assertThat(reply.path("return").path("status").asText()).isEqualTo("postmigrate");
            assertThat(statuses).contains("completed");
        }
    }
}
