package io.jmigrate.memory;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * One guest RAM block, QEMU's {@code RAMBlock}: an idstr (the name the migration stream uses),
 * a used length, a page size, and the memory itself as a {@link MemorySegment} from a shared
 * arena or mapped from a file (like {@code memory-backend-file}, {@code share=on} mapping the
 * file read-write shared, {@code share=off} privately so guest writes never reach the file).
 *
 * <p>Guest writes go through the dirty-logging API ({@link #writeByte}, {@link #incrementByte},
 * {@link #markDirty}): the page is marked in the {@link DirtyBitmap} after the store. The
 * migration loader writes straight into {@link #segment()} without dirty logging, as a
 * destination does.
 */
public final class RamBlock {
    public static final int DEFAULT_PAGE_SIZE = 4096;

    private final String idstr;
    private final long usedLength;
    private final int pageSize;
    private final int pageShift;
    private final MemorySegment segment;
    private final DirtyBitmap dirty;
    private final String backing;
    private SegmentWindows windows;
    private FileChannel file;

    private RamBlock(String idstr, MemorySegment segment, int pageSize, String backing) {
        if (idstr == null || idstr.isEmpty() || idstr.length() > 255) {
            throw new IllegalArgumentException("RAM block idstr must be 1..255 characters: " + idstr);
        }
        if (Integer.bitCount(pageSize) != 1 || pageSize < 1024) {
            throw new IllegalArgumentException("page size must be a power of two >= 1024: " + pageSize);
        }
        if (segment.byteSize() == 0 || segment.byteSize() % pageSize != 0) {
            throw new IllegalArgumentException("RAM block " + idstr + " size " + segment.byteSize()
                    + " must be a positive multiple of the page size " + pageSize);
        }
        this.idstr = idstr;
        this.usedLength = segment.byteSize();
        this.pageSize = pageSize;
        this.pageShift = Integer.numberOfTrailingZeros(pageSize);
        this.segment = segment;
        this.dirty = new DirtyBitmap(usedLength / pageSize);
        this.backing = backing;
    }

    /**
     * Anonymous guest RAM, zero, mapped with {@code mmap} and faulted in on first touch (QEMU's
     * {@code memory-backend-ram} without prealloc), unmapped when {@code arena} (which must be
     * shared) closes.
     */
    public static RamBlock anonymous(String idstr, long size, int pageSize, Arena arena) {
        return create(idstr, size, pageSize, MemoryBackend.RAM, arena);
    }

    /**
     * Guest RAM as {@code backend} says: anonymous, a file, or a memfd; then, if asked,
     * transparent huge pages advised and every page faulted in (prealloc) before this returns.
     */
    public static RamBlock create(String idstr, long size, int pageSize, MemoryBackend backend, Arena arena) {
        checkSize(idstr, size, pageSize);
        RamBlock b = switch (backend.kind()) {
            case RAM -> new RamBlock(idstr, Mmap.anonymous(size, arena), pageSize, backend.describe());
            case FILE -> mapFile(idstr, size, pageSize, backend.path(), backend.share(), arena, backend.describe());
            case MEMFD -> {
                int fd = Mmap.memfdCreate("jmigrate-" + idstr);
                // the descriptor is opened as a file through /proc, so Java can map and send it
                Path p = Path.of("/proc/self/fd/" + fd);
                try {
                    yield mapFile(idstr, size, pageSize, p, backend.share(), arena, backend.describe());
                } finally {
                    Mmap.close(fd); // the mapping keeps the memory file alive
                }
            }
        };
        if (backend.thp()) {
            int e = Mmap.madvise(b.segment, Mmap.MADV_HUGEPAGE);
            if (e != 0) {
                System.err.println("jmigrate: madvise(MADV_HUGEPAGE) on block " + idstr + " failed: errno " + e);
            }
        }
        if (backend.prealloc()) {
            b.prealloc();
        }
        return b;
    }

    /**
     * Faults every page in writable (QEMU's {@code prealloc=on}): {@code MADV_POPULATE_WRITE},
     * or, on a kernel without it, a read and write-back of one byte per page.
     */
    private void prealloc() {
        int e = Mmap.madvise(segment, Mmap.MADV_POPULATE_WRITE);
        if (e == 0) {
            return;
        }
        if (!Mmap.unsupported(e)) {
            throw new MigrationException(Category.CONFIG, "prealloc of RAM block " + idstr + " (" + usedLength
                    + " bytes) failed: madvise(MADV_POPULATE_WRITE) errno " + e);
        }
        for (long off = 0; off < usedLength; off += pageSize) {
            segment.set(ValueLayout.JAVA_BYTE, off, segment.get(ValueLayout.JAVA_BYTE, off));
        }
    }

    /**
     * Guest RAM mapped from {@code file} (created and sized if missing or shorter than
     * {@code size}). {@code shared} maps it read-write shared (guest writes reach the file),
     * otherwise privately (copy on write).
     */
    public static RamBlock mapped(String idstr, long size, int pageSize, Path file, boolean shared, Arena arena) {
        checkSize(idstr, size, pageSize);
        return mapFile(idstr, size, pageSize, file, shared, arena, "file=" + file + ",share=" + (shared ? "on" : "off"));
    }

    private static RamBlock mapFile(String idstr, long size, int pageSize, Path file, boolean shared, Arena arena,
                                    String describe) {
        FileChannel ch = null;
        try {
            ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
            if (ch.size() < size) {
                ch.truncate(size);
                // extend sparse: writing the last byte makes the file long enough
                ch.write(java.nio.ByteBuffer.wrap(new byte[] {0}), size - 1);
            }
            MemorySegment mapped = ch.map(shared ? FileChannel.MapMode.READ_WRITE : FileChannel.MapMode.PRIVATE,
                    0, size, arena);
            // The same class of segment as anonymous RAM (a native one, over the mapping, which
            // the arena unmaps): the page loops then see one type whatever the backend, so code
            // the JIT compiled for one backend (in the warm-up, or from the AOT cache's
            // profiles) is not thrown away for another.
            MemorySegment seg = MemorySegment.ofAddress(mapped.address()).reinterpret(size, arena, null);
            RamBlock b = new RamBlock(idstr, seg, pageSize, describe);
            if (shared) {
                // share=on: the file is the guest's memory, so pages can be sent from it (sendfile);
                // the channel closes with the arena
                FileChannel keep = ch;
                MemorySegment.NULL.reinterpret(1, arena, x -> closeQuietly(keep));
                b.file = keep;
                ch = null;
            }
            return b;
        } catch (IOException e) {
            throw new MigrationException(Category.CONFIG, "cannot map guest RAM file " + file + " for block "
                    + idstr + ": " + e.getMessage(), e);
        } finally {
            if (ch != null) {
                closeQuietly(ch);
            }
        }
    }

    private static void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // nothing depends on it
        }
    }

    /**
     * The file whose contents are this block's memory (a {@code share=on} file or a shared
     * memfd), at offset 0, open while the block's arena is; null for private memory. Pages can be
     * sent from it with {@link FileChannel#transferTo} (sendfile), without a copy through user space.
     */
    public FileChannel sharedFile() {
        return file;
    }

    private static void checkSize(String idstr, long size, int pageSize) {
        if (size <= 0 || size % pageSize != 0) {
            throw new MigrationException(Category.CONFIG, "RAM block " + idstr + ": size " + size
                    + " must be a positive multiple of the page size " + pageSize);
        }
        if (size > (1L << 40)) {
            throw new MigrationException(Category.CONFIG, "RAM block " + idstr + ": size " + size + " too large");
        }
    }

    public String idstr() {
        return idstr;
    }

    public long usedLength() {
        return usedLength;
    }

    public int pageSize() {
        return pageSize;
    }

    public long pages() {
        return usedLength >>> pageShift;
    }

    public int pageShift() {
        return pageShift;
    }

    /** The whole block. Writes through it are not dirty-logged. */
    public MemorySegment segment() {
        return segment;
    }

    /** One page of the block (no allocation beyond the slice view). */
    public MemorySegment page(long pageIndex) {
        return segment.asSlice(pageIndex << pageShift, pageSize);
    }

    /**
     * ByteBuffer views of the whole block in 1 GiB windows for system calls only
     * ({@link SegmentWindows#forIo}), made on first use.
     */
    public synchronized SegmentWindows ioWindows() {
        if (windows == null) {
            windows = SegmentWindows.forIo(segment);
        }
        return windows;
    }

    public DirtyBitmap dirtyBitmap() {
        return dirty;
    }

    public String backing() {
        return backing;
    }

    // ---- dirty-logging API (what guest vCPUs write through) -----------------------------------

    public byte readByte(long offset) {
        return segment.get(ValueLayout.JAVA_BYTE, offset);
    }

    public void writeByte(long offset, byte value) {
        segment.set(ValueLayout.JAVA_BYTE, offset, value);
        dirty.set(offset >>> pageShift);
    }

    /** Increments the byte at {@code offset} (wrapping at 256) and returns the new value. */
    public int incrementByte(long offset) {
        byte v = (byte) (segment.get(ValueLayout.JAVA_BYTE, offset) + 1);
        segment.set(ValueLayout.JAVA_BYTE, offset, v);
        dirty.set(offset >>> pageShift);
        return v & 0xff;
    }

    /** Marks the page holding {@code offset} dirty after a write through {@link #segment()}. */
    public void markDirty(long offset) {
        dirty.set(offset >>> pageShift);
    }

    @Override
    public String toString() {
        return "RamBlock[" + idstr + ", " + usedLength + " bytes, " + backing + "]";
    }
}
