package io.jmigrate.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.migration.MigrationConfig;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.function.Function;

/**
 * The one reviewed place listing jmigrate's QMP protocol: every command with its arguments and
 * an example, every event. Names, argument names and error texts are QEMU's
 * (qapi/migration.json, PROTOCOL.md §5); {@code x-jmigrate-} commands are jmigrate's own.
 *
 * <pre>
 * → {"execute": "qmp_capabilities"}                        ← {"return": {}}
 * → {"execute": "query-commands"}                          ← {"return": [{"name": "qmp_capabilities"}, …]}
 * → {"execute": "query-version"}
 *   ← {"return": {"qemu": {"major": 10, "minor": 1, "micro": 0}, "package": "jmigrate 0.1.0"}}
 * → {"execute": "query-status"}                            ← {"return": {"running": true, "status": "running"}}
 * → {"execute": "stop"} / {"execute": "cont"}              ← {"return": {}}   (events STOP / RESUME)
 * → {"execute": "quit"}                                    ← {"return": {}}   then the process exits
 * → {"execute": "migrate", "arguments": {"uri": "tcp:127.0.0.1:4444"}}
 * → {"execute": "migrate-incoming", "arguments": {"uri": "unix:/tmp/mig.sock"}}   (needs --incoming defer)
 * → {"execute": "migrate_cancel"}
 * → {"execute": "migrate-set-capabilities",
 *    "arguments": {"capabilities": [{"capability": "events", "state": true}]}}
 * → {"execute": "migrate-set-parameters", "arguments": {"downtime-limit": 500, "max-bandwidth": 1073741824}}
 * → {"execute": "query-migrate"}   ← {"return": {"status": "active", "total-time": 812, "ram": {…}, …}}
 *   (on a destination also "socket-address": [{"type": "inet", "host": "127.0.0.1", "port": "4444"}])
 * → {"execute": "query-migrate-capabilities"}   ← {"return": [{"capability": "xbzrle", "state": false}, …]}
 * → {"execute": "query-migrate-parameters"}     ← {"return": {"downtime-limit": 300, …}}
 * → {"execute": "object-add", "arguments": {"qom-type": "tls-creds-x509", "id": "tls0", "dir": "/etc/pki/qemu",
 *    "endpoint": "server", "verify-peer": true}}
 * → {"execute": "object-add", "arguments": {"qom-type": "authz-list", "id": "auth0", "policy": "deny",
 *    "rules": [{"match": "CN=src.example.com,O=Example", "policy": "allow"}]}}
 * → {"execute": "object-del", "arguments": {"id": "auth0"}}
 * → {"execute": "qom-set", "arguments": {"path": "/machine/peripheral/vf0",
 *    "property": "x-migration-multifd-transfer", "value": "off"}}                   ← {"return": {}}
 * → {"execute": "qom-get", "arguments": {"path": "/machine/peripheral/vf0",
 *    "property": "x-migration-multifd-transfer"}}                                   ← {"return": "off"}
 * → {"execute": "x-jmigrate-query-digest"}      ← {"return": {"outgoing": "ab12…", "incoming": "", "current": "cd34…", …}}
 *   (outgoing and incoming only after a migration with capability x-jmigrate-digest; "" otherwise)
 * → {"execute": "x-jmigrate-query-workload"}    ← {"return": {"enabled": true, "ok": true, …}}
 * → {"execute": "x-jmigrate-query-jit-warm-up"} ← {"return": {"status": "done", "rounds": 13, "hot-methods-compiled": true, "time": 4100}}
 *   (status off, running, done, stopped (the VM's own migration began first) or failed, with error-desc)
 * events: MIGRATION {"status"}, MIGRATION_PASS {"pass"}, STOP {}, RESUME {},
 *   VFIO_MIGRATION {"device-id", "qom-path", "device-state"} (devices with migration-events=on)
 * </pre>
 */
public final class QmpSchema {
    private QmpSchema() {
    }

    /** Argument types as QEMU names them in "Invalid parameter type" errors. */
    public enum Type {
        STRING("string"), INTEGER("integer"), BOOLEAN("boolean"), ARRAY("array"), OBJECT("object"), ANY("any");

        final String qapiName;

        Type(String qapiName) {
            this.qapiName = qapiName;
        }

