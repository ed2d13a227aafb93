package io.jmigrate.channel;

import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;
import javax.security.auth.x500.X500Principal;
import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;

/**
 * Checks a peer's certificate in steps that each give their own reason, so that a refused
 * handshake names its cause: validity dates first, then the chain to the CA of
 * {@code ca-cert.pem} (PKIX), then, on a client, the server's names against the host name, and on
 * a server, the client's DN against {@code tls-authz}.
 */
final class TlsTrust extends X509ExtendedTrustManager {
    /** A certificate refused for a reason stated in its message. */
    static final class Rejected extends CertificateException {
        Rejected(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final X509ExtendedTrustManager pkix;
    private final TlsCredsX509 creds;
    /** The host name a client checks, or null (server, or a client that does not verify). */
    private final String hostname;
    private final TlsAuthz authz;

    TlsTrust(X509ExtendedTrustManager pkix, TlsCredsX509 creds, String hostname, TlsAuthz authz) {
        this.pkix = pkix;
        this.creds = creds;
        this.hostname = hostname;
        this.authz = authz;
    }

    /** The reason a handshake failed, if this class gave one (anywhere in the cause chain). */
    static String reason(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof Rejected r) {
                return r.getMessage();
            }
        }
        return null;
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
        checkClient(chain, authType);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
        checkClient(chain, authType);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        checkClient(chain, authType);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
        checkServer(chain, authType, engine);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
        throw new CertificateException("jmigrate's TLS runs on SSLEngine only");
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        throw new CertificateException("jmigrate's TLS runs on SSLEngine only");
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
        return pkix.getAcceptedIssuers();
    }

    private void checkClient(X509Certificate[] chain, String authType) throws CertificateException {
        String who = "the client's certificate";
        validity(chain, who);
        try {
            pkix.checkClientTrusted(chain, authType);
        } catch (CertificateException e) {
            throw untrusted(chain, who, e);
        }
        if (authz != null) {
            X500Principal dn = chain[0].getSubjectX500Principal();
            if (!authz.allows(dn)) {
                throw new Rejected("the client's certificate DN '" + dn.getName(X500Principal.RFC2253)
                        + "' is not allowed: " + authz.describeRule() + " (tls-authz)", null);
            }
        }
    }

    private void checkServer(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
        if (!creds.verifyPeer()) {
            return;
        }
        String who = "the server's certificate";
        validity(chain, who);
        try {
            pkix.checkServerTrusted(chain, authType);
        } catch (CertificateException e) {
            throw untrusted(chain, who, e);
        }
        if (hostname != null) {
            try {
                pkix.checkServerTrusted(chain, authType, engine); // with HTTPS endpoint identification
            } catch (CertificateException e) {
                throw new Rejected(who + " '" + subject(chain[0]) + "' (names: " + names(chain[0])
                        + ") does not match the host name '" + hostname + "' (tls-hostname, or the host of the "
                        + "migration URI)", e);
            }
        }
    }

    private static void validity(X509Certificate[] chain, String who) throws Rejected {
        Date now = new Date();
        for (int i = 0; i < chain.length; i++) {
            X509Certificate c = chain[i];
            String what = i == 0 ? who : who + "'s issuer";
            try {
                c.checkValidity(now);
            } catch (CertificateExpiredException e) {
                throw new Rejected(what + " '" + subject(c) + "' expired on " + c.getNotAfter().toInstant()
                        + " (valid from " + c.getNotBefore().toInstant() + ")", e);
            } catch (CertificateNotYetValidException e) {
                throw new Rejected(what + " '" + subject(c) + "' is not valid before "
                        + c.getNotBefore().toInstant(), e);
            }
        }
    }

    private Rejected untrusted(X509Certificate[] chain, String who, CertificateException e) {
        List<String> cas = new ArrayList<>();
        for (X509Certificate ca : creds.ca()) {
            cas.add(subject(ca));
        }
        return new Rejected(who + " '" + subject(chain[0]) + "' (issued by '"
                + chain[0].getIssuerX500Principal().getName(X500Principal.RFC2253) + "') is not signed by a CA in "
                + creds.dir().resolve(TlsCredsX509.CA_CERT) + " ('" + String.join("', '", cas) + "'): "
                + e.getMessage(), e);
    }

    static String subject(X509Certificate c) {
        return c.getSubjectX500Principal().getName(X500Principal.RFC2253);
    }

    private static String names(X509Certificate c) {
        List<String> out = new ArrayList<>();
        try {
            if (c.getSubjectAlternativeNames() != null) {
                for (List<?> n : c.getSubjectAlternativeNames()) {
                    int type = (Integer) n.get(0);
                    out.add((type == 2 ? "DNS:" : type == 7 ? "IP:" : type + ":") + n.get(1));
                }
            }
        } catch (CertificateParsingException e) {
            out.add("unreadable subjectAltName");
        }
        return out.isEmpty() ? "no subjectAltName" : String.join(", ", out);
    }
}
