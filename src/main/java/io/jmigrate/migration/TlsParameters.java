package io.jmigrate.migration;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

/**
 * The migration parameters {@code tls-creds}, {@code tls-hostname} and {@code tls-authz}, as
 * QEMU has them: strings, empty when unset (query-migrate-parameters shows "").
 */
public record TlsParameters(String creds, String hostname, String authz) {
    public static final TlsParameters NONE = new TlsParameters("", "", "");
    /** Longest value accepted (an object id, or a DNS name of at most 253 characters). */
    public static final int MAX_LENGTH = 255;

    public TlsParameters {
        creds = creds == null ? "" : creds;
        hostname = hostname == null ? "" : hostname;
        authz = authz == null ? "" : authz;
    }

    /** A copy with one parameter set (an empty string or JSON null unsets it). */
    TlsParameters with(String name, String value) {
        String v = value == null ? "" : value;
        if (v.length() > MAX_LENGTH || v.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
            throw new MigrationException(Category.CONFIG, "Parameter '" + name + "' expects a name of at most "
                    + MAX_LENGTH + " printable characters");
        }
        return switch (name) {
            case "tls-creds" -> new TlsParameters(v, hostname, authz);
            case "tls-hostname" -> new TlsParameters(creds, v, authz);
            case "tls-authz" -> new TlsParameters(creds, hostname, v);
            default -> throw new MigrationException(Category.CONFIG, "Parameter '" + name + "' is unexpected");
        };
    }
}
