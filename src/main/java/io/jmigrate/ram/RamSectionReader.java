package io.jmigrate.ram;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.StreamException;
import io.jmigrate.stream.QemuFileReader;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the records of {@code ram} section bodies (PROTOCOL.md §1.11) and hands them to a
 * {@link RamLoadSink}. One reader serves one main stream: it remembers the last block across
 * sections (for CONTINUE) and the block lengths announced by MEM_SIZE (for offset checks).
 *
 * <pre>
 * record  = be64 (offset | flags) payload
 * MEM_SIZE: offset bits = total bytes; then until the lengths add up to the total:
 *           u8 len, idstr, be64 used_length [, be64 GPA if x-ignore-shared]
 * ZERO:     [u8 len, idstr unless CONTINUE], u8 fill (must be 0)
 * PAGE:     [u8 len, idstr unless CONTINUE], pageSize bytes
 * MULTIFD_FLUSH, EOS: nothing
 * </pre>
 *
 * Every value is checked before use: flag combinations, block names against the block list,
 * offsets against block lengths, and the block list's sum against its total.
 */
public final class RamSectionReader {
    /** Upper bound on blocks in one MEM_SIZE list (QEMU machines have a few dozen). */
    public static final int MAX_BLOCKS = 4096;
    /** What a page's bytes are called in errors (the error names the stream offset; no per-page string). */
    private static final String PAGE_DATA = "page data";

    private final int pageSize;
    private final boolean ignoreShared;
    private final Map<String, Long> blockLengths = new LinkedHashMap<>();
    private String lastBlock;

    /**
     * @param pageSize     target page size (a power of two, at least 1 KiB)
     * @param ignoreShared whether the x-ignore-shared capability is on (adds a GPA to each block)
     */
    public RamSectionReader(int pageSize, boolean ignoreShared) {
        if (Integer.bitCount(pageSize) != 1 || pageSize < RamFlags.LIMIT) {
            throw new IllegalArgumentException("page size must be a power of two >= 1024: " + pageSize);
        }
        this.pageSize = pageSize;
        this.ignoreShared = ignoreShared;
    }

    public RamSectionReader(int pageSize) {
        this(pageSize, false);
    }

    public int pageSize() {
        return pageSize;
    }

    /** The blocks announced so far, in stream order, with their lengths. */
    public Map<String, Long> blockLengths() {
        return Map.copyOf(blockLengths);
    }

    /**
     * Reads records up to and including EOS. {@code section} names the section in errors
     * (e.g. "ram section 2 (START)").
     */
    public void readSection(QemuFileReader r, RamLoadSink sink, String section) {
        while (true) {
            long at = r.position();
            long word = r.readBe64("RAM record header");
            int flags = (int) (word & (pageSize - 1));
            long offset = word & ~((long) pageSize - 1);
            sink.recordHeader(flags, offset, at);
            int kind = flags & ~RamFlags.CONTINUE;
            switch (kind) {
                case RamFlags.MEM_SIZE -> readBlockList(r, sink, offset, at, section);
                case RamFlags.ZERO -> {
                    String block = blockFromStream(r, flags, at, section);
                    checkOffset(r, block, offset, at, section);
                    long fillAt = r.position();
                    int fill = r.readU8("zero page fill byte");
                    if (fill != 0) {
                        throw r.fail(Category.PROTOCOL, fillAt, section + ": zero page at " + hex(offset) + " of block '"
                                + block + "' has fill byte " + fill + ", expected 0");
                    }
                    sink.zeroPage(block, offset);
                }
                case RamFlags.PAGE -> {
                    String block = blockFromStream(r, flags, at, section);
                    checkOffset(r, block, offset, at, section);
                    MemorySegment whole = sink.blockTarget(block);
                    if (whole != null) {
                        if (offset < 0 || offset > whole.byteSize() - pageSize) {
                            throw r.fail(Category.PROTOCOL, at, section + ": page offset " + hex(offset)
                                    + " is outside RAMBlock '" + block + "' of " + whole.byteSize() + " bytes");
                        }
                        r.readFully(whole, offset, pageSize, PAGE_DATA);
                    } else {
                        MemorySegment target = sink.pageTarget(block, offset);
                        if (target == null) {
                            r.skip(pageSize, PAGE_DATA);
                        } else {
                            if (target.byteSize() != pageSize) {
                                throw new IllegalStateException("page target must be one page, got " + target.byteSize());
                            }
                            r.readFully(target, 0, pageSize, PAGE_DATA);
                        }
                    }
                    sink.pageLoaded(block, offset);
                }
                case RamFlags.MULTIFD_FLUSH -> {
                    requireNoContinue(r, flags, at, section, "MULTIFD_FLUSH");
                    sink.multifdFlush();
                }
                case RamFlags.EOS -> {
                    requireNoContinue(r, flags, at, section, "EOS");
                    sink.endOfSection();
                    return;
                }
                default -> throw r.fail(Category.PROTOCOL, at, section + ": unsupported RAM record flags 0x"
                        + Integer.toHexString(flags) + " (" + RamFlags.describe(flags) + "); expected exactly one of "
                        + "MEM_SIZE, ZERO, PAGE, MULTIFD_FLUSH or EOS (XBZRLE, HOOK/RDMA and compressed pages are not "
                        + "supported)");
            }
        }
    }

