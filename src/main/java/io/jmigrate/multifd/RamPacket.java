package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.StreamException;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * {@code MultiFDPacket_t}, the RAM packet (PROTOCOL.md §2.6), as a flyweight over one reused
 * direct buffer: no object per packet or per page. Its length is fixed by the local page size:
 * {@code 320 + 8 * page_count} with {@code page_count = 512 KiB / page_size} (1344 bytes for
 * 4 KiB pages); both ends compute it, so both must use the same target page size.
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |        header: magic, version, flags (12 bytes, {@link PacketHeader})   |   0
 * +---------------------------------------------------------------+
 * |            pages_alloc (be32) = page_count; 0 in SYNC           |  12
 * +---------------------------------------------------------------+
 * |            normal_pages (be32) <= pages_alloc                   |  16
 * +---------------------------------------------------------------+
 * |  next_packet_size (be32): payload bytes after this packet      |  20
 * +---------------------------------------------------------------+
 * |            packet_num (be64), global across channels            |  24
 * +---------------------------------------------------------------+
 * |  zero_pages (be32) <= pages_alloc - normal (QEMU 9.0; 0 before) |  32
 * +---------------------------------------------------------------+
 * |            unused32[1], unused64[3]: 28 zero bytes             |  36
 * +---------------------------------------------------------------+
 * |       ramblock: idstr, NUL-terminated, 256 bytes               |  64
 * +---------------------------------------------------------------+
 * |  offset[page_count] (be64 each): normal_pages offsets, then     | 320
 * |  zero_pages offsets, then zeros                                 |
 * +---------------------------------------------------------------+ 320 + 8 * page_count
 * payload: nocomp = the normal pages' bytes in offset order (normal_pages * page_size);
 *          zlib/zstd = next_packet_size compressed bytes
 * </pre>
 *
 * QEMU 7.2 had {@code unused[4]} where 9.0 put zero_pages (always 0 then). QEMU &lt; 9.0 repeats
 * a stale next_packet_size in packets without pages, so for nocomp the payload length is
 * {@code normal_pages * page_size} and next_packet_size is checked only when pages follow.
 */
public final class RamPacket {
    /** MULTIFD_PACKET_SIZE: payload capacity of one packet in bytes. */
    public static final int PACKET_DATA_SIZE = 512 * 1024;
    public static final int FIXED_SIZE = 320;
    static final int PAGES_ALLOC = 12;
    static final int NORMAL_PAGES = 16;
    static final int NEXT_PACKET_SIZE = 20;
    static final int PACKET_NUM = 24;
    static final int ZERO_PAGES = 32;
    static final int RAMBLOCK = 64;
    static final int RAMBLOCK_LEN = 256;
    static final int OFFSETS = 320;
    /** Largest compressed payload accepted: twice the packet data size, as QEMU's zbuff. */
    public static final int MAX_COMPRESSED = 2 * PACKET_DATA_SIZE;

    private final int pageSize;
    private final int pageCount;
    private final ByteBuffer buf;
    /** {@link #buf} as a segment, made once ({@code MemorySegment.ofBuffer} makes two objects a call). */
    private final MemorySegment seg;
    /** Destination: the block resolved for the last packet, to avoid a lookup and a String per packet. */
    private MultifdBlock cachedBlock;

    public RamPacket(int pageSize) {
        this.pageSize = checkPageSize(pageSize);
        this.pageCount = PACKET_DATA_SIZE / pageSize;
        this.buf = ByteBuffer.allocateDirect(length(pageSize)).order(ByteOrder.BIG_ENDIAN);
        this.seg = MemorySegment.ofBuffer(buf);
    }

    static int checkPageSize(int pageSize) {
        if (pageSize < 1024 || pageSize > PACKET_DATA_SIZE || Integer.bitCount(pageSize) != 1) {
            throw new IllegalArgumentException("target page size must be a power of two in 1 KiB..512 KiB: "
                    + pageSize);
        }
        return pageSize;
    }

