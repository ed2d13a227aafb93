package io.jmigrate.savevm;

/**
 * QEMU_VM_COMMAND sub-commands (PROTOCOL.md §1.8) with the payload length each must have;
 * {@link #VARIABLE} marks a variable length. 0 (INVALID) and 12 (MAX) are never valid on the
 * wire.
 */
public enum MigCommand {
    OPEN_RETURN_PATH(1, 0),
    PING(2, 4),
    POSTCOPY_ADVISE(3, -1),
    POSTCOPY_LISTEN(4, 0),
    POSTCOPY_RUN(5, 0),
    POSTCOPY_RAM_DISCARD(6, -1),
    PACKAGED(7, 4),
    ENABLE_COLO(8, 0),
    POSTCOPY_RESUME(9, 0),
    RECV_BITMAP(10, -1),
    /** New in QEMU 10.0: the barrier after which devices may consume post-switchover multifd data. */
    SWITCHOVER_START(11, 0);

    public static final int VARIABLE = -1;
    /** First number that is not a command (MIG_CMD_MAX). */
    public static final int MAX = 12;

    public final int wire;
    /** Fixed payload length, or {@link #VARIABLE}. */
    public final int length;

    MigCommand(int wire, int length) {
        this.wire = wire;
        this.length = length;
    }

    /** The command for a wire number, or null if it is 0, MAX or above, or unknown. */
    public static MigCommand fromWire(int n) {
        for (MigCommand c : values()) {
            if (c.wire == n) {
                return c;
            }
        }
        return null;
    }

    /** POSTCOPY_ADVISE is 0 or 16 bytes; other variable commands take any length. */
    public boolean lengthOk(int len) {
        if (this == POSTCOPY_ADVISE) {
            return len == 0 || len == 16;
        }
        return length == VARIABLE || length == len;
    }

    public String qemuName() {
        return "MIG_CMD_" + name();
    }
}