        boolean matches(JsonNode n) {
            return switch (this) {
                case STRING -> n.isTextual();
                case INTEGER -> n.isIntegralNumber() && n.canConvertToLong();
                case BOOLEAN -> n.isBoolean();
                case ARRAY -> n.isArray();
                case OBJECT -> n.isObject();
                case ANY -> !n.isNull();
            };
        }
    }

    public record Arg(String name, Type type, boolean required) {
    }

    /** One command: name, the record it decodes to, arguments, decoder. */
    public record Spec<T extends QmpCommand>(String name, Class<T> type, List<Arg> args,
                                             Function<ObjectNode, T> decode) {
    }

    private static Arg req(String name, Type t) {
        return new Arg(name, t, true);
    }

    private static Arg opt(String name, Type t) {
        return new Arg(name, t, false);
    }

    /**
     * Every command, in the order {@code query-commands} lists them. This is the one list: the
     * session decodes through it, {@code query-commands} answers from it, and each entry names the
     * {@link QmpCommand} record it decodes to (checked by the compiler), which the dispatcher's
     * exhaustive switch handles.
     */
    public static final List<Spec<?>> COMMANDS = List.of(
            new Spec<>("qmp_capabilities", QmpCommand.QmpCapabilities.class, List.of(opt("enable", Type.ARRAY)),
                    a -> new QmpCommand.QmpCapabilities()),
            new Spec<>("query-commands", QmpCommand.QueryCommands.class, List.of(), a -> new QmpCommand.QueryCommands()),
            new Spec<>("query-version", QmpCommand.QueryVersion.class, List.of(), a -> new QmpCommand.QueryVersion()),
            new Spec<>("query-status", QmpCommand.QueryStatus.class, List.of(), a -> new QmpCommand.QueryStatus()),
            new Spec<>("stop", QmpCommand.Stop.class, List.of(), a -> new QmpCommand.Stop()),
            new Spec<>("cont", QmpCommand.Cont.class, List.of(), a -> new QmpCommand.Cont()),
            new Spec<>("quit", QmpCommand.Quit.class, List.of(), a -> new QmpCommand.Quit()),
            new Spec<>("migrate", QmpCommand.Migrate.class, List.of(req("uri", Type.STRING),
                    opt("detach", Type.BOOLEAN), opt("resume", Type.BOOLEAN)), QmpSchema::migrate),
            new Spec<>("migrate-incoming", QmpCommand.MigrateIncoming.class,
                    List.of(req("uri", Type.STRING), opt("exit-on-error", Type.BOOLEAN)),
                    a -> new QmpCommand.MigrateIncoming(a.get("uri").asText())),
            new Spec<>("migrate_cancel", QmpCommand.MigrateCancel.class, List.of(), a -> new QmpCommand.MigrateCancel()),
            new Spec<>("migrate-set-capabilities", QmpCommand.MigrateSetCapabilities.class,
                    List.of(req("capabilities", Type.ARRAY)), QmpSchema::setCapabilities),
            new Spec<>("migrate-set-parameters", QmpCommand.MigrateSetParameters.class, parameterArgs(),
                    QmpSchema::setParameters),
            new Spec<>("query-migrate", QmpCommand.QueryMigrate.class, List.of(), a -> new QmpCommand.QueryMigrate()),
            new Spec<>("query-migrate-capabilities", QmpCommand.QueryMigrateCapabilities.class, List.of(),
                    a -> new QmpCommand.QueryMigrateCapabilities()),
            new Spec<>("query-migrate-parameters", QmpCommand.QueryMigrateParameters.class, List.of(),
                    a -> new QmpCommand.QueryMigrateParameters()),
            new Spec<>("object-add", QmpCommand.ObjectAdd.class, List.of(req("qom-type", Type.STRING),
                    req("id", Type.STRING), opt("dir", Type.STRING), opt("endpoint", Type.STRING),
                    opt("verify-peer", Type.BOOLEAN), opt("identity", Type.STRING), opt("policy", Type.STRING),
                    opt("rules", Type.ARRAY)), QmpSchema::objectAdd),
            new Spec<>("qom-set", QmpCommand.QomSet.class, List.of(req("path", Type.STRING),
                    req("property", Type.STRING), req("value", Type.ANY)), QmpSchema::qomSet),
            new Spec<>("qom-get", QmpCommand.QomGet.class, List.of(req("path", Type.STRING),
                    req("property", Type.STRING)),
                    a -> new QmpCommand.QomGet(a.get("path").asText(), a.get("property").asText())),
            new Spec<>("object-del", QmpCommand.ObjectDel.class, List.of(req("id", Type.STRING)),
                    a -> new QmpCommand.ObjectDel(a.get("id").asText())),
            new Spec<>("x-jmigrate-query-digest", QmpCommand.XJmigrateQueryDigest.class, List.of(),
                    a -> new QmpCommand.XJmigrateQueryDigest()),
            new Spec<>("x-jmigrate-query-workload", QmpCommand.XJmigrateQueryWorkload.class, List.of(),
                    a -> new QmpCommand.XJmigrateQueryWorkload()),
            new Spec<>("x-jmigrate-query-jit-warm-up", QmpCommand.XJmigrateQueryJitWarmUp.class, List.of(),
                    a -> new QmpCommand.XJmigrateQueryJitWarmUp()));

