package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import javax.security.auth.x500.X500Principal;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * QEMU's authorization objects (authz/simple.c, authz/list.c), which {@code tls-authz} names: the
 * destination checks the distinguished name of the client certificate of every incoming
 * connection against them, after the certificate itself was verified.
 *
 * <p>DNs are compared as X.500 names (RFC 4514 text such as {@code CN=source,O=Example}; case and
 * spacing of attribute values do not matter, the order of the RDNs does). Glob rules match the
 * RFC 2253 text of the DN with {@code *} and {@code ?}.
 */
public sealed interface TlsAuthz extends TlsObject {
    /** Whether {@code dn} (the client certificate's subject) may connect. */
    boolean allows(X500Principal dn);

    /** What this object allows, for error messages. */
    String describeRule();

    /** {@code --object authz-simple,id=auth0,identity=DN} (commas in the DN doubled on the command line). */
    record Simple(String id, String identity, X500Principal principal) implements TlsAuthz {
        public static final String TYPE = "authz-simple";

        @Override
        public String type() {
            return TYPE;
        }

        static Simple create(String id, Map<String, String> props) {
            TlsObject.checkKeys(TYPE, id, props, "identity");
            String identity = props.get("identity");
            if (identity == null) {
                throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': Parameter 'identity' is missing");
            }
            return new Simple(id, identity, dn(TYPE, id, identity));
        }

        @Override
        public boolean allows(X500Principal dn) {
            return principal.equals(dn);
        }

        @Override
        public String describeRule() {
            return TYPE + " '" + id + "' allows only '" + identity + "'";
        }
    }

    /** One rule of an {@code authz-list}: {@code match} is a DN ({@code exact}) or a glob over its text. */
    record Rule(String match, boolean allow, boolean glob, X500Principal exact, Pattern pattern) {
        boolean matches(X500Principal dn) {
            return glob ? pattern.matcher(dn.getName(X500Principal.RFC2253)).matches() : exact.equals(dn);
        }
    }

    /**
     * {@code --object authz-list,id=auth0,policy=deny,rules.0.match=CN=src,,O=Example,rules.0.policy=allow}
     * or QMP {@code object-add} with {@code "rules": [{"match": "CN=src,O=Example", "policy": "allow"}]};
     * rules are tried in order, the first match decides, {@code policy} (default deny) applies
     * when none matches. Each rule may have {@code "format": "exact"} (default) or {@code "glob"}.
     */
    record ListAuthz(String id, boolean defaultAllow, List<Rule> rules) implements TlsAuthz {
        public static final String TYPE = "authz-list";
        /** At most this many rules. */
        public static final int MAX_RULES = 256;

        public ListAuthz {
            rules = List.copyOf(rules);
        }

        @Override
        public String type() {
            return TYPE;
        }

        static ListAuthz create(String id, Map<String, String> props) {
            TlsObject.checkKeys(TYPE, id, props, "policy", "rules.*");
            boolean def = policy(id, "policy", props.getOrDefault("policy", "deny"));
            List<Rule> rules = new ArrayList<>();
            for (int i = 0; ; i++) {
                String p = "rules." + i + ".";
                String match = props.get(p + "match");
                if (match == null) {
                    break;
                }
                if (i >= MAX_RULES) {
                    throw new MigrationException(Category.LIMIT, TYPE + " '" + id + "': more than " + MAX_RULES + " rules");
                }
                boolean allow = policy(id, p + "policy", props.getOrDefault(p + "policy", "allow"));
                String format = props.getOrDefault(p + "format", "exact");
                switch (format) {
                    case "exact" -> rules.add(new Rule(match, allow, false, dn(TYPE, id, match), null));
                    case "glob" -> rules.add(new Rule(match, allow, true, null, glob(match)));
                    default -> throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': Parameter '"
                            + p + "format' does not accept value '" + format + "' (expected exact or glob)");
                }
            }
            for (String k : props.keySet()) {
                if (k.startsWith("rules.")) {
                    String[] parts = k.split("\\.", 3);
                    int idx;
                    try {
                        idx = Integer.parseInt(parts[1]);
                    } catch (NumberFormatException e) {
                        idx = -1;
                    }
                    if (parts.length != 3 || idx < 0 || idx >= rules.size()
                            || !List.of("match", "policy", "format").contains(parts[2])) {
                        throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': property '" + k
                                + "' is not rules.N.match|policy|format of a rule 0.." + (rules.size() - 1)
                                + " that has a match");
                    }
                }
            }
            return new ListAuthz(id, def, rules);
        }

        @Override
        public boolean allows(X500Principal dn) {
            for (Rule r : rules) {
                if (r.matches(dn)) {
                    return r.allow();
                }
            }
            return defaultAllow;
        }

        @Override
        public String describeRule() {
            StringBuilder b = new StringBuilder(TYPE + " '" + id + "' allows ");
            List<String> allowed = rules.stream().filter(Rule::allow).map(Rule::match).toList();
            b.append(allowed.isEmpty() ? "no listed DN" : "'" + String.join("', '", allowed) + "'");
            b.append(defaultAllow ? " (and any DN not denied)" : "");
            return b.toString();
        }

        private static boolean policy(String id, String name, String v) {
            return switch (v) {
                case "allow" -> true;
                case "deny" -> false;
                default -> throw new MigrationException(Category.CONFIG, TYPE + " '" + id + "': Parameter '" + name
                        + "' does not accept value '" + v + "' (expected allow or deny)");
            };
        }

        private static Pattern glob(String g) {
            StringBuilder re = new StringBuilder();
            for (char c : g.toCharArray()) {
                switch (c) {
                    case '*' -> re.append(".*");
                    case '?' -> re.append('.');
                    default -> re.append(Pattern.quote(String.valueOf(c)));
                }
            }
            return Pattern.compile(re.toString(), Pattern.DOTALL);
        }
    }

    private static X500Principal dn(String type, String id, String text) {
        try {
            return new X500Principal(text);
        } catch (IllegalArgumentException e) {
            throw new MigrationException(Category.CONFIG, type + " '" + id + "': '" + text
                    + "' is not a distinguished name such as CN=host,O=Example: " + e.getMessage(), e);
        }
    }
}
