package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The TLS handshake over real loopback sockets, one case per way it can be refused: each side
 * that sees the cause names it.
 */
class TlsHandshakeTest {
    private static final Duration T = Duration.ofSeconds(20);

    @TempDir
    static Path tmp;
    static Path good;
    static Path otherCa;
    static Path expired;

    @BeforeAll
    static void pki() {
        good = tmp.resolve("good");
        TlsCertGenerator.defaults(30).write(good);
        otherCa = tmp.resolve("other-ca");
        TlsCertGenerator.defaults(30).withCa("CN=another CA", null).write(otherCa);
        expired = tmp.resolve("expired");
        Instant now = Instant.now();
        TlsCertGenerator.defaults(30).withCa("CN=jmigrate test CA,O=jmigrate", good)
                .withValidity(now.minus(Duration.ofDays(10)), now.minus(Duration.ofDays(1))).write(expired);
    }

    static TlsCredsX509 creds(Path dir, String endpoint) {
        return TlsCredsX509.create(endpoint, Map.of("dir", dir.toString(), "endpoint", endpoint));
    }

    /** What each side got: a channel or the error. */
    record Outcome(TlsChannel client, RuntimeException clientError, TlsChannel server, RuntimeException serverError) {
    }

    static Outcome connect(TlsContext client, TlsContext server) throws Exception {
        try (ServerSocketChannel ss = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            CompletableFuture<TlsChannel> srv = CompletableFuture.supplyAsync(() -> {
                try {
                    SocketChannel s = ss.accept();
                    return server.handshake(s, "test connection 1", T);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            SocketChannel c = SocketChannel.open(ss.getLocalAddress());
            TlsChannel cc = null;
            RuntimeException ce = null;
            try {
                cc = client.handshake(c, "test main channel", T);
            } catch (RuntimeException e) {
                ce = e;
            }
            TlsChannel sc = null;
            RuntimeException se = null;
            try {
                sc = srv.get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
                se = (RuntimeException) e.getCause();
            }
            if (ce != null && sc != null) {
                sc.close();
            }
            return new Outcome(cc, ce, sc, se);
        }
    }

    @Test
    void goodCertificatesCarryDataBothWaysAndEndWithCloseNotify() throws Exception {
        Outcome o = connect(TlsContext.client(creds(good, "client"), "127.0.0.1"),
                TlsContext.server(creds(good, "server"), null));
        assertThat(o.clientError()).isNull();
        assertThat(o.serverError()).isNull();
        assertThat(o.client().session().getProtocol()).isEqualTo("TLSv1.3");
        // the server's session ticket arrived, so the client did not wait out VERDICT_WAIT
        assertThat(o.client().serverAccepted()).isTrue();
        byte[] data = new byte[3 << 20];
        new Random(7).nextBytes(data);
        CompletableFuture<byte[]> received = CompletableFuture.supplyAsync(() -> readAll(o.server(), data.length + 1));
        // gathering write from direct buffers of odd sizes
        ByteBuffer a = ByteBuffer.allocateDirect(1_000_003).put(data, 0, 1_000_003).flip();
        ByteBuffer b = ByteBuffer.allocateDirect(data.length - 1_000_003).put(data, 1_000_003, data.length - 1_000_003).flip();
        long n = 0;
        ByteBuffer[] bufs = {a, b};
        while (a.hasRemaining() || b.hasRemaining()) {
            n += o.client().write(bufs);
        }
        assertThat(n).isEqualTo(data.length);
        o.client().close();
        assertThat(received.get(30, TimeUnit.SECONDS)).isEqualTo(data);
        o.server().close();
    }

    @Test
    void everyChannelOfAMigrationIsAFullHandshakeAnsweredAtOnce() throws Exception {
        // one context per migration, as the main and the multifd channels share it
        TlsContext client = TlsContext.client(creds(good, "client"), "127.0.0.1");
        TlsAuthz only = (TlsAuthz) TlsObject.parse("authz-simple,id=auth0,identity=CN=jmigrate-client,,O=jmigrate");
        TlsContext server = TlsContext.server(creds(good, "server"), only);
        for (int i = 0; i < 3; i++) {
            Outcome o = connect(client, server);
            assertThat(o.clientError()).isNull();
            assertThat(o.serverError()).isNull();
            // no resumed session (whose certificate the server would not check again), and the
            // server's ticket came, so the client did not wait out TlsContext.VERDICT_WAIT
            assertThat(o.client().serverAccepted()).as("connection %d", i).isTrue();
            assertThat(o.server().session().getPeerCertificates()).hasSize(1);
            o.client().close();
            o.server().close();
        }
    }

    @Test
    void returnPathRunsWhileTheSourceWrites() throws Exception {
        Outcome o = connect(TlsContext.client(creds(good, "client"), "localhost"),
                TlsContext.server(creds(good, "server"), null));
        CompletableFuture<byte[]> back = CompletableFuture.supplyAsync(() -> readAll(o.client(), 8));
        CompletableFuture<byte[]> forth = CompletableFuture.supplyAsync(() -> readAll(o.server(), 1 << 20));
        o.server().write(ByteBuffer.wrap(new byte[]{0, 1, 0, 4, 0, 0, 0, 0}));
        o.client().write(ByteBuffer.allocate(1 << 20));
        assertThat(back.get(30, TimeUnit.SECONDS)).containsExactly(0, 1, 0, 4, 0, 0, 0, 0);
        assertThat(forth.get(30, TimeUnit.SECONDS)).hasSize(1 << 20);
        o.client().close();
        o.server().close();
    }

    @Test
    void serverSignedByAnotherCaIsRefusedByTheClient() throws Exception {
        Outcome o = connect(TlsContext.client(creds(otherCa, "client"), "127.0.0.1"),
                TlsContext.server(creds(good, "server"), null));
        assertThat(o.clientError()).hasMessageContaining("the server's certificate 'CN=localhost,O=jmigrate'")
                .hasMessageContaining("is not signed by a CA in").hasMessageContaining("CN=another CA");
        assertThat(o.serverError()).isNotNull();
    }

    @Test
    void clientSignedByAnotherCaIsRefusedByTheServer() throws Exception {
        // the client trusts the server (same CA file), but its own certificate is from another CA
        Path mixed = tmp.resolve("mixed");
        TlsCertGenerator.defaults(30).withCa("CN=another CA", otherCa).write(mixed);
        java.nio.file.Files.copy(good.resolve("ca-cert.pem"), mixed.resolve("ca-cert.pem"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Outcome o = connect(TlsContext.client(creds(mixed, "client"), "127.0.0.1"),
                TlsContext.server(creds(good, "server"), null));
        assertThat(o.serverError()).hasMessageContaining("the client's certificate 'CN=jmigrate-client,O=jmigrate'")
                .hasMessageContaining("is not signed by a CA in");
        assertThat(o.clientError()).hasMessageContaining("refused the TLS session");
    }

    @Test
    void wrongHostnameIsRefusedByTheClient() throws Exception {
        Outcome o = connect(TlsContext.client(creds(good, "client"), "dst.example.com"),
                TlsContext.server(creds(good, "server"), null));
        assertThat(o.clientError()).hasMessageContaining("does not match the host name 'dst.example.com'")
                .hasMessageContaining("DNS:localhost, IP:127.0.0.1");
        assertThat(o.serverError()).isNotNull();
    }

    @Test
    void clientDnNotAllowedIsRefusedByTheServer() throws Exception {
        TlsAuthz only = (TlsAuthz) TlsObject.parse("authz-simple,id=auth0,identity=CN=someone-else,,O=jmigrate");
        Outcome o = connect(TlsContext.client(creds(good, "client"), "127.0.0.1"),
                TlsContext.server(creds(good, "server"), only));
        assertThat(o.serverError()).hasMessageContaining("the client's certificate DN 'CN=jmigrate-client,O=jmigrate' "
                + "is not allowed: authz-simple 'auth0' allows only 'CN=someone-else,O=jmigrate'");
        assertThat(o.clientError()).hasMessageContaining("the destination refused the TLS session");
    }

    @Test
    void clientDnOnTheListIsAllowed() throws Exception {
        TlsAuthz list = (TlsAuthz) TlsObject.create("authz-list", "auth1", Map.of("policy", "deny",
                "rules.0.match", "CN=intruder,O=jmigrate", "rules.0.policy", "deny",
                "rules.1.match", "CN=jmigrate-client,O=jmigrate"));
        Outcome o = connect(TlsContext.client(creds(good, "client"), "127.0.0.1"),
                TlsContext.server(creds(good, "server"), list));
        assertThat(o.serverError()).isNull();
        assertThat(o.clientError()).isNull();
        o.client().close();
        o.server().close();
    }

    @Test
    void expiredServerCertificateIsRefusedByTheClient() throws Exception {
        Outcome o = connect(TlsContext.client(creds(good, "client"), "127.0.0.1"),
                TlsContext.server(creds(expired, "server"), null));
        assertThat(o.clientError()).hasMessageContaining("the server's certificate 'CN=localhost,O=jmigrate' expired on");
    }

    @Test
    void expiredClientCertificateIsRefusedByTheServer() throws Exception {
        Outcome o = connect(TlsContext.client(creds(expired, "client"), "127.0.0.1"),
                TlsContext.server(creds(good, "server"), null));
        assertThat(o.serverError()).hasMessageContaining("the client's certificate 'CN=jmigrate-client,O=jmigrate' expired on");
        assertThat(o.clientError()).hasMessageContaining("refused the TLS session");
    }

    @Test
    void plaintextMigrationPeerIsNamedByTheServer() throws Exception {
        assertThat(plaintextTo(new byte[]{'Q', 'E', 'V', 'M', 0, 0, 0, 3})).hasMessageContaining(
                "the peer sent plaintext migration data (the QEVM stream magic) but TLS is configured here");
    }

    @Test
    void randomBytesAreNamedByTheServer() throws Exception {
        byte[] junk = new byte[4096];
        new Random(1).nextBytes(junk);
        junk[0] = 0x42;
        assertThat(plaintextTo(junk)).hasMessageContaining("did not start a TLS handshake");
    }

    @Test
    void tlsClientToAPlaintextPeerFailsClearly() throws Exception {
        try (ServerSocketChannel ss = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            CompletableFuture<Void> srv = CompletableFuture.runAsync(() -> {
                try (SocketChannel s = ss.accept()) {
                    s.read(ByteBuffer.allocate(64)); // a plaintext destination reads what it takes for an init, then drops it
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            SocketChannel c = SocketChannel.open(ss.getLocalAddress());
            assertThatThrownBy(() -> TlsContext.client(creds(good, "client"), "127.0.0.1").handshake(c, "main", T))
                    .isInstanceOf(MigrationException.class)
                    .hasMessageContaining("main: ")
                    .satisfies(e -> assertThat(e.getMessage()).containsAnyOf("closed the connection during the TLS handshake",
                            "Connection reset", "TLS handshake failed"));
            srv.get(30, TimeUnit.SECONDS);
        }
    }

    @Test
    void silentPeerTimesOut() throws Exception {
        try (ServerSocketChannel ss = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
             SocketChannel c = SocketChannel.open(ss.getLocalAddress())) {
            SocketChannel s = ss.accept();
            assertThatThrownBy(() -> TlsContext.server(creds(good, "server"), null).handshake(s, "conn 3",
                    Duration.ofMillis(200))).hasMessageContaining("conn 3: the TLS handshake did not complete within");
            assertThat(c.isOpen()).isTrue();
        }
    }

    @Test
    void credentialsAreCheckedWhenCreated() {
        assertThatThrownBy(() -> TlsObject.parse("tls-creds-x509,id=t,dir=" + tmp.resolve("none") + ",endpoint=server"))
                .hasMessageContaining("is not a directory");
        assertThatThrownBy(() -> TlsObject.parse("tls-creds-x509,id=t,dir=" + good + ",endpoint=sideways"))
                .hasMessageContaining("Parameter 'endpoint' does not accept value 'sideways'");
        assertThatThrownBy(() -> TlsObject.parse("tls-creds-x509,id=t,dir=" + good + ",colour=blue"))
                .hasMessageContaining("Property 'colour' not found");
        assertThatThrownBy(() -> TlsObject.parse("authz-simple,id=a,identity=not a dn"))
                .hasMessageContaining("is not a distinguished name");
        assertThatThrownBy(() -> TlsContext.server(creds(good, "client"), null))
                .hasMessageContaining("needs endpoint=server");
        TlsObject o = TlsObject.parse("tls-creds-x509,id=tls0,dir=" + good + ",endpoint=server,verify-peer=off");
        assertThat(o).isInstanceOfSatisfying(TlsCredsX509.class, c -> {
            assertThat(c.verifyPeer()).isFalse();
            assertThat(c.chain()).hasSize(1);
        });
        assertThat(List.of(o.type(), o.id())).containsExactly("tls-creds-x509", "tls0");
    }

    private static RuntimeException plaintextTo(byte[] bytes) throws Exception {
        try (ServerSocketChannel ss = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            CompletableFuture<TlsChannel> srv = CompletableFuture.supplyAsync(() -> {
                try {
                    return TlsContext.server(creds(good, "server"), null).handshake(ss.accept(), "connection 1", T);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            try (SocketChannel c = SocketChannel.open(ss.getLocalAddress())) {
                c.write(ByteBuffer.wrap(bytes));
                try {
                    srv.get(30, TimeUnit.SECONDS);
                } catch (ExecutionException e) {
                    return (RuntimeException) e.getCause();
                }
            }
        }
        throw new AssertionError("the server accepted plaintext");
    }

    private static byte[] readAll(java.nio.channels.ReadableByteChannel ch, int max) {
        ByteBuffer b = ByteBuffer.allocate(max);
        try {
            while (b.hasRemaining()) {
                ByteBuffer[] two = {b.slice(b.position(), Math.min(b.remaining(), 70_001)),
                        b.slice(Math.min(b.limit(), b.position() + 70_001), b.remaining() - Math.min(b.remaining(), 70_001))};
                long n = ch instanceof java.nio.channels.ScatteringByteChannel s ? s.read(two) : ch.read(two[0]);
                if (n < 0) {
                    break;
                }
                b.position(b.position() + (int) n);
            }
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
        byte[] out = new byte[b.position()];
        b.flip().get(out);
        return out;
    }
}