    /** The command names, in list order: the {@code query-commands} answer. */
    public static List<String> commandNames() {
        return COMMANDS.stream().<String>map(Spec::name).toList();
    }

    /**
     * The QEMU version whose QMP and migration protocol jmigrate speaks (the default machine type
     * is jm-10.1): reported in the greeting and by {@code query-version}.
     */
    public static final int QEMU_MAJOR = 10;
    public static final int QEMU_MINOR = 1;
    public static final int QEMU_MICRO = 0;

    /** jmigrate's own version, from the jar's Maven descriptor; "dev" when run from classes. */
    public static final String PACKAGE = "jmigrate " + jmigrateVersion();

    /** QEMU's {@code VersionInfo}: {"qemu": {"major", "minor", "micro"}, "package"}. */
    public static Map<String, Object> versionInfo() {
        Map<String, Object> qemu = new LinkedHashMap<>();
        qemu.put("major", QEMU_MAJOR);
        qemu.put("minor", QEMU_MINOR);
        qemu.put("micro", QEMU_MICRO);
        Map<String, Object> v = new LinkedHashMap<>();
        v.put("qemu", qemu);
        v.put("package", PACKAGE);
        return v;
    }

    /** jmigrate's version: the jar manifest's, else its Maven descriptor's, else "dev" (run from classes). */
    public static String jmigrateVersion() {
        String v = QmpSchema.class.getPackage().getImplementationVersion();
        if (v != null) {
            return v;
        }
        try (var in = QmpSchema.class.getResourceAsStream("/META-INF/maven/io.jmigrate/jmigrate/pom.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                String pv = p.getProperty("version");
                if (pv != null && !pv.isBlank()) {
                    return pv.trim();
                }
            }
        } catch (IOException e) {
            // fall through: the version is informative only
        }
        return "dev";
    }

    /** Every event jmigrate emits. */
    public static final List<String> EVENTS = List.of("MIGRATION", "MIGRATION_PASS", "STOP", "RESUME",
            "VFIO_MIGRATION");

    private static List<Arg> parameterArgs() {
        List<Arg> l = new ArrayList<>();
        for (String p : MigrationConfig.PARAMETERS) {
            l.add(opt(p, MigrationConfig.isIntegerParameter(p) ? Type.INTEGER : Type.STRING));
        }
        return List.copyOf(l);
    }

    private static QmpCommand.Migrate migrate(ObjectNode a) {
        if (a.has("resume") && a.get("resume").asBoolean()) {
            throw QmpError.generic("Parameter 'resume' is only for postcopy recovery, which jmigrate does not support");
        }
        return new QmpCommand.Migrate(a.get("uri").asText());
    }

    private static QmpCommand.MigrateSetCapabilities setCapabilities(ObjectNode a) {
        List<Map.Entry<String, Boolean>> caps = new ArrayList<>();
        int i = 0;
        for (JsonNode c : a.get("capabilities")) {
            String where = "capabilities[" + i++ + "]";
            if (!c.isObject()) {
                throw QmpError.generic("Invalid parameter type for '" + where + "', expected: object");
            }
            JsonNode name = c.get("capability");
            JsonNode state = c.get("state");
            if (name == null) {
                throw QmpError.generic("Parameter '" + where + ".capability' is missing");
            }
            if (state == null) {
                throw QmpError.generic("Parameter '" + where + ".state' is missing");
            }
            if (!name.isTextual()) {
                throw QmpError.generic("Invalid parameter type for '" + where + ".capability', expected: string");
            }
            if (!state.isBoolean()) {
                throw QmpError.generic("Invalid parameter type for '" + where + ".state', expected: boolean");
            }
            for (Iterator<String> it = c.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                if (!f.equals("capability") && !f.equals("state")) {
                    throw QmpError.generic("Parameter '" + where + "." + f + "' is unexpected");
                }
            }
            caps.add(Map.entry(name.asText(), state.asBoolean()));
        }
        return new QmpCommand.MigrateSetCapabilities(caps);
    }

