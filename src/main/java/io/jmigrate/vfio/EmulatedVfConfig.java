package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The back-end properties of {@code --device vfio-emu,id=ID,...}: what the emulated VF's state
 * looks like and how fast it moves. Sizes take K/M/G suffixes (plain numbers are bytes); rates
 * are bytes per second with the same suffixes, 0 meaning unlimited.
 *
 * <p>Defaults are calibrated to the hardware of QEMU's published series results (PROTOCOL.md
 * §6): about 100 MiB of state per ConnectX-7 VF, and about 470 ms of downtime per VF without
 * multifd, i.e. about 220 MiB/s end to end. Reads and writes overlap in that path (the
 * destination writes a chunk while the source reads the next), so each direction is paced at
 * 220 MiB/s.
 *
 * <table>
 *   <caption>Properties</caption>
 *   <tr><th>property</th><th>default</th><th>meaning</th></tr>
 *   <tr><td>state-size</td><td>100M</td><td>bytes of device state (a multiple of 4 KiB)</td></tr>
 *   <tr><td>precopy-size</td><td>0</td><td>initial precopy bytes (a multiple of 4 KiB, at most state-size); 0 = no PRE_COPY support</td></tr>
 *   <tr><td>dirty-rate</td><td>1M</td><td>bytes per second the running device rewrites (4 KiB pages)</td></tr>
 *   <tr><td>read-rate</td><td>220M</td><td>data fd read throughput (DMA/firmware model)</td></tr>
 *   <tr><td>write-rate</td><td>220M</td><td>data fd write throughput</td></tr>
 *   <tr><td>config-size</td><td>4K</td><td>bytes of PCI config state (1..64K)</td></tr>
 *   <tr><td>p2p</td><td>on</td><td>supports the P2P states (QEMU needs it with several VFIO devices)</td></tr>
 *   <tr><td>seed</td><td>hash of id</td><td>seed of the initial state and of the mutations</td></tr>
 *   <tr><td>x-test-read-error-at</td><td>-1 (off)</td><td>test hook: the STOP_COPY read that reaches this byte of the stop-copy stream fails with EIO, once</td></tr>
 *   <tr><td>x-test-fail-arc</td><td>(off)</td><td>test hook: {@code STATE} or {@code STATE:error}; the next arc into STATE fails once (restoring the previous state, or leaving the device in ERROR)</td></tr>
 * </table>
 */
