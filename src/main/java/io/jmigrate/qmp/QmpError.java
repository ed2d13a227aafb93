package io.jmigrate.qmp;

import io.jmigrate.common.MigrationException;

/**
 * A QMP error reply: {@code {"error": {"class": CLASS, "desc": DESC}}}. QEMU uses
 * {@code GenericError} for nearly everything and {@code CommandNotFound} for unknown commands
 * and commands before capability negotiation.
 */
public final class QmpError extends RuntimeException {
    public static final String GENERIC = "GenericError";
    public static final String COMMAND_NOT_FOUND = "CommandNotFound";

    private final String errorClass;

    public QmpError(String errorClass, String desc) {
        super(desc);
        this.errorClass = errorClass;
    }

    public static QmpError generic(String desc) {
        return new QmpError(GENERIC, desc);
    }

    public static QmpError of(MigrationException e) {
        return generic(e.getMessage());
    }

    public String errorClass() {
        return errorClass;
    }
}
