package io.jmigrate.migration;

import io.jmigrate.channel.TlsCertGenerator;
import io.jmigrate.channel.TlsObject;
import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.RunState;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.machine.WorkloadSpec;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * TLS migrations between two VMs in one JVM over loopback TCP (the two-process matrix is
 * TlsMigrationIT): good certificates complete with equal digests, with and without multifd;
 * every bad case fails with its cause named, and the source keeps running with its RAM as it was.
 */
@Timeout(120)
class TlsMigrationTest {
    @TempDir
    static Path tmp;
    static Path good;
    static Path otherCa;
    static Path expired;

    @BeforeAll
    static void pki() {
        good = tmp.resolve("good");
        TlsCertGenerator.defaults(30).write(good);
        otherCa = tmp.resolve("other");
        TlsCertGenerator.defaults(30).withCa("CN=another CA", null).write(otherCa);
        expired = tmp.resolve("expired");
        Instant now = Instant.now();
        TlsCertGenerator.defaults(30).withCa("CN=jmigrate test CA,O=jmigrate", good)
                .withValidity(now.minus(Duration.ofDays(9)), now.minus(Duration.ofDays(2))).write(expired);
    }

    static VmConfig cfg(boolean paused, WorkloadSpec w) {
        return new VmConfig("t", null, 16L << 20, null, false, MachineType.DEFAULT, paused, w, Map.of());
    }

    record Pair(Vm src, Vm dst, MigrationManager sm, MigrationManager dm) implements AutoCloseable {
        @Override
        public void close() {
            src.close();
            dst.close();
        }
    }

