package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;
import javax.security.auth.x500.X500Principal;
import java.nio.channels.SocketChannel;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Duration;

/**
 * TLS for one migration, one side (QEMU's migration/tls.c): built from a {@link TlsCredsX509}
 * when the migration starts, it upgrades each of the migration's connections (the main channel
 * and every multifd channel) with a TLS 1.3 handshake.
 *
 * <pre>{@code
 * TlsContext tls = TlsContext.client(creds, "dst.example.com");   // source: checks the server's names
 * TlsChannel ch = tls.handshake(Transports.connect(uri, timeout), "multifd channel 0", Duration.ofSeconds(10));
 *
 * TlsContext tls = TlsContext.server(creds, authz);                // destination: authz may be null
 * TlsChannel ch = tls.handshake(accepted.channel(), accepted.description(), timeout);
 * }</pre>
 */
public final class TlsContext {
    /** How long a client waits after its handshake for the server to accept its certificate. */
    static final Duration VERDICT_WAIT = Duration.ofSeconds(2);

    private static final java.util.concurrent.atomic.AtomicLong CONNECTIONS = new java.util.concurrent.atomic.AtomicLong();
    private final SSLContext ssl;
    private final TlsCredsX509 creds;
    private final String hostname;
    private final TlsAuthz authz;

