package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Properties of QEMU's "migration" object that machine types set through compat lists and that
 * {@code --global migration.PROP=VALUE} overrides, as QEMU's {@code -global}.
 *
 * @param sendSwitchoverStart           send MIG_CMD_SWITCHOVER_START at switchover (off for ≤ 9.2)
 * @param multifdFlushAfterEachSection  legacy per-section multifd sync (on for ≤ 8.0); recorded for
 *                                      the multifd wiring, no effect on the main channel alone
 */
public record MigrationProperties(boolean sendSwitchoverStart, boolean multifdFlushAfterEachSection) {
    /** The property names accepted after {@code migration.}. */
    public static final java.util.List<String> NAMES = java.util.List.of("send-switchover-start",
            "multifd-flush-after-each-section");

    /** The machine type's compat values with {@code --global} overrides applied. */
    public static MigrationProperties of(MachineType machine, Map<String, String> globals) {
        boolean sss = machine.sendSwitchoverStart();
        boolean flush = false;
        for (Map.Entry<String, String> e : globals.entrySet()) {
            if (CAPABILITIES.contains(e.getKey())) {
                continue; // set on the migration manager (VmCommand)
            }
            boolean v = parseBool(e.getKey(), e.getValue());
            switch (e.getKey()) {
                case "send-switchover-start" -> sss = v;
                case "multifd-flush-after-each-section" -> flush = v;
                default -> throw new MigrationException(Category.CONFIG, "--global migration." + e.getKey()
                        + ": unknown property, expected one of " + NAMES);
            }
        }
        return new MigrationProperties(sss, flush);
    }

    /**
     * Capabilities that {@code --global migration.CAP=on|off} sets when the VM starts (QEMU's
     * migration object has its capabilities as properties too), e.g. for an {@code --incoming}
     * that starts loading before a QMP client could set them.
     */
    public static final java.util.List<String> CAPABILITIES = java.util.List.of("x-jmigrate-digest");

    /**
     * Parses one {@code --global} option, {@code migration.PROP=VALUE}, into {@code into}
     * (capabilities of {@link #CAPABILITIES} included: the caller takes them out).
     */
    public static void parseGlobal(String option, Map<String, String> into) {
        int eq = option.indexOf('=');
        if (!option.startsWith("migration.") || eq < 0) {
            throw new MigrationException(Category.CONFIG, "--global '" + option
                    + "' must be migration.PROP=VALUE (e.g. migration.send-switchover-start=off)");
        }
        String prop = option.substring("migration.".length(), eq);
        if (!NAMES.contains(prop) && !CAPABILITIES.contains(prop)) {
            throw new MigrationException(Category.CONFIG, "--global migration." + prop
                    + ": unknown property, expected one of " + NAMES + " or a capability of " + CAPABILITIES);
        }
        String value = option.substring(eq + 1);
        parseBool(prop, value);
        into.put(prop, value);
    }

    static boolean parseBool(String prop, String v) {
        return switch (v) {
            case "on", "true", "yes" -> true;
            case "off", "false", "no" -> false;
            default -> throw new MigrationException(Category.CONFIG, "--global migration." + prop + "=" + v
                    + ": expected on or off");
        };
    }

    /** The capabilities of {@link #CAPABILITIES} in {@code globals} (parsed by {@link #parseGlobal}), name to on/off. */
    public static Map<String, Boolean> capabilities(Map<String, String> globals) {
        Map<String, Boolean> m = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : globals.entrySet()) {
            if (CAPABILITIES.contains(e.getKey())) {
                m.put(e.getKey(), parseBool(e.getKey(), e.getValue()));
            }
        }
        return m;
    }

    public Map<String, String> asMap() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("send-switchover-start", sendSwitchoverStart ? "on" : "off");
        m.put("multifd-flush-after-each-section", multifdFlushAfterEachSection ? "on" : "off");
        return m;
    }
}
