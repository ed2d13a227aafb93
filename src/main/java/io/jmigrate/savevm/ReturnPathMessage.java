package io.jmigrate.savevm;

import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileReader;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * One return-path message, destination to source on the reverse direction of the main channel
 * (migration.c {@code migrate_send_rp_message}, PROTOCOL.md §1.10).
 *
 * <pre>
 *  be16 type      1..7 (0 INVALID is never valid)
 *  be16 length    fixed per type, or variable for REQ_PAGES_ID and RECV_BITMAP
 *  len  payload
 *
 *  type name             length  payload
 *   1   SHUT              4      be32 0 = normal end, non-zero = the destination failed
 *   2   PONG              4      be32 echo of the PING command's value
 *   3   REQ_PAGES_ID      var    be64 start, be32 len, u8 n, n bytes RAMBlock idstr (postcopy)
 *   4   REQ_PAGES        12      be64 start, be32 len (postcopy)
 *   5   RECV_BITMAP       var    u8 n, n bytes RAMBlock idstr (postcopy recovery)
 *   6   RESUME_ACK        4      be32 value (postcopy recovery)
 *   7   SWITCHOVER_ACK    0      the source may switch over (switchover-ack capability)
 * </pre>
 */
public sealed interface ReturnPathMessage {
    int HEADER = 4;
    /** Largest payload any message has: REQ_PAGES_ID with a 255-byte name. */
    int MAX_PAYLOAD = 8 + 4 + 1 + 255;

    /** The wire type number. */
    int type();

    /** Writes the payload (without the 4-byte header). */
    void encodePayload(ByteBuffer dst);

    /** Payload length in bytes. */
    int payloadLength();

    record Shut(int status) implements ReturnPathMessage {
        public static final int TYPE = 1;

        public boolean ok() {
            return status == 0;
        }

        @Override
        public int type() {
            return TYPE;
        }

        @Override
        public int payloadLength() {
            return 4;
        }

        @Override
        public void encodePayload(ByteBuffer dst) {
            dst.putInt(status);
        }
    }

    record Pong(int value) implements ReturnPathMessage {
        public static final int TYPE = 2;

        @Override
        public int type() {
            return TYPE;
        }

        @Override
        public int payloadLength() {
            return 4;
        }

        @Override
        public void encodePayload(ByteBuffer dst) {
            dst.putInt(value);
        }
    }

    record ReqPagesId(long start, int len, String block) implements ReturnPathMessage {
        public static final int TYPE = 3;

        public ReqPagesId {
            checkName(block);
        }

        @Override
        public int type() {
            return TYPE;
        }

        @Override
        public int payloadLength() {
            return 13 + block.length();
        }

        @Override
        public void encodePayload(ByteBuffer dst) {
            dst.putLong(start).putInt(len);
            putName(dst, block);
        }
    }

    record ReqPages(long start, int len) implements ReturnPathMessage {
        public static final int TYPE = 4;

        @Override
        public int type() {
            return TYPE;
        }

        @Override
        public int payloadLength() {
            return 12;
        }

        @Override
        public void encodePayload(ByteBuffer dst) {
            dst.putLong(start).putInt(len);
        }
    }

    record RecvBitmap(String block) implements ReturnPathMessage {
        public static final int TYPE = 5;

        public RecvBitmap {
            checkName(block);
        }

        @Override
        public int type() {
            return TYPE;
        }

        @Override
        public int payloadLength() {
            return 1 + block.length();
        }

        @Override
        public void encodePayload(ByteBuffer dst) {
            putName(dst, block);
        }
    }

    record ResumeAck(int value) implements ReturnPathMessage {
        public static final int TYPE = 6;

        @Override
        public int type() {
            return TYPE;
        }

        @Override
        public int payloadLength() {
            return 4;
        }

        @Override
        public void encodePayload(ByteBuffer dst) {
            dst.putInt(value);
        }
    }

    record SwitchoverAck() implements ReturnPathMessage {
        public static final int TYPE = 7;

        @Override
        public int type() {
            return TYPE;
        }

        @Override
        public int payloadLength() {
            return 0;
        }

        @Override
        public void encodePayload(ByteBuffer dst) {
        }
    }

    /** The whole message, header included, ready to write. */
    default ByteBuffer encode() {
        ByteBuffer b = ByteBuffer.allocate(HEADER + payloadLength());
        b.putShort((short) type()).putShort((short) payloadLength());
        encodePayload(b);
        return b.flip();
    }

    /**
     * Reads one message from the return path. Rejects type 0 and unknown types, a length that
     * does not fit the type, and a name length that disagrees with the message length, with
     * the offset in {@code r}'s stream.
     */
    static ReturnPathMessage read(QemuFileReader r) {
        long at = r.position();
        int type = r.readBe16("return-path message type");
        int len = r.readBe16("return-path message length");
        int fixed = switch (type) {
            case Shut.TYPE, Pong.TYPE, ResumeAck.TYPE -> 4;
            case ReqPages.TYPE -> 12;
            case SwitchoverAck.TYPE -> 0;
            case ReqPagesId.TYPE, RecvBitmap.TYPE -> -1;
            default -> throw r.fail(Category.PROTOCOL, at, "unknown return-path message type " + type
                    + " (expected 1 SHUT .. 7 SWITCHOVER_ACK)");
        };
        if (fixed >= 0 ? len != fixed : len > MAX_PAYLOAD || len < (type == ReqPagesId.TYPE ? 14 : 2)) {
            throw r.fail(Category.PROTOCOL, at + 2, "return-path message type " + type + " has length " + len
                    + ", expected " + (fixed >= 0 ? String.valueOf(fixed)
                    : (type == ReqPagesId.TYPE ? 14 : 2) + ".." + MAX_PAYLOAD));
        }
        ByteBuffer p = ByteBuffer.wrap(r.readBytes(len, "return-path message payload"));
        return switch (type) {
            case Shut.TYPE -> new Shut(p.getInt());
            case Pong.TYPE -> new Pong(p.getInt());
            case ResumeAck.TYPE -> new ResumeAck(p.getInt());
            case ReqPages.TYPE -> new ReqPages(p.getLong(), p.getInt());
            case SwitchoverAck.TYPE -> new SwitchoverAck();
            case ReqPagesId.TYPE -> {
                long start = p.getLong();
                int n = p.getInt();
                yield new ReqPagesId(start, n, getName(p, r, at));
            }
            case RecvBitmap.TYPE -> new RecvBitmap(getName(p, r, at));
            default -> throw new IllegalStateException("unreachable: type " + type);
        };
    }

    private static void checkName(String block) {
        if (block == null || block.isEmpty() || block.length() > 255) {
            throw new IllegalArgumentException("RAMBlock idstr must be 1..255 characters: " + block);
        }
    }

    private static void putName(ByteBuffer dst, String block) {
        byte[] b = block.getBytes(StandardCharsets.ISO_8859_1);
        dst.put((byte) b.length).put(b);
    }

    private static String getName(ByteBuffer p, QemuFileReader r, long at) {
        int n = p.get() & 0xff;
        if (n == 0 || n != p.remaining()) {
            throw r.fail(Category.PROTOCOL, at, "return-path message: RAMBlock name length " + n + " but "
                    + p.remaining() + " bytes follow");
        }
        byte[] b = new byte[n];
        p.get(b);
        return new String(b, StandardCharsets.ISO_8859_1);
    }
}
