package io.jmigrate.common;

import java.util.Map;

/**
 * Where lower layers (machine, migration) publish QMP-style events such as {@code STOP},
 * {@code RESUME}, {@code MIGRATION} and {@code MIGRATION_PASS}. The QMP server implements it and
 * broadcasts to every negotiated session; {@link #NONE} drops events.
 */
@FunctionalInterface
public interface EventSink {
    EventSink NONE = (event, data) -> { };

    /** Publishes {@code event} with its {@code data} members (QEMU's names and JSON types). */
    void emit(String event, Map<String, Object> data);
}
