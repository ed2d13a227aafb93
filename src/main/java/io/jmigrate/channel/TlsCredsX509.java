package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * QEMU's {@code tls-creds-x509} object: x509 credentials read from a directory in QEMU's layout
 * (crypto/tlscredsx509.c), loaded and checked when the object is created, as QEMU does.
 *
 * <pre>
 * --object tls-creds-x509,id=tls0,dir=DIR,endpoint=server|client[,verify-peer=on|off]
 *
 * DIR/ca-cert.pem       the CA certificate(s) that sign the peer's certificate (required)
 * DIR/server-cert.pem   endpoint=server: this host's certificate (required)
 * DIR/server-key.pem    endpoint=server: its private key (PKCS#8, PKCS#1 or SEC1 PEM; required)
 * DIR/client-cert.pem   endpoint=client: this host's certificate (required if the server verifies peers)
 * DIR/client-key.pem    endpoint=client: its private key
 * </pre>
 *
 * {@code verify-peer} defaults to on, as in QEMU: a server then requires a client certificate
 * signed by the CA, and a client checks the server's certificate (always, and its host name).
 *
 * @param id         the object id that {@code tls-creds} names
 * @param endpoint   which side of a connection these credentials are for
 * @param dir        the directory
 * @param verifyPeer {@code verify-peer}
 * @param ca         the CA certificates from {@code ca-cert.pem}
 * @param chain      this side's certificate (and any intermediates after it), empty for a client without one
 * @param key        this side's private key, null for a client without a certificate
 */
public record TlsCredsX509(String id, Endpoint endpoint, Path dir, boolean verifyPeer, List<X509Certificate> ca,
                           List<X509Certificate> chain, PrivateKey key) implements TlsObject {
    /** The QOM type name. */
    public static final String TYPE = "tls-creds-x509";
    public static final String CA_CERT = "ca-cert.pem";
    public static final String SERVER_CERT = "server-cert.pem";
    public static final String SERVER_KEY = "server-key.pem";
    public static final String CLIENT_CERT = "client-cert.pem";
    public static final String CLIENT_KEY = "client-key.pem";
    /** A PEM file larger than this is refused before it is read. */
    static final long MAX_PEM_BYTES = 1 << 20;

    /** QEMU's {@code QCryptoTLSCredsEndpoint}. */
    public enum Endpoint {
        SERVER, CLIENT;

        public String qapiName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    public TlsCredsX509 {
        ca = List.copyOf(ca);
        chain = List.copyOf(chain);
    }

    @Override
    public String type() {
        return TYPE;
    }

    /**
     * Creates the object from its properties ({@code dir}, {@code endpoint}, {@code verify-peer})
     * and loads the files.
     *
     * @throws MigrationException CONFIG naming the property or the file that is wrong
     */
    public static TlsCredsX509 create(String id, Map<String, String> props) {
        TlsObject.checkKeys(TYPE, id, props, "dir", "endpoint", "verify-peer");
        String dirText = props.get("dir");
        if (dirText == null || dirText.isEmpty()) {
            throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': property 'dir' is missing (the "
                    + "directory with " + CA_CERT + ", server-/client-cert.pem and -key.pem)");
        }
        Endpoint ep = switch (props.getOrDefault("endpoint", "client")) {
            case "server" -> Endpoint.SERVER;
            case "client" -> Endpoint.CLIENT;
            default -> throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': Parameter 'endpoint' "
                    + "does not accept value '" + props.get("endpoint") + "' (expected server or client)");
        };
        boolean verify = TlsObject.bool(TYPE, id, "verify-peer", props.getOrDefault("verify-peer", "on"));
        Path dir = Path.of(dirText);
        if (!Files.isDirectory(dir)) {
            throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': dir '" + dir
                    + "' is not a directory");
        }
        List<X509Certificate> ca = readCertificates(id, dir.resolve(CA_CERT));
        if (ca.isEmpty()) {
            throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': " + dir.resolve(CA_CERT)
                    + " holds no certificate");
        }
        Path cert = dir.resolve(ep == Endpoint.SERVER ? SERVER_CERT : CLIENT_CERT);
        Path key = dir.resolve(ep == Endpoint.SERVER ? SERVER_KEY : CLIENT_KEY);
        List<X509Certificate> chain = List.of();
        PrivateKey pk = null;
        if (ep == Endpoint.SERVER || Files.exists(cert)) {
            chain = readCertificates(id, cert);
            if (chain.isEmpty()) {
                throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': " + cert + " holds no certificate");
            }
            pk = readKey(id, key);
        }
        TlsCredsX509 creds = new TlsCredsX509(id, ep, dir, verify, ca, chain, pk);
        TlsContext.warmUp(creds);
        return creds;
    }

    /** The properties as {@code qom-list}-style text, for messages. */
    public Map<String, Object> describe() {
        Map<String, Object> m = new java.util.LinkedHashMap<>();
        m.put("qom-type", TYPE);
        m.put("id", id);
        m.put("dir", dir.toString());
        m.put("endpoint", endpoint.qapiName());
        m.put("verify-peer", verifyPeer);
        return m;
    }

    private static byte[] readBounded(String id, Path p) {
        try {
            if (!Files.isRegularFile(p)) {
                throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': " + p + " does not exist");
            }
            long size = Files.size(p);
            if (size > MAX_PEM_BYTES) {
                throw new MigrationException(Category.LIMIT, TYPE + " '" + id + "': " + p + " is " + size
                        + " bytes, more than the " + MAX_PEM_BYTES + " a PEM file may have");
            }
            return Files.readAllBytes(p);
        } catch (IOException e) {
            throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': cannot read " + p + ": "
                    + e.getMessage(), e);
        }
    }

    static List<X509Certificate> readCertificates(String id, Path p) {
        byte[] pem = readBounded(id, p);
        try (InputStream in = new java.io.ByteArrayInputStream(pem)) {
            CertificateFactory cf = CertificateFactory.getInstance("X.509");
            List<X509Certificate> out = new ArrayList<>();
            for (java.security.cert.Certificate c : cf.generateCertificates(in)) {
                out.add((X509Certificate) c);
            }
            return out;
        } catch (CertificateException | IOException e) {
            throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': " + p
                    + " is not a PEM X.509 certificate file: " + e.getMessage(), e);
        }
    }

    static PrivateKey readKey(String id, Path p) {
        byte[] pem = readBounded(id, p);
        try (Reader r = new java.io.InputStreamReader(new java.io.ByteArrayInputStream(pem),
                java.nio.charset.StandardCharsets.US_ASCII); PEMParser parser = new PEMParser(r)) {
            Object o = parser.readObject();
            JcaPEMKeyConverter conv = new JcaPEMKeyConverter();
            return switch (o) {
                case PEMKeyPair kp -> conv.getKeyPair(kp).getPrivate();
                case PrivateKeyInfo info -> conv.getPrivateKey(info);
                case null -> throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': " + p
                        + " holds no PEM private key");
                default -> throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': " + p
                        + " holds a " + o.getClass().getSimpleName() + ", not an unencrypted private key");
            };
        } catch (IOException e) {
            throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': " + p
                    + " is not a PEM private key: " + e.getMessage(), e);
        }
    }
}
