package io.jmigrate.analyze;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.ram.RamBlockInfo;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.BitSet;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Writes each RAMBlock of a stream into its own file under a directory, without holding guest RAM
 * in the heap: every file is created sparse at the block's used length and mapped; normal pages
 * are read from the stream straight into the mapping, zero pages leave the hole alone (or clear
 * a page written earlier in the stream). Memory use is one bit per page for "written non-zero".
 *
 * <p>File names: the RAMBlock idstr with every character outside {@code [A-Za-z0-9._@:+-]}
 * (notably '/') replaced by '_', a leading '.' replaced too, then {@code .ram}; a name taken
 * twice gets {@code -2}, {@code -3}, ... {@link #files()} maps idstrs to the files.
 *
 * <p>For a multifd capture, {@link #mapping(String, long)} hands a block's whole mapping to the
 * multifd receiver, which overlays main-channel and multifd pages in it with its own
 * received-page bookkeeping.
 */
public final class RamExtractor implements AutoCloseable {
    private final Path dir;
    private final int pageSize;
    private final Arena arena = Arena.ofShared();
    private final Map<String, Block> blocks = new LinkedHashMap<>();
    private final Set<String> usedNames = new HashSet<>();

    private record Block(String idstr, long length, Path file, MemorySegment mapping, BitSet written) {
    }

    /** Creates {@code dir} if needed; files appear when the block list is read. */
    public RamExtractor(Path dir, int pageSize) {
        this.dir = dir;
        this.pageSize = pageSize;
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot create directory " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Creates and maps the files of a block list (a block seen before must keep its length). */
    public void blockList(java.util.List<RamBlockInfo> list) {
        for (RamBlockInfo b : list) {
            Block old = blocks.get(b.idstr());
            if (old != null) {
                if (old.length() != b.usedLength()) {
                    throw new MigrationException(Category.PROTOCOL, "RAMBlock '" + b.idstr() + "' announced again with length "
                            + b.usedLength() + " after " + old.length());
                }
                continue;
            }
            long pages = b.usedLength() / pageSize;
            if (pages > Integer.MAX_VALUE) {
                throw new MigrationException(Category.LIMIT, "RAMBlock '" + b.idstr() + "' of " + b.usedLength()
                        + " bytes has too many pages to extract");
            }
            Path file = dir.resolve(fileName(b.idstr()));
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.READ, StandardOpenOption.WRITE, StandardOpenOption.SPARSE)) {
                ch.truncate(0);
                if (b.usedLength() > 0) {
                    ch.write(java.nio.ByteBuffer.allocate(1), b.usedLength() - 1);
                }
                MemorySegment m = b.usedLength() == 0 ? MemorySegment.NULL
                        : ch.map(FileChannel.MapMode.READ_WRITE, 0, b.usedLength(), arena);
                blocks.put(b.idstr(), new Block(b.idstr(), b.usedLength(), file, m, new BitSet((int) pages)));
            } catch (IOException e) {
                throw new MigrationException(Category.IO, "cannot create " + file + " for RAMBlock '" + b.idstr() + "': "
                        + e.getMessage(), e);
            }
        }
    }

    private String fileName(String idstr) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < idstr.length(); i++) {
            char c = idstr.charAt(i);
            boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || c == '.' || c == '_' || c == '@' || c == ':' || c == '+' || c == '-';
            sb.append(ok && !(i == 0 && c == '.') ? c : '_');
        }
        String base = sb.isEmpty() ? "_" : sb.toString();
        String name = base + ".ram";
        for (int n = 2; !usedNames.add(name); n++) {
            name = base + "-" + n + ".ram";
        }
        return name;
    }

    private Block block(String idstr, long offset) {
        Block b = blocks.get(idstr);
        if (b == null) {
            throw new MigrationException(Category.PROTOCOL, "page for RAMBlock '" + idstr
                    + "' that no MEM_SIZE block list announced");
        }
        if (offset < 0 || offset > b.length() - pageSize) {
            throw new MigrationException(Category.PROTOCOL, "page offset 0x" + Long.toHexString(offset)
                    + " is outside RAMBlock '" + idstr + "' of " + b.length() + " bytes");
        }
        return b;
    }

    /**
     * The whole mapping of a block announced by {@link #blockList}, for a writer that keeps its own
     * zero-page bookkeeping (the multifd capture writes pages into it from its channel threads).
     */
    public MemorySegment mapping(String idstr, long length) {
        Block b = blocks.get(idstr);
        if (b == null || b.length() != length) {
            throw new IllegalStateException("RAMBlock '" + idstr + "' of " + length + " bytes was not announced");
        }
        return b.mapping();
    }

    /** The mapped page to read a normal page into. */
    public MemorySegment pageTarget(String idstr, long offset) {
        Block b = block(idstr, offset);
        b.written().set((int) (offset / pageSize));
        return b.mapping().asSlice(offset, pageSize);
    }

    /** A zero page: clears the page if the stream had written it before. */
    public void zeroPage(String idstr, long offset) {
        Block b = block(idstr, offset);
        int page = (int) (offset / pageSize);
        if (b.written().get(page)) {
            b.mapping().asSlice(offset, pageSize).fill((byte) 0);
            b.written().clear(page);
        }
    }

    /** idstr to extracted file, in block-list order. */
    public Map<String, Path> files() {
        Map<String, Path> m = new LinkedHashMap<>();
        blocks.forEach((k, v) -> m.put(k, v.file()));
        return Collections.unmodifiableMap(m);
    }

    /** Flushes the mappings to their files and unmaps them. */
    @Override
    public void close() {
        try {
            for (Block b : blocks.values()) {
                if (b.mapping().byteSize() > 0) {
                    b.mapping().force();
                }
            }
        } finally {
            arena.close();
        }
    }
}
