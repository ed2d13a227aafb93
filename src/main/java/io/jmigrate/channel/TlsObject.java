package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * A user-creatable object that TLS migration uses: {@code --object TYPE,id=ID,PROP=VALUE,...} on
 * the command line or QMP {@code object-add} (QEMU's {@code user_creatable_add}). The types are
 * {@link TlsCredsX509} ({@code tls-creds-x509}) and {@link TlsAuthz} ({@code authz-simple},
 * {@code authz-list}).
 */
public sealed interface TlsObject permits TlsCredsX509, TlsAuthz {
    /** Longest object id accepted. */
    int MAX_ID_LENGTH = 128;

    String id();

    /** The QOM type name, e.g. {@code tls-creds-x509}. */
    String type();

    /** The type names {@link #create} knows. */
    Set<String> TYPES = Set.of(TlsCredsX509.TYPE, TlsAuthz.Simple.TYPE, TlsAuthz.ListAuthz.TYPE);

    /**
     * Creates an object; {@code props} are its properties in keyval form (nested lists as
     * {@code rules.0.match}), without {@code qom-type} and {@code id}.
     *
     * @throws MigrationException CONFIG naming the type, id and property that are wrong
     */
    static TlsObject create(String type, String id, Map<String, String> props) {
        checkId(id);
        return switch (type) {
            case TlsCredsX509.TYPE -> TlsCredsX509.create(id, props);
            case TlsAuthz.Simple.TYPE -> TlsAuthz.Simple.create(id, props);
            case TlsAuthz.ListAuthz.TYPE -> TlsAuthz.ListAuthz.create(id, props);
            default -> throw new MigrationException(Category.CONFIG, "invalid object type: " + type
                    + " (jmigrate has tls-creds-x509, authz-simple and authz-list)");
        };
    }

    /**
     * Parses the command-line form {@code TYPE,id=ID,KEY=VALUE,...}: a comma inside a value is
     * written twice ({@code identity=CN=client,,O=Example}), as in QEMU's option syntax.
     */
    static TlsObject parse(String text) {
        Map<String, String> kv = new LinkedHashMap<>();
        String type = null;
        int i = 0;
        int n = text.length();
        boolean first = true;
        while (i <= n) {
            StringBuilder part = new StringBuilder();
            while (i < n) {
                char c = text.charAt(i);
                if (c == ',') {
                    if (i + 1 < n && text.charAt(i + 1) == ',') {
                        part.append(',');
                        i += 2;
                        continue;
                    }
                    break;
                }
                part.append(c);
                i++;
            }
            i++;
            String p = part.toString();
            int eq = p.indexOf('=');
            if (first) {
                first = false;
                if (eq < 0) {
                    type = p;
                    continue;
                }
                if (p.startsWith("qom-type=")) {
                    type = p.substring("qom-type=".length());
                    continue;
                }
            }
            if (eq <= 0) {
                throw new MigrationException(Category.CONFIG, "--object '" + text + "': '" + p
                        + "' is not KEY=VALUE (write a comma inside a value as ,,)");
            }
            String key = p.substring(0, eq);
            if (kv.put(key, p.substring(eq + 1)) != null) {
                throw new MigrationException(Category.CONFIG, "--object '" + text + "': property '" + key
                        + "' given twice");
            }
        }
        if (type == null || type.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "--object '" + text + "': the object type is missing "
                    + "(e.g. tls-creds-x509,id=tls0,dir=DIR,endpoint=server)");
        }
        String id = kv.remove("id");
        if (id == null) {
            throw new MigrationException(Category.CONFIG, "--object '" + text + "': Parameter 'id' is missing");
        }
        return create(type, id, kv);
    }

    static void checkId(String id) {
        if (id == null || id.isEmpty() || id.length() > MAX_ID_LENGTH || !Character.isLetter(id.charAt(0))
                || !id.chars().allMatch(c -> c < 128 && (Character.isLetterOrDigit(c) || c == '-' || c == '_' || c == '.'))) {
            throw new MigrationException(Category.CONFIG, "Parameter 'id' expects an identifier (a letter, then "
                    + "letters, digits, '-', '.', '_', at most " + MAX_ID_LENGTH + " characters): '" + id + "'");
        }
    }

    /** Refuses properties that the type does not have (list members are checked by their owner). */
    static void checkKeys(String type, String id, Map<String, String> props, String... known) {
        Set<String> k = Set.of(known);
        for (String key : props.keySet()) {
            String head = key.contains(".") ? key.substring(0, key.indexOf('.')) : key;
            if (!k.contains(key) && !k.contains(head + ".*")) {
                throw new MigrationException(Category.CONFIG, type + " '" + id + "': Property '" + key
                        + "' not found (it has " + String.join(", ", known).replace(".*", "") + ")");
            }
        }
    }

    static boolean bool(String type, String id, String name, String v) {
        return switch (v) {
            case "on", "yes", "true" -> true;
            case "off", "no", "false" -> false;
            default -> throw new MigrationException(Category.CONFIG, type + " '" + id + "': Parameter '" + name
                    + "' expects 'on' or 'off', not '" + v + "'");
        };
    }
}