    private TlsContext(TlsCredsX509 creds, String hostname, TlsAuthz authz) {
        this.creds = creds;
        this.hostname = hostname;
        this.authz = authz;
        try {
            KeyStore trust = KeyStore.getInstance("PKCS12");
            trust.load(null, null);
            int i = 0;
            for (X509Certificate ca : creds.ca()) {
                trust.setCertificateEntry("ca" + i++, ca);
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
            tmf.init(trust);
            X509ExtendedTrustManager pkix = null;
            for (TrustManager tm : tmf.getTrustManagers()) {
                if (tm instanceof X509ExtendedTrustManager x) {
                    pkix = x;
                }
            }
            if (pkix == null) {
                throw new MigrationException(Category.INTERNAL, "the JDK has no X509ExtendedTrustManager");
            }
            javax.net.ssl.KeyManager[] kms = creds.key() == null ? null
                    : new javax.net.ssl.KeyManager[]{new OneKey(creds.chain().toArray(new X509Certificate[0]), creds.key())};
            ssl = SSLContext.getInstance("TLSv1.3");
            ssl.init(kms, new TrustManager[]{new TlsTrust(pkix, creds, hostname, authz)}, null);
        } catch (GeneralSecurityException | java.io.IOException e) {
            throw new MigrationException(Category.CONFIG, TlsCredsX509.TYPE + " '" + creds.id()
                    + "': cannot use the credentials in " + creds.dir() + ": " + e.getMessage(), e);
        }
    }

    /**
     * The source's side.
     *
     * @param hostname the name the server's certificate must carry (tls-hostname, or the URI's
     *                 host); null only if the credentials do not verify the peer
     */
    public static TlsContext client(TlsCredsX509 creds, String hostname) {
        if (creds.endpoint() != TlsCredsX509.Endpoint.CLIENT) {
            throw new MigrationException(Category.CONFIG, "tls-creds '" + creds.id() + "' has endpoint=server, "
                    + "but an outgoing migration needs endpoint=client credentials");
        }
        return new TlsContext(creds, creds.verifyPeer() ? hostname : null, null);
    }

    /** The destination's side; {@code authz} (may be null) checks each client's DN. */
    public static TlsContext server(TlsCredsX509 creds, TlsAuthz authz) {
        if (creds.endpoint() != TlsCredsX509.Endpoint.SERVER) {
            throw new MigrationException(Category.CONFIG, "tls-creds '" + creds.id() + "' has endpoint=client, "
                    + "but an incoming migration needs endpoint=server credentials");
        }
        if (authz != null && !creds.verifyPeer()) {
            throw new MigrationException(Category.CONFIG, "tls-authz '" + authz.id() + "' needs client certificates, "
                    + "but tls-creds '" + creds.id() + "' has verify-peer=off");
        }
        return new TlsContext(creds, null, authz);
    }

    public boolean isClient() {
        return creds.endpoint() == TlsCredsX509.Endpoint.CLIENT;
    }

    public TlsCredsX509 creds() {
        return creds;
    }

    /**
     * Upgrades a connected socket. On failure the socket is closed.
     *
     * @throws MigrationException PROTOCOL naming why the handshake was refused, TIMEOUT, IO
     */
    public TlsChannel handshake(SocketChannel socket, String description, Duration timeout) {
        SSLEngine e;
        if (isClient()) {
            // a distinct (host, port) key per connection: the JDK then never resumes a cached
            // session, so every channel is a full handshake whose certificate the server checks
            // (and answers with the ticket that awaitVerdict waits for)
            int key = 1 + (int) (CONNECTIONS.getAndIncrement() % 65535);
            e = ssl.createSSLEngine(hostname != null ? hostname : "jmigrate-peer", key);
            e.setUseClientMode(true);
            SSLParameters p = e.getSSLParameters();
            p.setProtocols(new String[]{"TLSv1.3"});
            if (hostname != null) {
                p.setEndpointIdentificationAlgorithm("HTTPS");
            }
            e.setSSLParameters(p);
        } else {
            e = ssl.createSSLEngine();
            e.setUseClientMode(false);
            SSLParameters p = e.getSSLParameters();
            p.setProtocols(new String[]{"TLSv1.3"});
            p.setNeedClientAuth(creds.verifyPeer());
            e.setSSLParameters(p);
        }
        TlsChannel ch = TlsChannel.handshake(socket, e, description, timeout, isClient() ? VERDICT_WAIT : Duration.ZERO);
        if (authz != null) {
            // a resumed session skips the certificate check: the DN is checked again here
            X500Principal dn;
            try {
                dn = ((X509Certificate) ch.session().getPeerCertificates()[0]).getSubjectX500Principal();
            } catch (javax.net.ssl.SSLPeerUnverifiedException ex) {
                ch.close();
                throw new MigrationException(Category.PROTOCOL, description + ": the client sent no certificate, "
                        + "but " + authz.describeRule() + " (tls-authz)");
            }
            if (!authz.allows(dn)) {
                ch.close();
                throw new MigrationException(Category.PROTOCOL, description + ": the client's certificate DN '"
                        + dn.getName(X500Principal.RFC2253) + "' is not allowed: " + authz.describeRule() + " (tls-authz)");
            }
        }
        return ch;
    }

    /**
     * Always offers this side's one certificate, even when the peer's list of trusted CAs does
     * not name its issuer, so that the peer refuses it with a reason instead of getting none.
     */
    private static final class OneKey extends javax.net.ssl.X509ExtendedKeyManager {
        private final X509Certificate[] chain;
        private final java.security.PrivateKey key;

        OneKey(X509Certificate[] chain, java.security.PrivateKey key) {
            this.chain = chain;
            this.key = key;
        }

        @Override
        public String chooseEngineClientAlias(String[] keyType, java.security.Principal[] issuers, SSLEngine engine) {
            return "self";
        }

        @Override
        public String chooseEngineServerAlias(String keyType, java.security.Principal[] issuers, SSLEngine engine) {
            return key.getAlgorithm().equals(keyType) || keyType.startsWith(key.getAlgorithm()) ? "self" : null;
        }

        @Override
        public String[] getClientAliases(String keyType, java.security.Principal[] issuers) {
            return new String[]{"self"};
        }

        @Override
        public String chooseClientAlias(String[] keyType, java.security.Principal[] issuers, java.net.Socket socket) {
            return "self";
        }

        @Override
        public String[] getServerAliases(String keyType, java.security.Principal[] issuers) {
            return new String[]{"self"};
        }

        @Override
        public String chooseServerAlias(String keyType, java.security.Principal[] issuers, java.net.Socket socket) {
            return "self";
        }

        @Override
        public X509Certificate[] getCertificateChain(String alias) {
            return "self".equals(alias) ? chain.clone() : null;
        }

        @Override
        public java.security.PrivateKey getPrivateKey(String alias) {
            return "self".equals(alias) ? key : null;
        }
    }

    /**
     * Runs the handshake's cryptography a few hundred times on a background thread, once per
     * process: a fresh JVM runs it interpreted, which made the first handshake of a migration
     * (its main channel) take seconds. Called when tls-creds-x509 objects are created, so the
     * work is done before a migration starts.
     */
    static void warmUp(TlsCredsX509 creds) {
        if (creds.key() == null || !WARMED.compareAndSet(false, true)) {
            return;
        }
        Thread.ofVirtual().name("tls/warm-up").start(() -> {
            try {
                String sigAlg = creds.key().getAlgorithm().equals("EC") ? "SHA256withECDSA" : "SHA256withRSA";
                java.security.PublicKey pub = creds.chain().getFirst().getPublicKey();
                byte[] msg = new byte[64];
                java.security.KeyPairGenerator x = java.security.KeyPairGenerator.getInstance("X25519");
                for (int i = 0; i < 300; i++) {
                    java.security.Signature sg = java.security.Signature.getInstance(sigAlg);
                    sg.initSign(creds.key());
                    sg.update(msg);
                    byte[] sig = sg.sign();
                    java.security.Signature v = java.security.Signature.getInstance(sigAlg);
                    v.initVerify(pub);
                    v.update(msg);
                    v.verify(sig);
                    java.security.KeyPair a = x.generateKeyPair();
                    java.security.KeyPair b = x.generateKeyPair();
                    javax.crypto.KeyAgreement ka = javax.crypto.KeyAgreement.getInstance("X25519");
                    ka.init(a.getPrivate());
                    ka.doPhase(b.getPublic(), true);
                    ka.generateSecret();
                }
                SSLContext.getInstance("TLSv1.3").init(null, null, null);
            } catch (GeneralSecurityException e) {
                // only a warm-up: the handshake will report any real problem
            }
        });
    }

    private static final java.util.concurrent.atomic.AtomicBoolean WARMED = new java.util.concurrent.atomic.AtomicBoolean();
}
