package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The migration properties of a VFIO PCI device (PROTOCOL.md §4.4), with QEMU's names and
 * semantics. Set with {@code --device vfio-emu,...} and changeable at run time (QMP
 * {@code qom-set} on {@code /machine/peripheral/<id>}); a migration takes a snapshot of them
 * when it starts (save setup, load setup), so a change applies to the next migration.
 *
 * <table>
 *   <caption>Properties</caption>
 *   <tr><th>property</th><th>type</th><th>default</th><th>meaning</th></tr>
 *   <tr><td>x-migration-multifd-transfer</td><td>on|off|auto</td><td>auto</td><td>send the STOP_COPY state over
 *       multifd; auto = when supported (multifd on, compression none, send-switchover-start on); on while
 *       unsupported fails the migration at start. Both sides must agree. jm-9.2 sets it off</td></tr>
 *   <tr><td>x-migration-max-queued-buffers-size</td><td>size</td><td>UINT64_MAX</td><td>destination cap on
 *       received but not yet loaded device-state bytes</td></tr>
 *   <tr><td>x-migration-load-config-after-iter</td><td>on|off|auto</td><td>auto (= off here, not ARM)</td>
 *       <td>load the config only after the iterables, on DEV_CONFIG_LOAD_READY (QEMU 10.1, §4.7);
 *       multifd transfer only; both sides must agree. jm-9.2 sets it off</td></tr>
 *   <tr><td>migration-events</td><td>bool</td><td>off</td><td>emit VFIO_MIGRATION on every device-state change</td></tr>
 * </table>
 */
public final class VfioProperties {
    public static final String MULTIFD_TRANSFER = "x-migration-multifd-transfer";
    public static final String MAX_QUEUED_BUFFERS_SIZE = "x-migration-max-queued-buffers-size";
    public static final String LOAD_CONFIG_AFTER_ITER = "x-migration-load-config-after-iter";
    public static final String MIGRATION_EVENTS = "migration-events";
    public static final List<String> NAMES = List.of(MULTIFD_TRANSFER, MAX_QUEUED_BUFFERS_SIZE,
            LOAD_CONFIG_AFTER_ITER, MIGRATION_EVENTS);

    private volatile OnOffAuto multifdTransfer = OnOffAuto.AUTO;
    private volatile long maxQueuedBuffersSize = Long.MAX_VALUE;
    private volatile OnOffAuto loadConfigAfterIter = OnOffAuto.AUTO;
    private volatile boolean migrationEvents;

    public OnOffAuto multifdTransfer() {
        return multifdTransfer;
    }

    public long maxQueuedBuffersSize() {
        return maxQueuedBuffersSize;
    }

    public OnOffAuto loadConfigAfterIter() {
        return loadConfigAfterIter;
    }

    public boolean migrationEvents() {
        return migrationEvents;
    }

    /** Sets one property from its text form ({@code --device} or qom-set). */
    public void set(String name, String value) {
        switch (name) {
            case MULTIFD_TRANSFER -> multifdTransfer = OnOffAuto.parse(name, value);
            case LOAD_CONFIG_AFTER_ITER -> loadConfigAfterIter = OnOffAuto.parse(name, value);
            case MAX_QUEUED_BUFFERS_SIZE -> maxQueuedBuffersSize = size(name, value);
            case MIGRATION_EVENTS -> migrationEvents = switch (value) {
                case "on", "true", "yes" -> true;
                case "off", "false", "no" -> false;
                default -> throw new MigrationException(Category.CONFIG, "property '" + name + "': '" + value
                        + "' must be on or off");
            };
            default -> throw new MigrationException(Category.CONFIG, "unknown VFIO property '" + name
                    + "', expected one of " + NAMES);
        }
    }

    /** The property's value as qom-get returns it (OnOffAuto as a string, size as a number, bool). */
    public Object get(String name) {
        return switch (name) {
            case MULTIFD_TRANSFER -> multifdTransfer.qapiName();
            case LOAD_CONFIG_AFTER_ITER -> loadConfigAfterIter.qapiName();
            case MAX_QUEUED_BUFFERS_SIZE -> maxQueuedBuffersSize == Long.MAX_VALUE
                    ? new java.math.BigInteger("18446744073709551615") : (Object) maxQueuedBuffersSize;
            case MIGRATION_EVENTS -> migrationEvents;
            default -> throw new MigrationException(Category.CONFIG, "unknown VFIO property '" + name
                    + "', expected one of " + NAMES);
        };
    }

    public Map<String, Object> all() {
        Map<String, Object> m = new LinkedHashMap<>();
        for (String n : NAMES) {
            m.put(n, get(n));
        }
        return m;
    }

    private static long size(String name, String value) {
        String t = value.trim();
        if (t.equals("18446744073709551615")) {
            return Long.MAX_VALUE;
        }
        long mult = 1;
        char unit = t.isEmpty() ? ' ' : Character.toUpperCase(t.charAt(t.length() - 1));
        switch (unit) {
            case 'K' -> mult = 1L << 10;
            case 'M' -> mult = 1L << 20;
            case 'G' -> mult = 1L << 30;
            case 'T' -> mult = 1L << 40;
            default -> mult = 1;
        }
        String num = mult == 1 ? t : t.substring(0, t.length() - 1);
        try {
            long v = Long.parseLong(num);
            if (v <= 0 || v > Long.MAX_VALUE / mult) {
                throw new MigrationException(Category.CONFIG, "property '" + name + "': '" + value + "' out of range");
            }
            return v * mult;
        } catch (NumberFormatException e) {
            throw new MigrationException(Category.CONFIG, "property '" + name + "': '" + value
                    + "' is not a size (bytes with an optional K/M/G/T suffix)");
        }
    }
}