    private static QmpCommand.MigrateSetParameters setParameters(ObjectNode a) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = a.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getValue().isNull()) {
                if (e.getKey().startsWith("tls-")) {
                    m.put(e.getKey(), ""); // StrOrNull: null unsets, as ""
                }
                continue;
            }
            m.put(e.getKey(), e.getValue().isIntegralNumber() ? (Object) e.getValue().asLong() : e.getValue().asText());
        }
        return new QmpCommand.MigrateSetParameters(m);
    }

    /** qom-set: the value in its text form (booleans as on/off, numbers in decimal). */
    private static QmpCommand.QomSet qomSet(ObjectNode a) {
        JsonNode v = a.get("value");
        String text;
        if (v.isBoolean()) {
            text = v.asBoolean() ? "on" : "off";
        } else if (v.isIntegralNumber()) {
            text = v.bigIntegerValue().toString();
        } else if (v.isTextual()) {
            text = v.asText();
        } else {
            throw QmpError.generic("Invalid parameter type for 'value', expected: string, number or boolean");
        }
        return new QmpCommand.QomSet(a.get("path").asText(), a.get("property").asText(), text);
    }

    /** object-add: the properties other than qom-type and id, flattened to keyval form. */
    private static QmpCommand.ObjectAdd objectAdd(ObjectNode a) {
        Map<String, String> props = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = a.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getKey().equals("qom-type") && !e.getKey().equals("id") && !e.getValue().isNull()) {
                flatten(e.getKey(), e.getValue(), props, 0);
            }
        }
        return new QmpCommand.ObjectAdd(a.get("qom-type").asText(), a.get("id").asText(), props);
    }

    private static void flatten(String prefix, JsonNode v, Map<String, String> out, int depth) {
        if (depth > 3 || out.size() > 1024) {
            throw QmpError.generic("Parameter '" + prefix + "' is nested too deeply or has too many members");
        }
        if (v.isArray()) {
            int i = 0;
            for (JsonNode x : v) {
                flatten(prefix + "." + i++, x, out, depth + 1);
            }
        } else if (v.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                flatten(prefix + "." + e.getKey(), e.getValue(), out, depth + 1);
            }
        } else if (v.isBoolean()) {
            out.put(prefix, v.asBoolean() ? "on" : "off");
        } else {
            out.put(prefix, v.asText());
        }
    }

    public static Spec<?> find(String name) {
        for (Spec<?> s : COMMANDS) {
            if (s.name().equals(name)) {
                return s;
            }
        }
        return null;
    }

    /**
     * Decodes one {@code execute}: unknown command → CommandNotFound; missing, unexpected or
     * wrongly typed arguments → GenericError with QEMU's wording.
     */
    public static QmpCommand decode(String name, JsonNode arguments) {
        Spec<?> spec = find(name);
        if (spec == null) {
            throw new QmpError(QmpError.COMMAND_NOT_FOUND, "The command " + name + " has not been found");
        }
        if (arguments != null && !arguments.isObject()) {
            throw QmpError.generic("QMP input member 'arguments' must be an object");
        }
        ObjectNode args = arguments == null ? new com.fasterxml.jackson.databind.node.ObjectNode(
                com.fasterxml.jackson.databind.node.JsonNodeFactory.instance) : (ObjectNode) arguments;
        for (Iterator<String> it = args.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (spec.args().stream().noneMatch(a -> a.name().equals(f))) {
                throw QmpError.generic("Parameter '" + f + "' is unexpected");
            }
        }
        for (Arg a : spec.args()) {
            JsonNode v = args.get(a.name());
            if (v == null || v.isNull()) {
                if (a.required()) {
                    throw QmpError.generic("Parameter '" + a.name() + "' is missing");
                }
                continue;
            }
            if (!a.type().matches(v)) {
                throw QmpError.generic("Invalid parameter type for '" + a.name() + "', expected: " + a.type().qapiName);
            }
        }
        return spec.decode().apply(args);
    }
}
