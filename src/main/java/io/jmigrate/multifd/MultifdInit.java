package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.StreamException;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * {@code MultiFDInit_t}: the first 64 bytes on every multifd channel (PROTOCOL.md §2.3).
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                    magic 0x11223344 (be32)                    |  0
 * +---------------------------------------------------------------+
 * |                       version 1 (be32)                        |  4
 * +---------------------------------------------------------------+
 * |                  uuid (16 raw bytes, qemu_uuid)               |  8
 * |                             ...                               |
 * +---------------+-----------------------------------------------+
 * |   id (u8)     |           unused1: 7 zero bytes               | 24
 * +---------------+-----------------------------------------------+
 * |                unused2: 4 x u64, 32 zero bytes                | 32
 * +---------------------------------------------------------------+  64
 * </pre>
 *
 * Packed, big-endian, since QEMU 2.11. The destination checks magic, version, that the UUID
 * equals its own (all zero when neither side set {@code -uuid}) and that the id is below the
 * channel count; duplicate ids are the caller's business ({@link MultifdReceiver}).
 *
 * @param uuid 16 bytes (copied)
 * @param id   channel index 0..254
 */
public record MultifdInit(byte[] uuid, int id) {
    public static final int SIZE = 64;
    public static final int MAGIC = 0x11223344;
    public static final int VERSION = 1;
    public static final int UUID_LEN = 16;

    public MultifdInit {
        if (uuid == null || uuid.length != UUID_LEN) {
            throw new IllegalArgumentException("uuid must be 16 bytes");
        }
        if (id < 0 || id > 255) {
            throw new IllegalArgumentException("channel id must be 0..255: " + id);
        }
        uuid = uuid.clone();
    }

    @Override
    public byte[] uuid() {
        return uuid.clone();
    }

    /** Writes the 64 bytes at {@code dst}'s position (which advances by 64). */
    public void encode(ByteBuffer dst) {
        int start = dst.position();
        dst.putInt(start, MAGIC).putInt(start + 4, VERSION).put(start + 8, uuid).put(start + 24, (byte) id);
        for (int i = 25; i < SIZE; i++) {
            dst.put(start + i, (byte) 0);
        }
        dst.position(start + SIZE);
    }

    public ByteBuffer toBuffer() {
        ByteBuffer b = ByteBuffer.allocate(SIZE);
        encode(b);
        return b.flip();
    }

    /**
     * Decodes 64 bytes at {@code src}'s position and validates magic and version. Errors name
     * {@code channel} and byte offset (the init record is always at offset 0).
     */
    public static MultifdInit decode(ByteBuffer src, String channel) {
        int start = src.position();
        if (src.remaining() < SIZE) {
            throw new StreamException(Category.PROTOCOL, channel, 0,
                    "truncated multifd init packet: expected 64 bytes, got " + src.remaining());
        }
        int magic = src.getInt(start);
        if (magic != MAGIC) {
            throw new StreamException(Category.PROTOCOL, channel, 0, String.format(
                    "wrong multifd init magic 0x%08x, expected 0x%08x", magic, MAGIC));
        }
        int version = src.getInt(start + 4);
        if (version != VERSION) {
            throw new StreamException(Category.PROTOCOL, channel, 4, "unsupported multifd init version "
                    + Integer.toUnsignedString(version) + ", expected " + VERSION);
        }
        byte[] uuid = new byte[UUID_LEN];
        src.get(start + 8, uuid);
        int id = src.get(start + 24) & 0xff;
        src.position(start + SIZE);
        return new MultifdInit(uuid, id);
    }

    /** Checks the UUID against the destination's and the id against the channel count. */
    public MultifdInit validate(byte[] expectedUuid, int channelCount, String channel) {
        if (!Arrays.equals(uuid, expectedUuid)) {
            throw new StreamException(Category.MISMATCH, channel, 8, "multifd init UUID "
                    + HexFormat.of().formatHex(uuid) + " does not match the destination's UUID "
                    + HexFormat.of().formatHex(expectedUuid));
        }
        if (id >= channelCount) {
            throw new StreamException(Category.MISMATCH, channel, 24, "multifd channel id " + id
                    + " is out of range: the destination expects " + channelCount + " channel(s), ids 0.."
                    + (channelCount - 1));
        }
        return this;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof MultifdInit m && m.id == id && Arrays.equals(m.uuid, uuid);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(uuid) + id;
    }

    @Override
    public String toString() {
        return "MultifdInit[id=" + id + ", uuid=" + HexFormat.of().formatHex(uuid) + "]";
    }
}
