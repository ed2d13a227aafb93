package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

import javax.security.auth.x500.X500Principal;
import java.io.IOException;
import java.io.StringWriter;
import java.math.BigInteger;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;

/**
 * Writes a test PKI in QEMU's {@code tls-creds-x509} layout with BouncyCastle: a CA
 * ({@code ca-cert.pem}, plus {@code ca-key.pem} so that more certificates can be signed by it
 * later), a server certificate for the given host names ({@code server-cert.pem},
 * {@code server-key.pem}) and a client certificate ({@code client-cert.pem}, {@code client-key.pem}).
 * Keys are EC P-256, written as PKCS#8 PEM with mode 0600. This is {@code jmigrate tls gen}.
 *
 * @param caDn        the CA's subject, used when a new CA is made
 * @param existingCa  the directory of an earlier run whose CA signs these certificates, or null for a new CA
 * @param serverDn    the server certificate's subject
 * @param serverNames the server certificate's subjectAltNames: DNS names and IP addresses
 * @param clientDn    the client certificate's subject
 * @param notBefore   start of the server and client certificates' validity
 * @param notAfter    end of their validity (in the past makes expired certificates)
 */
public record TlsCertGenerator(String caDn, Path existingCa, String serverDn, List<String> serverNames,
                               String clientDn, Instant notBefore, Instant notAfter) {
    public static final String CA_KEY = "ca-key.pem";

    public TlsCertGenerator {
        serverNames = List.copyOf(serverNames);
        if (!notAfter.isAfter(notBefore)) {
            throw new MigrationException(Category.CONFIG, "certificate validity ends (" + notAfter
                    + ") before it starts (" + notBefore + ")");
        }
    }

    /** Defaults: a new CA, server names localhost, 127.0.0.1 and ::1, valid for {@code days} from an hour ago. */
    public static TlsCertGenerator defaults(int days) {
        Instant now = Instant.now();
        return new TlsCertGenerator("CN=jmigrate test CA,O=jmigrate", null, "CN=localhost,O=jmigrate",
                List.of("localhost", "127.0.0.1", "::1"), "CN=jmigrate-client,O=jmigrate",
                now.minus(Duration.ofHours(1)), now.plus(Duration.ofDays(days)));
    }

    public TlsCertGenerator withServer(String dn, List<String> names) {
        return new TlsCertGenerator(caDn, existingCa, dn, names, clientDn, notBefore, notAfter);
    }

    public TlsCertGenerator withClientDn(String dn) {
        return new TlsCertGenerator(caDn, existingCa, serverDn, serverNames, dn, notBefore, notAfter);
    }

    public TlsCertGenerator withCa(String dn, Path existing) {
        return new TlsCertGenerator(dn, existing, serverDn, serverNames, clientDn, notBefore, notAfter);
    }

    public TlsCertGenerator withValidity(Instant from, Instant to) {
        return new TlsCertGenerator(caDn, existingCa, serverDn, serverNames, clientDn, from, to);
    }

    /** Writes the files into {@code dir} (created if missing; existing files are replaced). */
    public void write(Path dir) {
        try {
            Files.createDirectories(dir);
            KeyPair caKeys;
            X509Certificate caCert;
            if (existingCa != null) {
                caCert = TlsCredsX509.readCertificates("--ca", existingCa.resolve(TlsCredsX509.CA_CERT)).getFirst();
                PrivateKey k = TlsCredsX509.readKey("--ca", existingCa.resolve(CA_KEY));
                caKeys = new KeyPair(caCert.getPublicKey(), k);
            } else {
                caKeys = newKey();
                Instant now = Instant.now();
                caCert = sign(new X500Principal(caDn), caKeys, new X500Principal(caDn), caKeys.getPublic(),
                        Math.min(notBefore.toEpochMilli(), now.minus(Duration.ofDays(1)).toEpochMilli()),
                        Math.max(notAfter.toEpochMilli(), now.plus(Duration.ofDays(3650)).toEpochMilli()),
                        Role.CA, List.of());
            }
            KeyPair server = newKey();
            X509Certificate serverCert = sign(caCert.getSubjectX500Principal(), caKeys, new X500Principal(serverDn),
                    server.getPublic(), notBefore.toEpochMilli(), notAfter.toEpochMilli(), Role.SERVER, serverNames);
            KeyPair client = newKey();
            X509Certificate clientCert = sign(caCert.getSubjectX500Principal(), caKeys, new X500Principal(clientDn),
                    client.getPublic(), notBefore.toEpochMilli(), notAfter.toEpochMilli(), Role.CLIENT, List.of());
            writePem(dir.resolve(TlsCredsX509.CA_CERT), caCert, false);
            if (existingCa == null) {
                writePem(dir.resolve(CA_KEY), new JcaPKCS8Generator(caKeys.getPrivate(), null), true);
            } else if (!existingCa.toAbsolutePath().normalize().equals(dir.toAbsolutePath().normalize())) {
                Files.deleteIfExists(dir.resolve(CA_KEY));
            }
            writePem(dir.resolve(TlsCredsX509.SERVER_CERT), serverCert, false);
            writePem(dir.resolve(TlsCredsX509.SERVER_KEY), new JcaPKCS8Generator(server.getPrivate(), null), true);
            writePem(dir.resolve(TlsCredsX509.CLIENT_CERT), clientCert, false);
            writePem(dir.resolve(TlsCredsX509.CLIENT_KEY), new JcaPKCS8Generator(client.getPrivate(), null), true);
        } catch (IOException | GeneralSecurityException | OperatorCreationException e) {
            throw new MigrationException(Category.IO, "cannot write the test certificates to " + dir + ": "
                    + e.getMessage(), e);
        }
    }

    private enum Role { CA, SERVER, CLIENT }

    private static KeyPair newKey() throws GeneralSecurityException {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        return g.generateKeyPair();
    }

    private static X509Certificate sign(X500Principal issuer, KeyPair issuerKeys, X500Principal subject,
                                        java.security.PublicKey key, long from, long to, Role role,
                                        List<String> names)
            throws GeneralSecurityException, IOException, OperatorCreationException {
        BigInteger serial = new BigInteger(64, new SecureRandom()).abs().add(BigInteger.ONE);
        JcaX509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(issuer, serial, new Date(from), new Date(to),
                subject, key);
        JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
        b.addExtension(Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(key));
        b.addExtension(Extension.authorityKeyIdentifier, false, ext.createAuthorityKeyIdentifier(issuerKeys.getPublic()));
        switch (role) {
            case CA -> {
                b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
                b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
            }
            case SERVER, CLIENT -> {
                b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
                b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature));
                b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(role == Role.SERVER
                        ? KeyPurposeId.id_kp_serverAuth : KeyPurposeId.id_kp_clientAuth));
            }
        }
        if (!names.isEmpty()) {
            List<GeneralName> gn = new ArrayList<>();
            for (String n : names) {
                gn.add(isIpLiteral(n) ? new GeneralName(GeneralName.iPAddress, InetAddress.ofLiteral(n).getHostAddress())
                        : new GeneralName(GeneralName.dNSName, n));
            }
            b.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(gn.toArray(new GeneralName[0])));
        }
        X509CertificateHolder h = b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(issuerKeys.getPrivate()));
        return new JcaX509CertificateConverter().getCertificate(h);
    }

    private static boolean isIpLiteral(String n) {
        if (n.contains(":")) {
            return true;
        }
        return n.matches("[0-9]{1,3}(\\.[0-9]{1,3}){3}");
    }

    private static void writePem(Path p, Object o, boolean secret) throws IOException {
        StringWriter sw = new StringWriter();
        try (JcaPEMWriter w = new JcaPEMWriter(sw)) {
            w.writeObject(o);
        }
        Path tmp = p.resolveSibling(p.getFileName() + ".tmp");
        Files.deleteIfExists(tmp);
        if (secret) {
            Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(tmp, sw.toString());
        } else {
            Files.writeString(tmp, sw.toString());
        }
        Files.move(tmp, p, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }
}
