package io.jmigrate.it;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 13 acceptance 1 and 5 with real VM processes over loopback TCP, with and without
 * multifd. One TLS destination (credentials from {@code --object}, authz-list allowing only
 * CN=jmigrate-client) meets, in turn: a connection of random bytes, a plaintext source, a source
 * trusting another CA, one checking the wrong host name, one whose DN is not allowed, one with an
 * expired certificate, and finally the real source, which completes with equal digests. Each bad
 * case fails on the source with its cause named (the destination's log names its side), the
 * source keeps running with its workload intact, and the destination keeps listening.
 * Certificates come from {@code jmigrate tls gen}.
 */
@Timeout(600)
class TlsMigrationIT {
    static final String WL = "dirty-rate=10,pattern=increment";

    @TempDir
    Path dir;

    void gen(String name, String... opts) throws Exception {
        List<String> args = new ArrayList<>(List.of("tls", "gen", dir.resolve(name).toString()));
        args.addAll(List.of(opts));
        Path out = dir.resolve("gen-" + name + ".log");
        assertThat(VmProcess.run(out, args.toArray(String[]::new))).as(Files.readString(out)).isZero();
    }

    @Test
    void matrixWithMultifd() throws Exception {
        matrix(true);
    }

    @Test
    void matrixWithoutMultifd() throws Exception {
        matrix(false);
    }

    void matrix(boolean multifd) throws Exception {
        gen("good");
        gen("other", "--ca-dn", "CN=another CA,O=elsewhere");
        gen("intruder", "--ca", dir.resolve("good").toString(), "--client-dn", "CN=intruder,O=jmigrate");
        gen("expired", "--ca", dir.resolve("good").toString(), "--expired");
        String tag = multifd ? "m" : "p";
        try (VmProcess src = VmProcess.start(dir, tag + "src", "-m", "32M", "--workload", WL);
             VmProcess dst = VmProcess.start(dir, tag + "dst", "-m", "32M", "--workload", WL, "--incoming", "defer",
                     "--object", "tls-creds-x509,id=tls0,dir=" + dir.resolve("good") + ",endpoint=server",
                     "--object", "authz-list,id=auth0,policy=deny,rules.0.match=CN=jmigrate-client,,O=jmigrate,"
                             + "rules.0.policy=allow")) {
            for (String c : List.of("good", "other", "intruder", "expired")) {
                src.exec("object-add", Map.of("qom-type", "tls-creds-x509", "id", c, "dir", dir.resolve(c).toString(),
                        "endpoint", "client"));
            }
            for (VmProcess vm : List.of(src, dst)) {
                List<Map<String, Object>> caps = new ArrayList<>(List.of(Map.of("capability", "return-path", "state", true)));
                if (multifd) {
                    caps.add(Map.of("capability", "multifd", "state", true));
                }
                vm.exec("migrate-set-capabilities", Map.of("capabilities", caps));
                vm.exec("migrate-set-parameters", Map.of("multifd-channels", 2, "max-bandwidth", 1L << 30));
            }
            dst.exec("migrate-set-parameters", Map.of("tls-creds", "tls0", "tls-authz", "auth0"));
            JsonNode p = dst.exec("query-migrate-parameters");
            assertThat(p.path("tls-creds").asText()).isEqualTo("tls0");
            assertThat(p.path("tls-authz").asText()).isEqualTo("auth0");
            dst.exec("migrate-incoming", Map.of("uri", "tcp:127.0.0.1:0"));
            int port = Integer.parseInt(dst.exec("query-migrate").path("socket-address").path(0).path("port").asText());
            String uri = "tcp:127.0.0.1:" + port;

            // acceptance 5: random bytes first
            try (SocketChannel junk = SocketChannel.open(new InetSocketAddress("127.0.0.1", port))) {
                byte[] b = new byte[4096];
                new Random(5).nextBytes(b);
                junk.write(ByteBuffer.wrap(b));
                dst.awaitLog("refused (.*did not start a TLS handshake)", Duration.ofSeconds(30));
            }

            bad(src, dst, uri, "", "", "plaintext", "the peer sent plaintext migration data");
            bad(src, dst, uri, "other", "", "is not signed by a CA in", "the peer refused the TLS session");
            bad(src, dst, uri, "good", "wrong.example.com",
                    "does not match the host name 'wrong.example.com'", "the peer refused the TLS session");
            bad(src, dst, uri, "intruder", "", "the destination refused the TLS session",
                    "the client's certificate DN 'CN=intruder,O=jmigrate' is not allowed");
            bad(src, dst, uri, "expired", "", "the destination refused the TLS session",
                    "the client's certificate 'CN=jmigrate-client,O=jmigrate' expired on");
            assertThat(dst.migrationStatus()).isEqualTo("setup");

            // the real source, to the same destination
            src.exec("migrate-set-parameters", Map.of("tls-creds", "good", "tls-hostname", ""));
            src.exec("migrate", Map.of("uri", uri));
            JsonNode info = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(120));
            assertThat(info.path("status").asText()).as("%s\n%s", info, dst.describeProcess()).isEqualTo("completed");
            JsonNode dinfo = dst.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
            assertThat(dinfo.path("status").asText()).as(dinfo.toString()).isEqualTo("completed");
            if (multifd) {
                assertThat(info.path("ram").path("multifd-bytes").asLong()).isPositive();
            }
            String out = src.exec("x-jmigrate-query-digest").path("outgoing").asText();
            String in = dst.exec("x-jmigrate-query-digest").path("incoming").asText();
            assertThat(in).hasSize(64).isEqualTo(out);
            assertThat(dst.exec("x-jmigrate-query-workload").path("resume-check-ok").asBoolean()).isTrue();
        }
    }

    /**
     * One bad case: the source fails with {@code srcSays}, keeps running with its workload intact,
     * and the destination logs {@code dstSays} and goes on listening.
     */
    static void bad(VmProcess src, VmProcess dst, String uri, String creds, String hostname, String srcSays,
                    String dstSays) throws Exception {
        src.exec("migrate-set-parameters", Map.of("tls-creds", creds, "tls-hostname", hostname));
        src.exec("migrate", Map.of("uri", uri));
        JsonNode info = src.awaitMigration(VmProcess::isFinal, Duration.ofSeconds(60));
        assertThat(info.path("status").asText()).as(info.toString()).isEqualTo("failed");
        if (!srcSays.equals("plaintext")) {
            assertThat(info.path("error-desc").asText()).as("source error for tls-creds=%s", creds).contains(srcSays);
        }
        assertThat(src.status()).isEqualTo("running");
        assertThat(src.exec("x-jmigrate-query-workload").path("ok").asBoolean()).as("source workload intact").isTrue();
        dst.awaitLog("refused (.*\\Q" + dstSays + "\\E.*)", Duration.ofSeconds(30));
        assertThat(dst.migrationStatus()).isEqualTo("setup");
    }
}
