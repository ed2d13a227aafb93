package io.jmigrate.cli;

import io.jmigrate.channel.TlsCertGenerator;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code jmigrate tls}: TLS helpers. */
@Command(name = "tls", mixinStandardHelpOptions = true, description = "TLS helpers for migration credentials.",
        subcommands = TlsCommand.Gen.class)
public final class TlsCommand implements Runnable {
    @Override
    public void run() {
        new picocli.CommandLine(this).usage(System.out);
    }

    /** {@code jmigrate tls gen DIR}: a test CA with server and client certificates in QEMU's layout. */
    @Command(name = "gen", mixinStandardHelpOptions = true,
            description = {"Create a test CA and server and client certificates in DIR, in the layout of QEMU's "
                    + "tls-creds-x509 (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, "
                    + "client-key.pem; plus ca-key.pem to sign more later). Keys are EC P-256, mode 0600.",
                    "For tests only: the CA key lies next to the certificates."})
    public static final class Gen implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "DIR", description = "directory to write (created if missing)")
        Path dir;

        @Option(names = "--hostname", split = ",", paramLabel = "NAME",
                description = "the server certificate's subjectAltNames, DNS names or IP addresses "
                        + "(default: localhost,127.0.0.1,::1)")
        List<String> hostnames;

        @Option(names = "--server-dn", paramLabel = "DN", description = "the server certificate's subject "
                + "(default: CN=<first hostname>,O=jmigrate)")
        String serverDn;

        @Option(names = "--client-dn", paramLabel = "DN", defaultValue = "CN=jmigrate-client,O=jmigrate",
                description = "the client certificate's subject, which authz-simple/authz-list match "
                        + "(default: ${DEFAULT-VALUE})")
        String clientDn;

        @Option(names = "--ca-dn", paramLabel = "DN", defaultValue = "CN=jmigrate test CA,O=jmigrate",
                description = "the subject of a new CA (default: ${DEFAULT-VALUE})")
        String caDn;

        @Option(names = "--ca", paramLabel = "CADIR", description = "sign with the CA of an earlier 'tls gen CADIR' "
                + "(its ca-cert.pem and ca-key.pem) instead of making a new one; without it every run makes a new "
                + "CA, so two runs give two CAs that do not trust each other")
        Path ca;

        @Option(names = "--days", defaultValue = "365", description = "validity of the server and client "
                + "certificates in days, from an hour ago (default: ${DEFAULT-VALUE})")
        int days;

        @Option(names = "--expired", description = "make the server and client certificates expired (valid "
                + "from 10 days ago until yesterday), to test that they are refused")
        boolean expired;

        @Override
        public Integer call() {
            TlsCertGenerator g = TlsCertGenerator.defaults(days);
            List<String> names = hostnames == null || hostnames.isEmpty() ? List.of("localhost", "127.0.0.1", "::1")
                    : hostnames;
            g = g.withServer(serverDn != null ? serverDn : "CN=" + names.getFirst() + ",O=jmigrate", names)
                    .withClientDn(clientDn).withCa(caDn, ca);
            if (expired) {
                Instant now = Instant.now();
                g = g.withValidity(now.minus(Duration.ofDays(10)), now.minus(Duration.ofDays(1)));
            }
            g.write(dir);
            System.out.println("wrote " + dir + ": ca-cert.pem" + (ca == null ? " (new CA '" + caDn + "'), ca-key.pem"
                    : " (CA of " + ca + ")") + ", server-cert.pem, server-key.pem (" + g.serverDn() + "; "
                    + String.join(", ", names) + "), client-cert.pem, client-key.pem (" + g.clientDn() + ")"
                    + (expired ? ", both expired" : ", valid " + days + " days"));
            return 0;
        }
    }
}
