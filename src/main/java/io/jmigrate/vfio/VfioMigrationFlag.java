package io.jmigrate.vfio;

import java.util.EnumSet;
import java.util.Set;

/**
 * The flags of {@code VFIO_DEVICE_FEATURE_MIGRATION} (feature 1, GET; PROTOCOL.md §4.8): which
 * optional states a device supports. STOP_COPY is mandatory; QEMU refuses to migrate a device
 * without it.
 */
public enum VfioMigrationFlag {
    /** 1 &lt;&lt; 0: STOP, RUNNING, STOP_COPY, RESUMING. */
    STOP_COPY(1),
    /** 1 &lt;&lt; 1: RUNNING_P2P (and PRE_COPY_P2P with PRE_COPY). */
    P2P(1 << 1),
    /** 1 &lt;&lt; 2: PRE_COPY (and PRE_COPY_P2P with P2P). */
    PRE_COPY(1 << 2);

    private final long bit;

    VfioMigrationFlag(long bit) {
        this.bit = bit;
    }

    public long bit() {
        return bit;
    }

    /** The u64 flags word. */
    public static long toBits(Set<VfioMigrationFlag> flags) {
        long v = 0;
        for (VfioMigrationFlag f : flags) {
            v |= f.bit;
        }
        return v;
    }

    /** The flags of a u64 word; unknown bits are ignored, as the kernel's users do. */
    public static Set<VfioMigrationFlag> fromBits(long v) {
        EnumSet<VfioMigrationFlag> s = EnumSet.noneOf(VfioMigrationFlag.class);
        for (VfioMigrationFlag f : values()) {
            if ((v & f.bit) != 0) {
                s.add(f);
            }
        }
        return s;
    }
}
