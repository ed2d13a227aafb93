package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.nio.ByteBuffer;

/**
 * {@code VFIODeviceStatePacket}: the payload of every multifd device-state packet a VFIO device
 * sends (PROTOCOL.md §4.2; QEMU 10.0, big-endian since commit cbb2e10526).
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                   version (be32) = 0                          |  0
 * +---------------------------------------------------------------+
 * |                   idx (be32), 0xffffffff invalid              |  4
 * +-------------------------------------------------------------+-+
 * |                   flags (be32)                              |C|  8
 * +-------------------------------------------------------------+-+
 * |                   data: next_packet_size - 12 bytes ...       | 12
 *   C = CONFIG_STATE (bit 0): the config packet, the device's last
 * </pre>
 *
 * Data packets carry bytes exactly as read from the device's data fd, numbered from idx 0. The
 * config packet has the next idx and carries what the non-multifd path writes on the main
 * channel for config: be64 DEV_CONFIG_STATE, the config VMState, be64 END_OF_STATE.
 * Decoding rejects a short packet, a version other than 0, idx 0xffffffff and flag bits QEMU
 * does not define, each with the device named.
 *
 * @param idx    per-device sequence number, unsigned, below 0xffffffff
 * @param config the CONFIG_STATE flag
 */
public record VfioStatePacket(long idx, boolean config) {
    public static final int HEADER_SIZE = 12;
    public static final int VERSION_CURRENT = 0;
    public static final int FLAG_CONFIG_STATE = 1;
    /** idx 0xffffffff: "packet index is invalid". */
    public static final long IDX_INVALID = 0xffff_ffffL;

    public VfioStatePacket {
        if (idx < 0 || idx >= IDX_INVALID) {
            throw new IllegalArgumentException("VFIO state packet idx " + idx + " out of range 0..0xfffffffe");
        }
    }

    public int flags() {
        return config ? FLAG_CONFIG_STATE : 0;
    }

    /** Writes the 12 header bytes at absolute index {@code at} of {@code dst}. */
    public void encode(ByteBuffer dst, int at) {
        dst.putInt(at, VERSION_CURRENT).putInt(at + 4, (int) idx).putInt(at + 8, flags());
    }

    /**
     * Decodes the header of the packet payload {@code buf} (position to limit) and advances
     * its position past the header, so the data remains.
     *
     * @param device the device's idstr, for errors
     */
    public static VfioStatePacket decode(ByteBuffer buf, String device) {
        int len = buf.remaining();
        if (len < HEADER_SIZE) {
            throw new MigrationException(Category.PROTOCOL, "VFIO device " + device + ": device-state packet of "
                    + len + " bytes is shorter than the 12-byte VFIODeviceStatePacket header");
        }
        int at = buf.position();
        int version = buf.getInt(at);
        long idx = buf.getInt(at + 4) & 0xffff_ffffL;
        int flags = buf.getInt(at + 8);
        if (version != VERSION_CURRENT) {
            throw new MigrationException(Category.PROTOCOL, "VFIO device " + device + ": device-state packet idx "
                    + idx + " has version " + Integer.toUnsignedString(version) + ", expected "
                    + VERSION_CURRENT);
        }
        if (idx == IDX_INVALID) {
            throw new MigrationException(Category.PROTOCOL, "VFIO device " + device
                    + ": device-state packet index is invalid (0xffffffff)");
        }
        if ((flags & ~FLAG_CONFIG_STATE) != 0) {
            throw new MigrationException(Category.PROTOCOL, "VFIO device " + device + ": device-state packet idx "
                    + idx + " has unknown flags 0x" + Integer.toHexString(flags));
        }
        buf.position(at + HEADER_SIZE);
        return new VfioStatePacket(idx, (flags & FLAG_CONFIG_STATE) != 0);
    }
}
