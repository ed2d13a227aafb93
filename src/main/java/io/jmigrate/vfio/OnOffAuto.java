package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

/** QEMU's {@code OnOffAuto} property type. */
public enum OnOffAuto {
    ON, OFF, AUTO;

    public String qapiName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }

    public static OnOffAuto parse(String property, String v) {
        return switch (v) {
            case "on", "true" -> ON;
            case "off", "false" -> OFF;
            case "auto" -> AUTO;
            default -> throw new MigrationException(Category.CONFIG, "property '" + property + "': '" + v
                    + "' must be on, off or auto");
        };
    }
}
