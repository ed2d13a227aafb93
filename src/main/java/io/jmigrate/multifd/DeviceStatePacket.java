package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.StreamException;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * {@code MultiFDPacketDeviceState_t}: the header of a device-state packet (PROTOCOL.md §2.7,
 * new in QEMU 10.0). The opaque payload of {@code next_packet_size} bytes follows directly.
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |   header: magic, version, flags = DEVICE_STATE 0x40 (12 bytes) |   0
 * +---------------------------------------------------------------+
 * |   idstr: SaveStateEntry idstr, NUL-terminated, 256 bytes       |  12
 * |   (byte 255 of the field, i.e. packet byte 267, must be 0)     |
 * +---------------------------------------------------------------+
 * |   instance_id (be32)                                           | 268
 * +---------------------------------------------------------------+
 * |   next_packet_size (be32) &gt; 0: payload length                 | 272
 * +---------------------------------------------------------------+ 276
 * </pre>
 *
 * There is no packet_num and SYNC is never set. QEMU puts no upper bound on the payload; this
 * decoder checks it against a configured maximum before anything is allocated.
 *
 * @param idstr          1..255 bytes
 * @param instanceId     instance id of the SaveStateEntry
 * @param nextPacketSize payload length, &gt; 0
 */
public record DeviceStatePacket(String idstr, int instanceId, int nextPacketSize) {
    public static final int SIZE = 276;
    static final int IDSTR = 12;
    static final int IDSTR_LEN = 256;
    static final int INSTANCE_ID = 268;
    static final int NEXT_PACKET_SIZE = 272;

    public DeviceStatePacket {
        int n = idstr == null ? 0 : idstr.getBytes(StandardCharsets.ISO_8859_1).length;
        if (n == 0 || n > 255) {
            throw new IllegalArgumentException("device-state idstr must be 1..255 bytes: " + idstr);
        }
        if (nextPacketSize <= 0) {
            throw new IllegalArgumentException("device-state payload must not be empty");
        }
    }

    /** Writes the 276 header bytes at absolute index {@code at} of {@code dst}. */
    public void encode(ByteBuffer dst, int at) {
        PacketHeader.encode(dst, at, PacketHeader.FLAG_DEVICE_STATE);
        byte[] name = idstr.getBytes(StandardCharsets.ISO_8859_1);
        dst.put(at + IDSTR, name);
        for (int i = name.length; i < IDSTR_LEN; i++) {
            dst.put(at + IDSTR + i, (byte) 0);
        }
        dst.putInt(at + INSTANCE_ID, instanceId).putInt(at + NEXT_PACKET_SIZE, nextPacketSize);
    }

    /**
     * Decodes the header whose 276 bytes start at absolute index {@code at} of {@code src}
     * (the 12-byte packet header already validated).
     *
     * @param maxPayload the configured maximum for next_packet_size
     */
    public static DeviceStatePacket decode(ByteBuffer src, int at, long maxPayload, String channel, long streamOffset) {
        if (src.get(at + IDSTR + IDSTR_LEN - 1) != 0) {
            throw new StreamException(Category.PROTOCOL, channel, streamOffset + IDSTR,
                    "unterminated multifd device state idstr: byte 255 of the idstr field must be 0");
        }
        int n = 0;
        while (src.get(at + IDSTR + n) != 0) {
            n++;
        }
        if (n == 0) {
            throw new StreamException(Category.PROTOCOL, channel, streamOffset + IDSTR,
                    "empty idstr in multifd device-state packet");
        }
        byte[] name = new byte[n];
        src.get(at + IDSTR, name);
        int instance = src.getInt(at + INSTANCE_ID);
        long size = src.getInt(at + NEXT_PACKET_SIZE) & 0xffff_ffffL;
        if (size == 0) {
            throw new StreamException(Category.PROTOCOL, channel, streamOffset + NEXT_PACKET_SIZE,
                    "received empty device state packet (next_packet_size 0)");
        }
        if (size > maxPayload) {
            throw new StreamException(Category.LIMIT, channel, streamOffset + NEXT_PACKET_SIZE,
                    "device-state next_packet_size " + size + " exceeds the maximum of " + maxPayload + " bytes");
        }
        return new DeviceStatePacket(new String(name, StandardCharsets.ISO_8859_1), instance, (int) size);
    }
}
