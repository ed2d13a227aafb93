package io.jmigrate.migration;

/**
 * QEMU 10.0's {@code MigrationCapability} names (qapi/migration.json). Only some change
 * jmigrate's behaviour; {@link #supported} says which may be switched on.
 */
public enum Capability {
    XBZRLE("xbzrle", false),
    RDMA_PIN_ALL("rdma-pin-all", false),
    AUTO_CONVERGE("auto-converge", false),
    ZERO_BLOCKS("zero-blocks", false),
    EVENTS("events", true),
    POSTCOPY_RAM("postcopy-ram", false),
    X_COLO("x-colo", false),
    RELEASE_RAM("release-ram", false),
    RETURN_PATH("return-path", true),
    PAUSE_BEFORE_SWITCHOVER("pause-before-switchover", false),
    MULTIFD("multifd", true),
    DIRTY_BITMAPS("dirty-bitmaps", false),
    POSTCOPY_BLOCKTIME("postcopy-blocktime", false),
    LATE_BLOCK_ACTIVATE("late-block-activate", false),
    X_IGNORE_SHARED("x-ignore-shared", false),
    VALIDATE_UUID("validate-uuid", false),
    BACKGROUND_SNAPSHOT("background-snapshot", false),
    ZERO_COPY_SEND("zero-copy-send", false),
    POSTCOPY_PREEMPT("postcopy-preempt", false),
    SWITCHOVER_ACK("switchover-ack", true),
    DIRTY_LIMIT("dirty-limit", false),
    MAPPED_RAM("mapped-ram", false),
    /**
     * jmigrate's own, experimental (hence {@code x-}): record SHA-256 digests of RAM and of every
     * reporting device at completion, for {@code x-jmigrate-query-digest}. Off by default: the
     * digest must see RAM as it was at completion, so the vCPUs (the source's {@code cont}, the
     * destination's resume) wait for it, seconds for a large guest. Tests and benchmarks that
     * compare the two sides switch it on, on both sides.
     */
    X_JMIGRATE_DIGEST("x-jmigrate-digest", true);

    public final String qmpName;
    /** Whether jmigrate implements it (others may only be set to false). */
    public final boolean supported;

    Capability(String qmpName, boolean supported) {
        this.qmpName = qmpName;
        this.supported = supported;
    }

    public static Capability fromQmpName(String name) {
        for (Capability c : values()) {
            if (c.qmpName.equals(name)) {
                return c;
            }
        }
        return null;
    }
}