public record EmulatedVfConfig(String id, long stateSize, long precopySize, long dirtyRate, long readRate,
                               long writeRate, int configSize, boolean p2p, long seed, long testReadErrorAt,
                               String testFailArc) {
    public static final long PAGE = 4096;
    public static final long DEFAULT_STATE_SIZE = 100L << 20;
    public static final long DEFAULT_DIRTY_RATE = 1L << 20;
    public static final long DEFAULT_RATE = 220L << 20;
    public static final int DEFAULT_CONFIG_SIZE = 4096;
    public static final int MAX_CONFIG_SIZE = 64 << 10;
    /** Largest state one emulated VF may hold (off-heap). */
    public static final long MAX_STATE_SIZE = 16L << 30;

    public EmulatedVfConfig {
        if (id == null || id.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "vfio-emu needs an id");
        }
        String where = "vfio-emu '" + id + "': ";
        if (stateSize <= 0 || stateSize % PAGE != 0 || stateSize > MAX_STATE_SIZE) {
            throw new MigrationException(Category.CONFIG, where + "state-size " + stateSize
                    + " must be a positive multiple of 4 KiB, at most " + MAX_STATE_SIZE);
        }
        if (precopySize < 0 || precopySize % PAGE != 0 || precopySize > stateSize) {
            throw new MigrationException(Category.CONFIG, where + "precopy-size " + precopySize
                    + " must be a multiple of 4 KiB between 0 and state-size " + stateSize);
        }
        if (dirtyRate < 0 || readRate < 0 || writeRate < 0) {
            throw new MigrationException(Category.CONFIG, where + "rates must not be negative");
        }
        if (configSize <= 0 || configSize > MAX_CONFIG_SIZE) {
            throw new MigrationException(Category.CONFIG, where + "config-size " + configSize
                    + " must be between 1 and " + MAX_CONFIG_SIZE);
        }
        if (testFailArc != null && !testFailArc.isEmpty()) {
            parseFailArc(where, testFailArc);
        } else {
            testFailArc = null;
        }
    }

    /** Defaults for {@code id}. */
    public static EmulatedVfConfig defaults(String id) {
        return new EmulatedVfConfig(id, DEFAULT_STATE_SIZE, 0, DEFAULT_DIRTY_RATE, DEFAULT_RATE, DEFAULT_RATE,
                DEFAULT_CONFIG_SIZE, true, defaultSeed(id), -1, null);
    }

    /** The names {@link #with} accepts. */
    public static final java.util.List<String> PROPERTIES = java.util.List.of("state-size", "precopy-size",
            "dirty-rate", "read-rate", "write-rate", "config-size", "p2p", "seed", "x-test-read-error-at",
            "x-test-fail-arc");

    /**
     * Parses back-end properties for device {@code id}; every key must be one of
     * {@link #PROPERTIES}.
     */
    public static EmulatedVfConfig parse(String id, Map<String, String> props) {
        EmulatedVfConfig c = defaults(id);
        for (Map.Entry<String, String> e : new LinkedHashMap<>(props).entrySet()) {
            c = c.with(e.getKey(), e.getValue());
        }
        return c;
    }

    /** This config with one property changed. */
    public EmulatedVfConfig with(String key, String value) {
        String where = "vfio-emu '" + id + "': ";
        return switch (key) {
            case "state-size" -> new EmulatedVfConfig(id, size(where, key, value), precopySize, dirtyRate, readRate,
                    writeRate, configSize, p2p, seed, testReadErrorAt, testFailArc);
            case "precopy-size" -> new EmulatedVfConfig(id, stateSize, size(where, key, value), dirtyRate, readRate,
                    writeRate, configSize, p2p, seed, testReadErrorAt, testFailArc);
            case "dirty-rate" -> new EmulatedVfConfig(id, stateSize, precopySize, size(where, key, value), readRate,
                    writeRate, configSize, p2p, seed, testReadErrorAt, testFailArc);
            case "read-rate" -> new EmulatedVfConfig(id, stateSize, precopySize, dirtyRate, size(where, key, value),
                    writeRate, configSize, p2p, seed, testReadErrorAt, testFailArc);
            case "write-rate" -> new EmulatedVfConfig(id, stateSize, precopySize, dirtyRate, readRate,
                    size(where, key, value), configSize, p2p, seed, testReadErrorAt, testFailArc);
            case "config-size" -> {
                long v = size(where, key, value);
                if (v > MAX_CONFIG_SIZE) {
                    throw new MigrationException(Category.CONFIG, where + "config-size " + v + " exceeds "
                            + MAX_CONFIG_SIZE);
                }
                yield new EmulatedVfConfig(id, stateSize, precopySize, dirtyRate, readRate, writeRate, (int) v, p2p,
                        seed, testReadErrorAt, testFailArc);
            }
            case "p2p" -> new EmulatedVfConfig(id, stateSize, precopySize, dirtyRate, readRate, writeRate, configSize,
                    onOff(where, key, value), seed, testReadErrorAt, testFailArc);
            case "seed" -> new EmulatedVfConfig(id, stateSize, precopySize, dirtyRate, readRate, writeRate, configSize,
                    p2p, number(where, key, value), testReadErrorAt, testFailArc);
            case "x-test-read-error-at" -> new EmulatedVfConfig(id, stateSize, precopySize, dirtyRate, readRate,
                    writeRate, configSize, p2p, seed, number(where, key, value), testFailArc);
            case "x-test-fail-arc" -> new EmulatedVfConfig(id, stateSize, precopySize, dirtyRate, readRate,
                    writeRate, configSize, p2p, seed, testReadErrorAt, value);
            default -> throw new MigrationException(Category.CONFIG, where + "unknown property '" + key
                    + "', expected one of " + PROPERTIES);
        };
    }

    /** The property's current value, as {@link #with} accepts it. */
    public String get(String key) {
        return switch (key) {
            case "state-size" -> Long.toString(stateSize);
            case "precopy-size" -> Long.toString(precopySize);
            case "dirty-rate" -> Long.toString(dirtyRate);
            case "read-rate" -> Long.toString(readRate);
            case "write-rate" -> Long.toString(writeRate);
            case "config-size" -> Integer.toString(configSize);
            case "p2p" -> p2p ? "on" : "off";
            case "seed" -> Long.toString(seed);
            case "x-test-read-error-at" -> Long.toString(testReadErrorAt);
            case "x-test-fail-arc" -> testFailArc == null ? "" : testFailArc;
            default -> throw new MigrationException(Category.CONFIG, "vfio-emu '" + id + "': unknown property '"
                    + key + "', expected one of " + PROPERTIES);
        };
    }

    /** {@code x-test-fail-arc} parsed: the state whose arc fails, and whether it leaves ERROR. */
    record FailArc(VfioDeviceState into, boolean leaveError) {
    }

    FailArc failArc() {
        return testFailArc == null ? null : parseFailArc("vfio-emu '" + id + "': ", testFailArc);
    }

    private static FailArc parseFailArc(String where, String v) {
        String[] p = v.split(":", 2);
        boolean error = false;
        if (p.length == 2) {
            if (!p[1].equals("error")) {
                throw new MigrationException(Category.CONFIG, where + "x-test-fail-arc '" + v
                        + "' must be STATE or STATE:error");
            }
            error = true;
        }
        VfioDeviceState s;
        try {
            s = VfioDeviceState.valueOf(p[0].toUpperCase(Locale.ROOT).replace('-', '_'));
        } catch (IllegalArgumentException e) {
            throw new MigrationException(Category.CONFIG, where + "x-test-fail-arc: unknown state '" + p[0] + "'");
        }
        if (s == VfioDeviceState.ERROR) {
            throw new MigrationException(Category.CONFIG, where + "x-test-fail-arc: ERROR is not entered by an arc");
        }
        return new FailArc(s, error);
    }

    static long defaultSeed(String id) {
        long h = 0x9E3779B97F4A7C15L;
        for (int i = 0; i < id.length(); i++) {
            h = (h ^ id.charAt(i)) * 0x100000001B3L;
        }
        return h;
    }

    private static long size(String where, String key, String value) {
        String t = value.trim();
        if (t.equals("0")) {
            return 0;
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
            if (v < 0 || v > Long.MAX_VALUE / mult) {
                throw new MigrationException(Category.CONFIG, where + key + " '" + value + "' out of range");
            }
            return v * mult;
        } catch (NumberFormatException e) {
            throw new MigrationException(Category.CONFIG, where + key + " '" + value
                    + "' is not a number with an optional K/M/G/T suffix");
        }
    }

    private static long number(String where, String key, String value) {
        try {
            return Long.decode(value.trim());
        } catch (NumberFormatException e) {
            throw new MigrationException(Category.CONFIG, where + key + " '" + value + "' is not a number");
        }
    }

    private static boolean onOff(String where, String key, String value) {
        return switch (value) {
            case "on", "true", "yes" -> true;
            case "off", "false", "no" -> false;
            default -> throw new MigrationException(Category.CONFIG, where + key + " '" + value + "' must be on or off");
        };
    }
}
