package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class MigrationUriTest {
    @TempDir
    Path tmp;

    @Test
    void parsesEachTransport() {
        assertThat(MigrationUri.parse("tcp:127.0.0.1:4444")).isEqualTo(new MigrationUri.Tcp("127.0.0.1", 4444));
        assertThat(MigrationUri.parse("tcp:[::1]:5")).isEqualTo(new MigrationUri.Tcp("::1", 5));
        assertThat(MigrationUri.parse("tcp:[::1]:5").text()).isEqualTo("tcp:[::1]:5");
        assertThat(MigrationUri.parse("unix:/tmp/x.sock")).isEqualTo(new MigrationUri.Unix(Path.of("/tmp/x.sock")));
        assertThat(MigrationUri.parse("file:/tmp/m.bin")).isEqualTo(new MigrationUri.File(Path.of("/tmp/m.bin")));
    }

    @Test
    void rejectsBadUrisWithReasons() {
        assertThatThrownBy(() -> MigrationUri.parse("tcp:host")).isInstanceOf(MigrationException.class)
                .hasMessageContaining("invalid migration URI 'tcp:host': tcp needs HOST:PORT");
        assertThatThrownBy(() -> MigrationUri.parse("tcp:h:99999")).hasMessageContaining("outside 0..65535");
        assertThatThrownBy(() -> MigrationUri.parse("tcp:h:x")).hasMessageContaining("port 'x' is not a number");
        assertThatThrownBy(() -> MigrationUri.parse("tcp:::1:5")).hasMessageContaining("[ADDR]:PORT");
        assertThatThrownBy(() -> MigrationUri.parse("exec:cat")).hasMessageContaining("unsupported transport 'exec'");
        assertThatThrownBy(() -> MigrationUri.parse("unix:")).hasMessageContaining("unix needs a socket path");
        assertThatThrownBy(() -> MigrationUri.parse("/tmp/x")).hasMessageContaining("missing transport prefix");
    }

    @Test
    void listenerClassifiesMainAndMultifdByPeek() throws Exception {
        for (MigrationUri uri : new MigrationUri[] {new MigrationUri.Tcp("127.0.0.1", 0),
                new MigrationUri.Unix(tmp.resolve("l.sock"))}) {
            try (IncomingListener l = IncomingListener.bind(uri);
                 SocketChannel a = Transports.connect(l.address(), Duration.ofSeconds(5));
                 SocketChannel b = Transports.connect(l.address(), Duration.ofSeconds(5))) {
                a.write(ByteBuffer.wrap(new byte[] {0x11, 0x22, 0x33, 0x44, 9}));
                b.write(ByteBuffer.wrap(new byte[] {'Q', 'E', 'V', 'M', 0, 0, 0, 3}));
                IncomingListener.Incoming first = l.accept(Duration.ofSeconds(5));
                IncomingListener.Incoming second = l.accept(Duration.ofSeconds(5));
                assertThat(first.main()).isFalse();
                assertThat(second.main()).isTrue();
                ByteBuffer got = ByteBuffer.allocate(8);
                while (got.hasRemaining()) {
                    second.channel().read(got);
                }
                assertThat(got.array()).containsExactly('Q', 'E', 'V', 'M', 0, 0, 0, 3);
                first.channel().close();
                second.channel().close();
            }
        }
    }

    @Test
    void acceptTimesOutAndSilentPeerTimesOut() throws Exception {
        try (IncomingListener l = IncomingListener.bind(new MigrationUri.Tcp("127.0.0.1", 0))) {
            assertThatThrownBy(() -> l.accept(Duration.ofMillis(200))).hasMessageContaining("no connection on");
            try (SocketChannel a = Transports.connect(l.address(), Duration.ofSeconds(5))) {
                a.write(ByteBuffer.wrap(new byte[] {1, 2}));
                assertThatThrownBy(() -> l.accept(Duration.ofMillis(300)))
                        .hasMessageContaining("sent only 2 of its first 4 bytes");
            }
        }
    }

    @Test
    void connectRefusedIsAClearIoError() {
        assertThatThrownBy(() -> Transports.connect(new MigrationUri.Unix(tmp.resolve("none.sock")), Duration.ofSeconds(1)))
                .hasMessageContaining("cannot connect to unix:");
    }
}