    static Pair pair(boolean workload, boolean multifd) {
        Vm src = new Vm(cfg(false, workload ? new WorkloadSpec(10, "increment", 1) : null), false);
        Vm dst = new Vm(cfg(false, workload ? new WorkloadSpec(10, "increment", 1) : null), true);
        MigrationManager sm = new MigrationManager(src, (e, d) -> { });
        MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
        for (MigrationManager m : List.of(sm, dm)) {
            List<Map.Entry<Capability, Boolean>> caps = new ArrayList<>(List.of(Map.entry(Capability.RETURN_PATH, true),
                    Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
            if (multifd) {
                caps.add(Map.entry(Capability.MULTIFD, true));
            }
            m.setCapabilities(caps);
            m.setParameters(Map.of("multifd-channels", 2L, "max-bandwidth", 1L << 30));
        }
        return new Pair(src, dst, sm, dm);
    }

    static void creds(Vm vm, String id, Path dir, String endpoint) {
        vm.tlsObjects().add(TlsObject.parse("tls-creds-x509,id=" + id + ",dir=" + dir + ",endpoint=" + endpoint));
    }

    @ParameterizedTest(name = "multifd {0}")
    @ValueSource(booleans = {false, true})
    void goodCertificatesMigrateWithEqualDigests(boolean multifd) throws Exception {
        try (Pair p = pair(true, multifd)) {
            creds(p.src(), "tls0", good, "client");
            creds(p.dst(), "tls0", good, "server");
            p.dst().tlsObjects().add(TlsObject.parse("authz-simple,id=auth0,identity=CN=jmigrate-client,,O=jmigrate"));
            p.sm().setParameters(Map.of("tls-creds", "tls0"));
            p.dm().setParameters(Map.of("tls-creds", "tls0", "tls-authz", "auth0"));
            assertThat(p.sm().config().parametersAsMap()).containsEntry("tls-creds", "tls0")
                    .containsEntry("tls-hostname", "").containsEntry("tls-authz", "");
            IncomingMigration in = p.dm().startIncoming("tcp:127.0.0.1:0", false);
            OutgoingMigration out = p.sm().migrate(in.boundUri());
            assertThat(out.join(60_000)).isTrue();
            assertThat(in.join(30_000)).isTrue();
            assertThat(out.error()).isNull();
            assertThat(in.error()).isNull();
            assertThat(out.state().get()).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(out.digest()).isNotNull().isEqualTo(in.digest());
            assertThat(p.dst().incomingWorkloadCheck().ok()).isTrue();
            assertThat(in.refusedConnections()).isEmpty();
        }
    }

    @Test
    void randomBytesOnTheIncomingPortDoNotEndTheMigrationThatThenArrives() throws Exception {
        try (Pair p = pair(false, true)) {
            creds(p.src(), "tls0", good, "client");
            creds(p.dst(), "tls0", good, "server");
            p.sm().setParameters(Map.of("tls-creds", "tls0"));
            p.dm().setParameters(Map.of("tls-creds", "tls0"));
            IncomingMigration in = p.dm().startIncoming("tcp:127.0.0.1:0", false);
            io.jmigrate.channel.MigrationUri.Tcp u = (io.jmigrate.channel.MigrationUri.Tcp)
                    io.jmigrate.channel.MigrationUri.parse(in.boundUri());
            try (SocketChannel junk = SocketChannel.open(new InetSocketAddress(u.host(), u.port()))) {
                byte[] b = new byte[4096];
                new Random(13).nextBytes(b);
                junk.write(ByteBuffer.wrap(b));
                // the refusal is recorded before the real source comes
                while (in.refusedConnections().isEmpty()) {
                    assertThat(in.join(10)).isFalse();
                }
            }
            assertThat(in.refusedConnections().getFirst()).contains("did not start a TLS handshake");
            assertThat(in.state().get()).isEqualTo(MigrationStatus.SETUP);
            OutgoingMigration out = p.sm().migrate(in.boundUri());
            assertThat(out.join(60_000)).isTrue();
            assertThat(in.join(30_000)).isTrue();
            assertThat(out.error()).isNull();
            assertThat(in.error()).isNull();
            assertThat(out.digest()).isNotNull().isEqualTo(in.digest());
        }
    }

    /** One bad case: what the source is given, and what each side must say. */
    enum Bad {
        WRONG_CA, WRONG_HOSTNAME, DN_NOT_ALLOWED, EXPIRED_SERVER, EXPIRED_CLIENT, PLAINTEXT_SOURCE
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(Bad.class)
    void badCaseFailsWithItsCauseAndTheSourceIsIntact(Bad bad) throws Exception {
        try (Pair p = pair(false, bad.ordinal() % 2 == 0)) {
            Path srcDir = switch (bad) {
                case WRONG_CA -> otherCa;
                case EXPIRED_CLIENT -> expired;
                default -> good;
            };
            Path dstDir = bad == Bad.EXPIRED_SERVER ? expired : good;
            creds(p.src(), "tls0", srcDir, "client");
            creds(p.dst(), "tls0", dstDir, "server");
            p.dst().tlsObjects().add(TlsObject.parse("authz-list,id=auth0,policy=deny,"
                    + "rules.0.match=CN=jmigrate-client,,O=jmigrate,rules.0.policy=allow"));
            p.dst().tlsObjects().add(TlsObject.parse("authz-simple,id=other,identity=CN=not-you"));
            if (bad != Bad.PLAINTEXT_SOURCE) {
                p.sm().setParameters(Map.of("tls-creds", "tls0"));
            }
            if (bad == Bad.WRONG_HOSTNAME) {
                p.sm().setParameters(Map.of("tls-hostname", "dst.example.com"));
            }
            p.dm().setParameters(Map.of("tls-creds", "tls0", "tls-authz", bad == Bad.DN_NOT_ALLOWED ? "other" : "auth0"));
            String before = p.src().ramDigest();
            IncomingMigration in = p.dm().startIncoming("tcp:127.0.0.1:0", false);
            OutgoingMigration out = p.sm().migrate(in.boundUri());
            assertThat(out.join(60_000)).isTrue();
            assertThat(out.state().get()).isEqualTo(MigrationStatus.FAILED);
            String srcError = out.error().getMessage();
            switch (bad) {
                case WRONG_CA -> assertThat(srcError).contains("is not signed by a CA in").contains("CN=another CA");
                case WRONG_HOSTNAME -> assertThat(srcError).contains("does not match the host name 'dst.example.com'");
                case EXPIRED_SERVER -> assertThat(srcError).contains("the server's certificate").contains("expired on");
                case DN_NOT_ALLOWED, EXPIRED_CLIENT -> assertThat(srcError).contains("the destination refused the TLS session");
                case PLAINTEXT_SOURCE -> assertThat(srcError).isNotEmpty();
            }
            // the destination refused the connection and listens on; the source is unharmed
            String dstSays = switch (bad) {
                case DN_NOT_ALLOWED -> "the client's certificate DN 'CN=jmigrate-client,O=jmigrate' is not allowed: "
                        + "authz-simple 'other' allows only 'CN=not-you'";
                case EXPIRED_CLIENT -> "the client's certificate 'CN=jmigrate-client,O=jmigrate' expired on";
                case PLAINTEXT_SOURCE -> "the peer sent plaintext migration data (the QEVM stream magic)";
                default -> "refused the TLS session";
            };
            while (in.refusedConnections().stream().noneMatch(r -> r.contains(dstSays))) {
                assertThat(in.join(10)).as("destination: %s", in.refusedConnections()).isFalse();
            }
            assertThat(in.state().get()).isEqualTo(MigrationStatus.SETUP);
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(p.src().ramDigest()).isEqualTo(before);
        }
    }

    @ParameterizedTest(name = "multifd {0}")
    @ValueSource(booleans = {false, true})
    void tlsSourceToAPlaintextDestinationIsNamedOnBothSides(boolean multifd) throws Exception {
        try (Pair p = pair(false, multifd)) {
            creds(p.src(), "tls0", good, "client");
            p.sm().setParameters(Map.of("tls-creds", "tls0"));
            String before = p.src().ramDigest();
            IncomingMigration in = p.dm().startIncoming("tcp:127.0.0.1:0", false);
            OutgoingMigration out = p.sm().migrate(in.boundUri());
            assertThat(out.join(60_000)).isTrue();
            assertThat(in.join(60_000)).isTrue();
            assertThat(in.error()).hasMessageContaining("starts a TLS handshake, but tls-creds is not set on this "
                    + "destination");
            assertThat(out.error()).hasMessageContaining("TLS handshake");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(p.src().ramDigest()).isEqualTo(before);
        }
    }

    @Test
    void tlsParametersAreCheckedWhenTheMigrationStarts() throws Exception {
        try (Pair p = pair(false, false)) {
            creds(p.src(), "srv", good, "server");
            p.sm().setParameters(Map.of("tls-creds", "nope"));
            assertThatThrownBy(() -> p.sm().migrate("tcp:127.0.0.1:1")).hasMessageContaining("No TLS credentials with id 'nope'");
            p.sm().setParameters(Map.of("tls-creds", "srv"));
            assertThatThrownBy(() -> p.sm().migrate("tcp:127.0.0.1:1")).hasMessageContaining("has endpoint=server");
            creds(p.src(), "cli", good, "client");
            p.sm().setParameters(Map.of("tls-creds", "cli"));
            assertThatThrownBy(() -> p.sm().migrate("unix:" + tmp.resolve("x.sock")))
                    .hasMessageContaining("No hostname available for TLS");
            assertThatThrownBy(() -> p.sm().setParameters(Map.of("tls-hostname", "a\nb")))
                    .hasMessageContaining("printable");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
        }
    }
}
