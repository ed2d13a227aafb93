package io.jmigrate.multifd;

import java.util.Locale;

/**
 * The {@code multifd-compression} parameter values jmigrate implements, with the packet flag
 * bits each sets (PROTOCOL.md §2.5). QEMU's qpl, uadk and qatzip (hardware offload) are not
 * implemented; their flags are still recognised on decode so the error can name them.
 */
public enum MultifdCompression {
    NONE("none", PacketHeader.FLAG_NOCOMP),
    ZLIB("zlib", PacketHeader.FLAG_ZLIB),
    ZSTD("zstd", PacketHeader.FLAG_ZSTD);

    private final String parameter;
    private final int flag;

    MultifdCompression(String parameter, int flag) {
        this.parameter = parameter;
        this.flag = flag;
    }

    /** The QMP parameter value ("none", "zlib", "zstd"). */
    public String parameter() {
        return parameter;
    }

    public int flag() {
        return flag;
    }

    /** Levels accepted by QEMU for this method (multifd-zlib-level 0..9, multifd-zstd-level 0..20). */
    public int maxLevel() {
        return switch (this) {
            case NONE -> 0;
            case ZLIB -> 9;
            case ZSTD -> 20;
        };
    }

    public static MultifdCompression fromParameter(String s) {
        for (MultifdCompression c : values()) {
            if (c.parameter.equals(s.toLowerCase(Locale.ROOT))) {
                return c;
            }
        }
        throw new IllegalArgumentException("unsupported multifd-compression '" + s + "', expected none, zlib or zstd");
    }

    /** A readable name for a compression flag value (for errors). */
    public static String fromFlag(int flag) {
        return switch (flag) {
            case PacketHeader.FLAG_NOCOMP -> "none";
            case PacketHeader.FLAG_ZLIB -> "zlib";
            case PacketHeader.FLAG_ZSTD -> "zstd";
            case PacketHeader.FLAG_QPL -> "qpl (not supported)";
            case PacketHeader.FLAG_UADK -> "uadk (not supported)";
            case PacketHeader.FLAG_QATZIP -> "qatzip (not supported)";
            default -> String.format("unknown 0x%02x", flag);
        };
    }
}