    private void requireNoContinue(QemuFileReader r, int flags, long at, String section, String what) {
        if ((flags & RamFlags.CONTINUE) != 0) {
            throw r.fail(Category.PROTOCOL, at, section + ": " + what + " record has the CONTINUE flag set");
        }
    }

    private void readBlockList(QemuFileReader r, RamLoadSink sink, long total, long at, String section) {
        List<RamBlockInfo> blocks = new ArrayList<>();
        long sum = 0;
        while (sum < total) {
            if (blocks.size() >= MAX_BLOCKS) {
                throw r.fail(Category.LIMIT, at, section + ": RAM block list has more than " + MAX_BLOCKS + " blocks");
            }
            long nameAt = r.position();
            String name = r.readCountedString("RAMBlock idstr");
            if (name.isEmpty()) {
                throw r.fail(Category.PROTOCOL, nameAt, section + ": empty RAMBlock idstr in the block list");
            }
            long lenAt = r.position();
            long len = r.readBe64("RAMBlock used_length of '" + name + "'");
            if (len <= 0 || len > total - sum || len % pageSize != 0) {
                throw r.fail(Category.PROTOCOL, lenAt, section + ": RAMBlock '" + name + "' has used_length "
                        + Long.toUnsignedString(len) + ", expected a positive multiple of " + pageSize
                        + " no larger than the " + (total - sum) + " bytes left of the announced total " + total);
            }
            if (ignoreShared) {
                r.readBe64("RAMBlock guest physical address");
            }
            if (blocks.stream().anyMatch(b -> b.idstr().equals(name))) {
                throw r.fail(Category.PROTOCOL, nameAt, section + ": RAMBlock '" + name + "' listed twice");
            }
            blocks.add(new RamBlockInfo(name, len));
            blockLengths.put(name, len);
            sum += len;
        }
        try {
            sink.blockList(total, List.copyOf(blocks));
        } catch (StreamException e) {
            throw e;
        } catch (MigrationException e) {
            // the sink rejected the block list (size or name mismatch): say where in the stream
            throw r.fail(e.category(), at, section + ": block list: " + e.getMessage());
        }
    }

    private String blockFromStream(QemuFileReader r, int flags, long at, String section) {
        if ((flags & RamFlags.CONTINUE) != 0) {
            if (lastBlock == null) {
                throw r.fail(Category.PROTOCOL, at, section + ": RAM record has CONTINUE but no block was named before");
            }
            return lastBlock;
        }
        long nameAt = r.position();
        String name = r.readCountedString("RAMBlock idstr");
        if (!blockLengths.isEmpty() && !blockLengths.containsKey(name)) {
            throw r.fail(Category.MISMATCH, nameAt, section + ": unknown RAMBlock '" + name
                    + "' (not in the block list: " + blockLengths.keySet() + ")");
        }
        lastBlock = name;
        return name;
    }

    private void checkOffset(QemuFileReader r, String block, long offset, long at, String section) {
        Long len = blockLengths.get(block);
        if (len != null && (offset < 0 || offset > len - pageSize)) {
            throw r.fail(Category.PROTOCOL, at, section + ": page offset " + hex(offset) + " is outside RAMBlock '"
                    + block + "' of " + len + " bytes");
        }
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }
}
