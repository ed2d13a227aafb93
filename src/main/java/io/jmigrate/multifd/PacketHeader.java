package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.StreamException;

import java.nio.ByteBuffer;

/**
 * {@code MultiFDPacketHdr_t}: the 12 bytes that start every multifd packet after the init
 * record (PROTOCOL.md §2.4, §2.5; split out of the RAM packet by QEMU commit 8050c435b7).
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                    magic 0x11223344 (be32)                    |  0
 * +---------------------------------------------------------------+
 * |                       version 1 (be32)                        |  4
 * +-------------------------------------------------------+-+-----+
 * |                   flags (be32)              ...       |D|COMP |S|  8
 * +-------------------------------------------------------+-+-----+
 *   S    = SYNC 0x01          COMP = compression mask 0x3e (ZLIB 0x02, ZSTD 0x04,
 *   D    = DEVICE_STATE 0x40         QPL 0x08, UADK 0x10, QATZIP 0x20; 0 = none)
 * </pre>
 *
 * DEVICE_STATE (QEMU 10.0) selects a {@link DeviceStatePacket}; otherwise a {@link RamPacket}
 * follows. A device-state packet must never carry SYNC.
 *
 * @param flags the be32 flags word
 */
public record PacketHeader(int flags) {
    public static final int SIZE = 12;
    public static final int MAGIC = MultifdInit.MAGIC;
    public static final int VERSION = 1;

    public static final int FLAG_SYNC = 0x01;
    public static final int FLAG_COMPRESSION_MASK = 0x3e;
    public static final int FLAG_NOCOMP = 0x00;
    public static final int FLAG_ZLIB = 0x02;
    public static final int FLAG_ZSTD = 0x04;
    public static final int FLAG_QPL = 0x08;
    public static final int FLAG_UADK = 0x10;
    public static final int FLAG_QATZIP = 0x20;
    public static final int FLAG_DEVICE_STATE = 0x40;
    /** Every bit QEMU 10.0 defines; others are rejected on decode. */
    public static final int KNOWN_FLAGS = FLAG_SYNC | FLAG_COMPRESSION_MASK | FLAG_DEVICE_STATE;

    public boolean isSync() {
        return (flags & FLAG_SYNC) != 0;
    }

    public boolean isDeviceState() {
        return (flags & FLAG_DEVICE_STATE) != 0;
    }

    public int compression() {
        return flags & FLAG_COMPRESSION_MASK;
    }

    /** Writes the 12 bytes at absolute index {@code at} of {@code dst}. */
    public static void encode(ByteBuffer dst, int at, int flags) {
        dst.putInt(at, MAGIC).putInt(at + 4, VERSION).putInt(at + 8, flags);
    }

    /**
     * Validates the 12 bytes at absolute index {@code at} and returns the flags word.
     *
     * @param channel      the channel name for errors
     * @param streamOffset the byte offset of the header in the channel, for errors
     */
    public static int decodeFlags(ByteBuffer src, int at, String channel, long streamOffset) {
        int magic = src.getInt(at);
        if (magic != MAGIC) {
            throw new StreamException(Category.PROTOCOL, channel, streamOffset, String.format(
                    "wrong multifd packet magic 0x%08x, expected 0x%08x", magic, MAGIC));
        }
        int version = src.getInt(at + 4);
        if (version != VERSION) {
            throw new StreamException(Category.PROTOCOL, channel, streamOffset + 4,
                    "unsupported multifd packet version " + Integer.toUnsignedString(version) + ", expected "
                            + VERSION);
        }
        int flags = src.getInt(at + 8);
        if ((flags & ~KNOWN_FLAGS) != 0) {
            throw new StreamException(Category.PROTOCOL, channel, streamOffset + 8, String.format(
                    "unknown multifd packet flags 0x%08x (known: SYNC 0x01, compression 0x3e, DEVICE_STATE 0x40)",
                    flags));
        }
        if ((flags & FLAG_DEVICE_STATE) != 0 && (flags & FLAG_SYNC) != 0) {
            throw new StreamException(Category.PROTOCOL, channel, streamOffset + 8,
                    "device-state packet with the SYNC flag set: SYNC is only valid on RAM packets");
        }
        return flags;
    }

    public static PacketHeader decode(ByteBuffer src, int at, String channel, long streamOffset) {
        return new PacketHeader(decodeFlags(src, at, channel, streamOffset));
    }
}
