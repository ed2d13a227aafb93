package io.jmigrate.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The client against scripted servers: every wait ends, and a late reply never answers the next command. */
@Timeout(60)
class QmpClientTest {
    @TempDir
    Path dir;

    private static final String GREETING = "{\"QMP\":{\"version\":{},\"capabilities\":[]}}\r\n";

    private ServerSocketChannel listen(String name) throws Exception {
        ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        s.bind(UnixDomainSocketAddress.of(dir.resolve(name)));
        return s;
    }

    @Test
    void aServerThatAcceptsButNeverGreetsFailsTheConnectInsteadOfHanging() throws Exception {
        try (ServerSocketChannel s = listen("mute.sock")) {
            CompletableFuture<SocketChannel> accepted = CompletableFuture.supplyAsync(() -> {
                try {
                    return s.accept();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            long t0 = System.nanoTime();
            assertThatThrownBy(() -> QmpClient.connect("unix:" + dir.resolve("mute.sock"), Duration.ofMillis(300)))
                    .isInstanceOf(MigrationException.class).hasMessageContaining("no QMP greeting within");
            assertThat(System.nanoTime() - t0).isLessThan(TimeUnit.SECONDS.toNanos(20));
            // the failed attempt closed its socket: the server sees end of stream
            try (SocketChannel c = accepted.get(20, TimeUnit.SECONDS)) {
                assertThat(c.read(java.nio.ByteBuffer.allocate(1))).isEqualTo(-1);
            }
        }
    }

    @Test
    void aLateReplyIsDroppedAndTheNextCommandGetsItsOwn() throws Exception {
        try (ServerSocketChannel s = listen("slow.sock")) {
            CompletableFuture<Void> server = CompletableFuture.runAsync(() -> {
                try (SocketChannel c = s.accept()) {
                    OutputStream out = Channels.newOutputStream(c);
                    BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c),
                            StandardCharsets.UTF_8));
                    out.write(GREETING.getBytes(StandardCharsets.UTF_8));
                    in.readLine(); // qmp_capabilities, id 1
                    out.write("{\"return\":{},\"id\":1}\r\n".getBytes(StandardCharsets.UTF_8));
                    in.readLine(); // id 2: answered only after the client gave up on it
                    String third = in.readLine(); // id 3
                    assertThat(third).contains("\"id\":3");
                    out.write("{\"return\":{\"late\":2},\"id\":2}\r\n".getBytes(StandardCharsets.UTF_8));
                    out.write("{\"return\":{\"answer\":3},\"id\":3}\r\n".getBytes(StandardCharsets.UTF_8));
                    in.readLine(); // until the client closes
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            try (QmpClient c = QmpClient.connect("unix:" + dir.resolve("slow.sock"))) {
                c.setTimeout(Duration.ofMillis(300));
                assertThatThrownBy(() -> c.execute("query-status", null)).isInstanceOf(MigrationException.class)
                        .hasMessageContaining("no QMP reply");
                c.setTimeout(Duration.ofSeconds(20));
                JsonNode r = c.execute("query-migrate", null);
                assertThat(r.path("answer").asInt()).as(r.toString()).isEqualTo(3);
            }
            server.get(20, TimeUnit.SECONDS);
        }
    }

    @Test
    void aClosedConnectionFailsEveryLaterCallAtOnceAndSaysSo() throws Exception {
        try (ServerSocketChannel s = listen("gone.sock")) {
            CompletableFuture<Void> server = CompletableFuture.runAsync(() -> {
                try (SocketChannel c = s.accept()) {
                    OutputStream out = Channels.newOutputStream(c);
                    BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(c),
                            StandardCharsets.UTF_8));
                    out.write(GREETING.getBytes(StandardCharsets.UTF_8));
                    in.readLine();
                    out.write("{\"return\":{},\"id\":1}\r\n".getBytes(StandardCharsets.UTF_8));
                    in.readLine(); // then hang up without answering
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            try (QmpClient c = QmpClient.connect("unix:" + dir.resolve("gone.sock"))) {
                assertThatThrownBy(() -> c.execute("query-status", null)).isInstanceOf(MigrationException.class)
                        .hasMessageContaining("closed during 'query-status'");
                server.get(20, TimeUnit.SECONDS);
                long t0 = System.nanoTime();
                assertThatThrownBy(() -> c.execute("query-status", null)).isInstanceOf(MigrationException.class)
                        .hasMessageContaining("QMP connection to unix:");
                assertThat(System.nanoTime() - t0).as("no wait for a reply that cannot come")
                        .isLessThan(TimeUnit.SECONDS.toNanos(10));
            }
        }
    }
}
