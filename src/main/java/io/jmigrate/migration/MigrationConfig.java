package io.jmigrate.migration;

import io.jmigrate.channel.MigrationUri;
import io.jmigrate.channel.TlsAuthz;
import io.jmigrate.channel.TlsContext;
import io.jmigrate.channel.TlsCredsX509;
import io.jmigrate.channel.TlsObjects;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.multifd.MultifdCompression;
import io.jmigrate.multifd.MultifdConfig;
import io.jmigrate.multifd.ZeroPageDetection;

import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Capabilities and parameters of the migration object, validated when set
 * ({@code migrate-set-capabilities}, {@code migrate-set-parameters}) and concluded once when a
 * migration starts ({@link #conclude}). Immutable: every change makes a new instance, so a
 * running migration keeps the values it started with (except those QEMU applies live, which
 * the migration thread re-reads: max-bandwidth, downtime-limit, avail-switchover-bandwidth).
 *
 * <table>
 *  <caption>Parameters</caption>
 *  <tr><th>name</th><th>default</th><th>range</th></tr>
 *  <tr><td>downtime-limit</td><td>300 ms</td><td>0..2000000</td></tr>
 *  <tr><td>max-bandwidth</td><td>134217728 B/s</td><td>0..INT64_MAX (0: QEMU's default applies)</td></tr>
 *  <tr><td>avail-switchover-bandwidth</td><td>0 (use the estimate)</td><td>≥ 0</td></tr>
 *  <tr><td>multifd-channels</td><td>2</td><td>1..255</td></tr>
 *  <tr><td>multifd-compression</td><td>none</td><td>none, zlib, zstd</td></tr>
 *  <tr><td>multifd-zlib-level</td><td>1</td><td>0..9</td></tr>
 *  <tr><td>multifd-zstd-level</td><td>1</td><td>0..20</td></tr>
 *  <tr><td>zero-page-detection</td><td>multifd</td><td>none, legacy, multifd</td></tr>
 *  <tr><td>tls-creds</td><td>"" (no TLS)</td><td>the id of a tls-creds-x509 object: endpoint=client on a
 *      source, endpoint=server on a destination; TLS on the main and every multifd channel</td></tr>
 *  <tr><td>tls-hostname</td><td>"" (the host of a tcp: URI)</td><td>the name the destination's certificate
 *      must carry (source only)</td></tr>
 *  <tr><td>tls-authz</td><td>""</td><td>the id of an authz-simple or authz-list object that the client
 *      certificate's DN must pass (destination only)</td></tr>
 *  <tr><td>x-multifd-timeout</td><td>30000 ms</td><td>100..3600000 (jmigrate only: how long a destination
 *      waits for all multifd channels to connect)</td></tr>
 *  <tr><td>x-jmigrate-stall-timeout</td><td>30000 ms</td><td>100..3600000 (jmigrate only: a source fails
 *      when a write on the main or a multifd channel makes no progress for this long, naming the channel,
 *      and when the destination's SHUT does not come this long after the stream ended)</td></tr>
 * </table>
 */
public record MigrationConfig(Set<Capability> capabilities, long downtimeLimitMs, long maxBandwidth,
                              long availSwitchoverBandwidth, int multifdChannels, String multifdCompression,
                              String zeroPageDetection, int multifdZlibLevel, int multifdZstdLevel,
                              long multifdTimeoutMs, TlsParameters tls, long stallTimeoutMs) {
    public static final long DEFAULT_DOWNTIME_LIMIT_MS = 300;
    public static final long MAX_DOWNTIME_LIMIT_MS = 2_000_000;
    public static final long DEFAULT_MAX_BANDWIDTH = 134_217_728L;
    public static final long DEFAULT_MULTIFD_TIMEOUT_MS = 30_000;
    public static final long DEFAULT_STALL_TIMEOUT_MS = 30_000;

    public static final MigrationConfig DEFAULT = new MigrationConfig(EnumSet.noneOf(Capability.class),
            DEFAULT_DOWNTIME_LIMIT_MS, DEFAULT_MAX_BANDWIDTH, 0, 2, "none", "multifd", 1, 1,
            DEFAULT_MULTIFD_TIMEOUT_MS, TlsParameters.NONE, DEFAULT_STALL_TIMEOUT_MS);

    /** Parameter names in QEMU's {@code query-migrate-parameters} order (the ones jmigrate has). */
    public static final java.util.List<String> PARAMETERS = java.util.List.of("downtime-limit", "max-bandwidth",
            "avail-switchover-bandwidth", "multifd-channels", "multifd-compression", "multifd-zlib-level",
            "multifd-zstd-level", "zero-page-detection", "x-multifd-timeout", "tls-creds", "tls-hostname", "tls-authz",
            "x-jmigrate-stall-timeout");

    public MigrationConfig {
        capabilities = capabilities.isEmpty() ? EnumSet.noneOf(Capability.class) : EnumSet.copyOf(capabilities);
    }

    public boolean has(Capability c) {
        return capabilities.contains(c);
    }

    @Override
    public Set<Capability> capabilities() {
        return capabilities.isEmpty() ? EnumSet.noneOf(Capability.class) : EnumSet.copyOf(capabilities);
    }

    /** A copy with {@code c} switched on or off; unsupported capabilities cannot be switched on. */
    public MigrationConfig withCapability(Capability c, boolean on) {
        if (on && !c.supported) {
            throw new MigrationException(Category.CONFIG, "capability '" + c.qmpName
                    + "' is not supported by jmigrate (supported: events, return-path, multifd, switchover-ack, x-jmigrate-digest)");
        }
        EnumSet<Capability> s = EnumSet.noneOf(Capability.class);
        s.addAll(capabilities);
        if (on) {
            s.add(c);
        } else {
            s.remove(c);
        }
        return new MigrationConfig(s, downtimeLimitMs, maxBandwidth, availSwitchoverBandwidth, multifdChannels,
                multifdCompression, zeroPageDetection, multifdZlibLevel, multifdZstdLevel, multifdTimeoutMs, tls,
                stallTimeoutMs);
    }

    /**
     * A copy with parameter {@code name} set to {@code value} (a Long for integers, a String for
     * enums), range-checked with QEMU's messages.
     */
    public MigrationConfig withParameter(String name, Object value) {
        long dl = downtimeLimitMs;
        long bw = maxBandwidth;
        long asb = availSwitchoverBandwidth;
        int ch = multifdChannels;
        String comp = multifdCompression;
        String zpd = zeroPageDetection;
        int zlib = multifdZlibLevel;
        int zstd = multifdZstdLevel;
        long tmo = multifdTimeoutMs;
        TlsParameters t = tls;
        long stall = stallTimeoutMs;
        switch (name) {
            case "downtime-limit" -> {
                long v = (Long) value;
                if (v < 0 || v > MAX_DOWNTIME_LIMIT_MS) {
                    throw invalid(name, "an integer in the range of 0 to " + MAX_DOWNTIME_LIMIT_MS + " milliseconds");
                }
                dl = v;
            }
            case "max-bandwidth" -> {
                long v = (Long) value;
                if (v < 0) {
                    throw invalid(name, "an integer in the range of 0 to " + Long.MAX_VALUE + " bytes/second");
                }
                bw = v;
            }
            case "avail-switchover-bandwidth" -> {
                long v = (Long) value;
                if (v < 0) {
                    throw invalid(name, "an integer in the range of 0 to " + Long.MAX_VALUE + " bytes/second");
                }
                asb = v;
            }
            case "multifd-channels" -> {
                long v = (Long) value;
                if (v < 1 || v > 255) {
                    throw invalid(name, "a value between 1 and 255");
                }
                ch = (int) v;
            }
            case "multifd-compression" -> {
                String v = (String) value;
                if (!Set.of("none", "zlib", "zstd").contains(v)) {
                    throw new MigrationException(Category.CONFIG, "Parameter 'multifd-compression' does not accept "
                            + "value '" + v + "' (expected none, zlib or zstd)");
                }
                comp = v;
            }
            case "multifd-zlib-level" -> {
                long v = (Long) value;
                if (v < 0 || v > 9) {
                    throw invalid(name, "a value between 0 and 9");
                }
                zlib = (int) v;
            }
            case "multifd-zstd-level" -> {
                long v = (Long) value;
                if (v < 0 || v > 20) {
                    throw invalid(name, "a value between 0 and 20");
                }
                zstd = (int) v;
            }
            case "x-multifd-timeout" -> {
                long v = (Long) value;
                if (v < 100 || v > 3_600_000) {
                    throw invalid(name, "a value between 100 and 3600000 milliseconds");
                }
                tmo = v;
            }
            case "x-jmigrate-stall-timeout" -> {
                long v = (Long) value;
                if (v < 100 || v > 3_600_000) {
                    throw invalid(name, "a value between 100 and 3600000 milliseconds");
                }
                stall = v;
            }
            case "zero-page-detection" -> {
                String v = (String) value;
                if (!Set.of("none", "legacy", "multifd").contains(v)) {
                    throw new MigrationException(Category.CONFIG, "Parameter 'zero-page-detection' does not accept "
                            + "value '" + v + "' (expected none, legacy or multifd)");
                }
                zpd = v;
            }
            case "tls-creds", "tls-hostname", "tls-authz" -> t = tls.with(name, (String) value);
            default -> throw new MigrationException(Category.CONFIG, "Parameter '" + name + "' is unexpected");
        }
        return new MigrationConfig(capabilities, dl, bw, asb, ch, comp, zpd, zlib, zstd, tmo, t, stall);
    }

    /** Whether {@code name} is a known parameter taking an integer (else a string). */
    public static boolean isIntegerParameter(String name) {
        return !name.equals("multifd-compression") && !name.equals("zero-page-detection") && !name.startsWith("tls-");
    }

    private static MigrationException invalid(String name, String expected) {
        return new MigrationException(Category.CONFIG, "Parameter '" + name + "' expects " + expected);
    }

    /** Parameters with their QMP names and JSON-ready values, as {@code query-migrate-parameters}. */
    public Map<String, Object> parametersAsMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("downtime-limit", downtimeLimitMs);
        m.put("max-bandwidth", maxBandwidth);
        m.put("avail-switchover-bandwidth", availSwitchoverBandwidth);
        m.put("multifd-channels", multifdChannels);
        m.put("multifd-compression", multifdCompression);
        m.put("multifd-zlib-level", multifdZlibLevel);
        m.put("multifd-zstd-level", multifdZstdLevel);
        m.put("zero-page-detection", zeroPageDetection);
        m.put("x-multifd-timeout", multifdTimeoutMs);
        m.put("tls-creds", tls.creds());
        m.put("tls-hostname", tls.hostname());
        m.put("tls-authz", tls.authz());
        m.put("x-jmigrate-stall-timeout", stallTimeoutMs);
        return m;
    }

    /** The effective bandwidth limit (0 means QEMU's default). */
    public long effectiveMaxBandwidth() {
        return maxBandwidth == 0 ? DEFAULT_MAX_BANDWIDTH : maxBandwidth;
    }

    /**
     * Cross-checks before a migration starts ({@code migrate_caps_check}): what cannot work
     * together, with the URI's transport.
     */
    public MigrationConfig conclude(MigrationUri uri) {
        if (has(Capability.RETURN_PATH) && uri instanceof MigrationUri.File) {
            throw new MigrationException(Category.CONFIG, "the return-path capability needs a bidirectional "
                    + "channel; file: URIs have none");
        }
        if (has(Capability.MULTIFD) && uri instanceof MigrationUri.File) {
            throw new MigrationException(Category.CONFIG, "the multifd capability needs a tcp: or unix: URI (its "
                    + "channels are extra connections to the same address); file: migration with multifd needs "
                    + "mapped-ram, which jmigrate does not implement");
        }
        return this;
    }

    /**
     * The TLS half of {@link #conclude}: resolves {@code tls-creds} (and, on a destination,
     * {@code tls-authz}) in {@code objects} and checks them against the side and the URI, once,
     * when a migration starts (a destination: when its first connection arrives).
     *
     * @param outgoing true for the source (client credentials, host name checked), false for the destination
     * @return the TLS context for every channel of this migration, or null without tls-creds
     * @throws MigrationException CONFIG naming the parameter and object that do not fit
     */
    public TlsContext concludeTls(MigrationUri uri, TlsObjects objects, boolean outgoing) {
        if (tls.creds().isEmpty()) {
            if (!tls.authz().isEmpty() && !outgoing) {
                throw new MigrationException(Category.CONFIG, "tls-authz '" + tls.authz() + "' is set but tls-creds "
                        + "is not: authorization needs TLS");
            }
            return null;
        }
        if (uri instanceof MigrationUri.File) {
            throw new MigrationException(Category.CONFIG, "tls-creds is set, but " + uri.text() + " is a file: TLS "
                    + "needs a tcp: or unix: URI");
        }
        TlsCredsX509 creds = objects.creds(tls.creds());
        if (outgoing) {
            String host = !tls.hostname().isEmpty() ? tls.hostname()
                    : uri instanceof MigrationUri.Tcp t ? t.host() : null;
            if (host == null && creds.verifyPeer()) {
                throw new MigrationException(Category.CONFIG, "No hostname available for TLS: " + uri.text()
                        + " has no host name to check the destination's certificate against; set tls-hostname");
            }
            return TlsContext.client(creds, host);
        }
        TlsAuthz authz = tls.authz().isEmpty() ? null : objects.authz(tls.authz());
        return TlsContext.server(creds, authz);
    }

    /** {@code x-jmigrate-stall-timeout}. */
    public java.time.Duration stallTimeout() {
        return java.time.Duration.ofMillis(stallTimeoutMs);
    }

    /** Whether the multifd capability is on. */
    public boolean multifd() {
        return has(Capability.MULTIFD);
    }

    /** zero-page-detection as the multifd package's enum. */
    public ZeroPageDetection zeroPages() {
        return ZeroPageDetection.valueOf(zeroPageDetection.toUpperCase(java.util.Locale.ROOT));
    }

    /**
     * The multifd settings of one migration (both sides): channel count, compression with its
     * level, zero-page detection, the VM's UUID (sent in, or expected in, every init packet) and
     * the channel timeout.
     */
    public MultifdConfig multifdConfig(byte[] uuid, int pageSize) {
        MultifdCompression c = MultifdCompression.fromParameter(multifdCompression);
        int level = switch (c) {
            case NONE -> 0;
            case ZLIB -> multifdZlibLevel;
            case ZSTD -> multifdZstdLevel;
        };
        return new MultifdConfig(multifdChannels, pageSize, c, level, zeroPages(), uuid,
                MultifdConfig.DEFAULT_MAX_DEVICE_STATE_PACKET, java.time.Duration.ofMillis(multifdTimeoutMs));
    }
}
