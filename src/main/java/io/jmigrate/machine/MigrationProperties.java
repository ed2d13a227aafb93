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
     * Parses one {@code --global} option, {@code migration.PROP=VALUE}, into {@code into}.
     */
    public static void parseGlobal(String option, Map<String, String> into) {
        int eq = option.indexOf('=');
        if (!option.startsWith("migration.") || eq < 0) {
            throw new MigrationException(Category.CONFIG, "--global '" + option
                    + "' must be migration.PROP=VALUE (e.g. migration.send-switchover-start=off)");
        }
        String prop = option.substring("migration.".length(), eq);
        if (!NAMES.contains(prop)) {
            throw new MigrationException(Category.CONFIG, "--global migration." + prop
                    + ": unknown property, expected one of " + NAMES);
        }
        String value = option.substring(eq + 1);
        parseBool(prop, value);
        into.put(prop, value);
    }

    private static boolean parseBool(String prop, String v) {
        return switch (v) {
            case "on", "true", "yes" -> true;
            case "off", "false", "no" -> false;
            default -> throw new MigrationException(Category.CONFIG, "--global migration." + prop + "=" + v
                    + ": expected on or off");
        };
    }

    public Map<String, String> asMap() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("send-switchover-start", sendSwitchoverStart ? "on" : "off");
        m.put("multifd-flush-after-each-section", multifdFlushAfterEachSection ? "on" : "off");
        return m;
    }
}
