package io.jmigrate.migration;

import io.jmigrate.channel.MigrationUri;

import io.jmigrate.common.EventSink;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The migration object of one VM process: its capabilities and parameters, the current (or
 * last) outgoing migration and the incoming one. This is the facade QMP talks to; it checks the
 * state rules with QEMU's messages (no migrate while one is active, capabilities frozen while
 * active, migrate-incoming only with {@code --incoming defer}).
 */
public final class MigrationManager {
    private final MigrationSubject subject;
    private final EventSink events;
    private volatile MigrationConfig config = MigrationConfig.DEFAULT;
    private OutgoingMigration outgoing;
    private IncomingMigration incoming;
    private boolean incomingDeferred;

    public MigrationManager(MigrationSubject subject, EventSink events) {
        this.subject = subject;
        this.events = events;
    }

    public MigrationConfig config() {
        return config;
    }

    /**
     * An outgoing migration is running, or an incoming one is loading. An incoming migration that
     * is only listening (setup) still accepts capability changes, as in QEMU.
     */
    private boolean anyActive() {
        return (outgoing != null && outgoing.state().get().isActive())
                || (incoming != null && incoming.state().get().isActive()
                    && incoming.state().get() != MigrationStatus.SETUP);
    }

    private static MigrationException inProgress() {
        return new MigrationException(Category.STATE, "There's a migration process in progress");
    }

    /** {@code migrate-set-capabilities}: all or nothing. */
    public synchronized void setCapabilities(List<Map.Entry<Capability, Boolean>> caps) {
        if (anyActive()) {
            throw inProgress();
        }
        MigrationConfig c = config;
        for (Map.Entry<Capability, Boolean> e : caps) {
            c = c.withCapability(e.getKey(), e.getValue());
        }
        if (c.has(Capability.SWITCHOVER_ACK) && !c.has(Capability.RETURN_PATH)) {
            throw new MigrationException(Category.CONFIG, "Capability 'switchover-ack' requires capability 'return-path'");
        }
        if (c.multifd() != config.multifd() && incoming != null && incoming.state().get().isActive()) {
            throw new MigrationException(Category.STATE, "capability 'multifd' must be set before the incoming "
                    + "migration starts (start the VM with --incoming defer, set it, then migrate-incoming)");
        }
        config = c;
    }

    /** {@code migrate-set-parameters}: all or nothing; applies live to a running migration. */
    public synchronized void setParameters(Map<String, Object> params) {
        MigrationConfig c = config;
        for (Map.Entry<String, Object> e : params.entrySet()) {
            c = c.withParameter(e.getKey(), e.getValue());
        }
        config = c;
    }

    /** {@code migrate uri}. */
    public synchronized OutgoingMigration migrate(String uri) {
        if (anyActive() || (incoming != null && incoming.state().get().isActive())) {
            throw inProgress();
        }
        if (incoming != null || incomingDeferred) {
            if (incoming == null || incoming.state().get() != MigrationStatus.COMPLETED) {
                throw new MigrationException(Category.STATE, "Guest is waiting for an incoming migration");
            }
        }
        MigrationUri u = MigrationUri.parse(uri);
        MigrationState st = new MigrationState(events, () -> config.has(Capability.EVENTS));
        OutgoingMigration m = new OutgoingMigration(subject, this::config, u, st, events);
        m.start();
        outgoing = m;
        return m;
    }

    /** {@code --incoming defer}: wait for migrate-incoming. */
    public synchronized void deferIncoming() {
        incomingDeferred = true;
        subject.incomingStarted();
    }

    /** {@code --incoming URI} at start-up, or {@code migrate-incoming uri} after defer. */
    public synchronized IncomingMigration startIncoming(String uri, boolean fromQmp) {
        if (fromQmp) {
            if (!incomingDeferred) {
                throw new MigrationException(Category.STATE,
                        "'-incoming' was not specified on the command line");
            }
            if (incoming != null) {
                throw new MigrationException(Category.STATE, "The incoming migration has already been started");
            }
        }
        MigrationUri u = MigrationUri.parse(uri);
        MigrationState st = new MigrationState(events, () -> config.has(Capability.EVENTS));
        IncomingMigration m = new IncomingMigration(subject, this::config, u, st);
        m.start();
        incoming = m;
        return m;
    }

    /** {@code migrate_cancel}: cancels the outgoing migration if one is active (else nothing). */
    public synchronized void cancel() {
        if (outgoing != null && outgoing.state().get().isActive()) {
            outgoing.cancel();
        }
    }

    /**
     * Whether this VM's own migration has begun: an outgoing one was started, or an incoming one
     * got past listening.
     */
    public synchronized boolean begun() {
        return outgoing != null || (incoming != null && incoming.state().get() != MigrationStatus.SETUP);
    }

    public synchronized OutgoingMigration outgoing() {
        return outgoing;
    }

    public synchronized IncomingMigration incoming() {
        return incoming;
    }

    /** {@code query-migrate}: the outgoing migration if any, else the incoming one, else {}. */
    public synchronized Map<String, Object> queryMigrate() {
        if (outgoing != null) {
            return outgoing.info();
        }
        if (incoming != null) {
            return incoming.info();
        }
        return new LinkedHashMap<>();
    }

    /** {@code query-migrate-capabilities}. */
    public List<Map<String, Object>> queryCapabilities() {
        MigrationConfig c = config;
        return java.util.Arrays.stream(Capability.values())
                .map(cap -> {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("capability", cap.qmpName);
                    m.put("state", c.has(cap));
                    return m;
                }).toList();
    }

    /**
     * {@code x-jmigrate-query-digest}: RAM digests recorded by the last migrations, and each
     * reporting device's state digest ({@code outgoing-devices}, {@code incoming-devices}: idstr
     * to SHA-256 hex).
     */
    public Map<String, Object> digests() {
        OutgoingMigration out;
        IncomingMigration in;
        synchronized (this) {
            out = outgoing;
            in = incoming;
        }
        // a digest still being computed is waited for, outside the lock
        String o = out == null ? null : out.digest();
        String i = in == null ? null : in.digest();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("outgoing", o == null ? "" : o);
        m.put("incoming", i == null ? "" : i);
        m.put("outgoing-devices", out == null ? Map.of() : out.deviceDigests());
        m.put("incoming-devices", in == null ? Map.of() : in.deviceDigests());
        return m;
    }
}
