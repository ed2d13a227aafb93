package io.jmigrate.qmp;

import io.jmigrate.common.MigrationException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Bounded resources of the QMP server: socket file mode, loopback-only TCP, client count. */
@Timeout(60)
class QmpServerLimitsTest {
    @TempDir
    Path dir;

    @Test
    void unixSocketIsCreatedWithMode0600() throws Exception {
        Path sock = dir.resolve("vm.qmp");
        try (QmpServer s = new QmpServer("unix:" + sock, () -> null)) {
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(sock))).isEqualTo("rw-------");
            assertThat(s.address()).isEqualTo("unix:" + sock);
            try (var ls = Files.list(dir)) {
                assertThat(ls.map(p -> p.getFileName().toString()).toList()).containsExactly("vm.qmp");
            }
        }
    }

    @Test
    void tcpOnlyOnLoopbackUnlessAsked() {
        assertThatThrownBy(() -> new QmpServer("tcp:0.0.0.0:0", () -> null))
                .isInstanceOf(MigrationException.class).hasMessageContaining("non-loopback address")
                .hasMessageContaining(",allow-remote=on");
        try (QmpServer s = new QmpServer("tcp:127.0.0.1:0", () -> null)) {
            assertThat(s.address()).startsWith("tcp:127.0.0.1:");
        }
        try (QmpServer s = new QmpServer("tcp:0.0.0.0:0,allow-remote=on", () -> null)) {
            assertThat(s.address()).startsWith("tcp:0.0.0.0:");
        }
    }

    @Test
    void clientsBeyondTheLimitAreTurnedAwayWithAnError() throws Exception {
        Path sock = dir.resolve("vm.qmp");
        List<SocketChannel> clients = new ArrayList<>();
        try (QmpServer s = new QmpServer("unix:" + sock, () -> null)) {
            s.start();
            for (int i = 0; i < QmpServer.MAX_SESSIONS; i++) {
                SocketChannel c = SocketChannel.open(StandardProtocolFamily.UNIX);
                c.connect(UnixDomainSocketAddress.of(sock));
                clients.add(c);
                assertThat(readLine(c)).contains("\"QMP\""); // the greeting: this session is served
            }
            try (SocketChannel extra = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                extra.connect(UnixDomainSocketAddress.of(sock));
                assertThat(readLine(extra)).contains("too many QMP clients: at most " + QmpServer.MAX_SESSIONS);
                assertThat(extra.read(ByteBuffer.allocate(1))).isEqualTo(-1);
            }
        } finally {
            for (SocketChannel c : clients) {
                c.close();
            }
        }
    }

    private static String readLine(SocketChannel c) throws Exception {
        ByteBuffer b = ByteBuffer.allocate(4096);
        while (true) {
            if (c.read(b) < 0) {
                break;
            }
            byte[] a = b.array();
            boolean nl = false;
            for (int i = 0; i < b.position(); i++) {
                nl |= a[i] == '\n';
            }
            if (nl) {
                break;
            }
        }
        return new String(b.array(), 0, b.position(), StandardCharsets.UTF_8);
    }
}