    /** The fixed on-wire length of a RAM packet for {@code pageSize}. */
    public static int length(int pageSize) {
        return FIXED_SIZE + 8 * (PACKET_DATA_SIZE / checkPageSize(pageSize));
    }

    public int length() {
        return buf.capacity();
    }

    public int pageSize() {
        return pageSize;
    }

    public int pageCount() {
        return pageCount;
    }

    /** The backing buffer (position 0, limit = length): read into it or write it out. */
    public ByteBuffer buffer() {
        return buf.clear();
    }

    // ---- getters ----------------------------------------------------------------------------

    public int flags() {
        return buf.getInt(8);
    }

    public long pagesAlloc() {
        return buf.getInt(PAGES_ALLOC) & 0xffff_ffffL;
    }

    public long normalPages() {
        return buf.getInt(NORMAL_PAGES) & 0xffff_ffffL;
    }

    public long zeroPages() {
        return buf.getInt(ZERO_PAGES) & 0xffff_ffffL;
    }

    public long nextPacketSize() {
        return buf.getInt(NEXT_PACKET_SIZE) & 0xffff_ffffL;
    }

    public long packetNum() {
        return buf.getLong(PACKET_NUM);
    }

    public long offset(int i) {
        return buf.getLong(OFFSETS + 8 * i);
    }

    /** The ramblock field up to its first NUL (allocates: for reports and errors). */
    public String blockName() {
        int n = 0;
        while (n < RAMBLOCK_LEN && buf.get(RAMBLOCK + n) != 0) {
            n++;
        }
        byte[] b = new byte[n];
        buf.get(RAMBLOCK, b);
        return new String(b, StandardCharsets.ISO_8859_1);
    }

    // ---- setters (source) -------------------------------------------------------------------

    /** Zeroes the whole packet, then writes magic, version and {@code flags}. */
    public RamPacket reset(int flags) {
        buf.clear();
        seg.fill((byte) 0);
        PacketHeader.encode(buf, 0, flags);
        return this;
    }

    public RamPacket pagesAlloc(int v) {
        buf.putInt(PAGES_ALLOC, v);
        return this;
    }

    public RamPacket normalPages(int v) {
        buf.putInt(NORMAL_PAGES, v);
        return this;
    }

    public RamPacket zeroPages(int v) {
        buf.putInt(ZERO_PAGES, v);
        return this;
    }

    public RamPacket nextPacketSize(int v) {
        buf.putInt(NEXT_PACKET_SIZE, v);
        return this;
    }

    public RamPacket packetNum(long v) {
        buf.putLong(PACKET_NUM, v);
        return this;
    }

    public RamPacket offset(int i, long v) {
        buf.putLong(OFFSETS + 8 * i, v);
        return this;
    }

    public RamPacket blockName(byte[] name) {
        if (name.length >= RAMBLOCK_LEN) {
            throw new IllegalArgumentException("RAMBlock idstr longer than 255 bytes");
        }
        buf.put(RAMBLOCK, name);
        buf.put(RAMBLOCK + name.length, (byte) 0);
        return this;
    }

    public RamPacket blockName(String name) {
        return blockName(name.getBytes(StandardCharsets.ISO_8859_1));
    }

    // ---- validation (destination) -----------------------------------------------------------

    /**
     * Validates the packet just read into {@link #buffer()} against the local page size and
     * blocks, before anything touches guest memory. Header magic/version/flags must have been
     * checked ({@link PacketHeader#decodeFlags}).
     *
     * @param compressionFlag the compression bits this destination expects (0 for none)
     * @return the block the pages belong to, or null when the packet carries no pages
     */
    public MultifdBlock validate(PageSink sink, int compressionFlag, String channel, long at) {
        long alloc = pagesAlloc();
        if (alloc > pageCount) {
            throw fail(channel, at + PAGES_ALLOC, Category.LIMIT, "pages_alloc " + alloc
                    + " exceeds this destination's capacity of " + pageCount + " pages per packet (page size "
                    + pageSize + ")");
        }
        long normal = normalPages();
        if (normal > alloc) {
            throw fail(channel, at + NORMAL_PAGES, Category.LIMIT, "normal_pages " + normal
                    + " exceeds pages_alloc " + alloc);
        }
        long zero = zeroPages();
        if (zero > alloc - normal) {
            throw fail(channel, at + ZERO_PAGES, Category.LIMIT, "zero_pages " + zero
                    + " exceeds pages_alloc - normal_pages = " + (alloc - normal));
        }
        if (normal + zero == 0) {
            return null;
        }
        int comp = flags() & PacketHeader.FLAG_COMPRESSION_MASK;
        if (comp != compressionFlag) {
            throw fail(channel, at + 8, Category.MISMATCH, String.format(
                    "packet compression flags 0x%02x, expected 0x%02x (%s)", comp, compressionFlag,
                    MultifdCompression.fromFlag(compressionFlag)));
        }
        long next = nextPacketSize();
        if (compressionFlag == PacketHeader.FLAG_NOCOMP) {
            if (normal > 0 && next != normal * pageSize) {
                throw fail(channel, at + NEXT_PACKET_SIZE, Category.PROTOCOL, "next_packet_size " + next
                        + " does not match normal_pages " + normal + " x page size " + pageSize);
            }
        } else if (normal > 0 && (next == 0 || next > MAX_COMPRESSED)) {
            throw fail(channel, at + NEXT_PACKET_SIZE, Category.LIMIT, "compressed next_packet_size " + next
                    + " is outside 1.." + MAX_COMPRESSED);
        }
        if (buf.get(RAMBLOCK + RAMBLOCK_LEN - 1) != 0) {
            throw fail(channel, at + RAMBLOCK, Category.PROTOCOL, "ramblock name is not NUL-terminated");
        }
        MultifdBlock block = resolve(sink, channel, at);
        long last = block.usedLength() - pageSize;
        int used = (int) (normal + zero);
        for (int i = 0; i < used; i++) {
            long off = offset(i);
            if (off < 0 || off > last || (off & (pageSize - 1)) != 0) {
                throw fail(channel, at + OFFSETS + 8L * i, Category.PROTOCOL, "offset[" + i + "] 0x"
                        + Long.toHexString(off) + " is outside " + block + ": expected a multiple of " + pageSize
                        + " in 0..0x" + Long.toHexString(last));
            }
        }
        return block;
    }

    /** Bytes of payload that follow this packet on the wire (after {@link #validate}). */
    public long payloadLength(int compressionFlag) {
        long normal = normalPages();
        if (normal == 0) {
            return 0;
        }
        return compressionFlag == PacketHeader.FLAG_NOCOMP ? normal * pageSize : nextPacketSize();
    }

    private MultifdBlock resolve(PageSink sink, String channel, long at) {
        MultifdBlock c = cachedBlock;
        if (c != null && nameEquals(c.nameBytes())) {
            return c;
        }
        String name = blockName();
        MultifdBlock b = name.isEmpty() ? null : sink.block(name);
        if (b == null) {
            throw fail(channel, at + RAMBLOCK, Category.MISMATCH, "unknown RAMBlock \"" + name
                    + "\": the destination has no block of that name");
        }
        if (b.pageSize() != pageSize) {
            throw fail(channel, at + RAMBLOCK, Category.MISMATCH, b + " has page size " + b.pageSize()
                    + " but the channel uses " + pageSize);
        }
        cachedBlock = b;
        return b;
    }

    private boolean nameEquals(byte[] name) {
        for (int i = 0; i < name.length; i++) {
            if (buf.get(RAMBLOCK + i) != name[i]) {
                return false;
            }
        }
        return buf.get(RAMBLOCK + name.length) == 0;
    }

    private static StreamException fail(String channel, long at, Category c, String what) {
        return new StreamException(c, channel, at, "RAM packet: " + what);
    }
}
