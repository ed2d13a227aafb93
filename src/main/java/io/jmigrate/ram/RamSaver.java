package io.jmigrate.ram;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.RamBlock;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.function.LongConsumer;

/**
 * The source side of the {@code ram} section over the main channel (PROTOCOL.md §1.11), with
 * zero-page detection on the migration thread ({@code zero-page-detection=legacy}; with
 * {@code none} every page goes out as PAGE).
 *
 * <pre>
 * START:  be64 (total | MEM_SIZE)
 *         per block: u8 len, idstr, be64 used_length
 *         be64 EOS
 * PART:   page records, then be64 EOS
 * END:    page records of the final dirty sync, then be64 EOS
 * record: be64 (offset | ZERO|PAGE [| CONTINUE])
 *         [u8 len, idstr]      unless CONTINUE (same block as the previous record of the section)
 *         ZERO: u8 0           PAGE: page-size bytes, written straight from guest memory
 * </pre>
 *
 * The migration bitmap is owned by the migration thread; vCPUs only touch each block's
 * {@link io.jmigrate.memory.DirtyBitmap}, which {@link #syncDirty} collects and clears. A page's
 * bit is cleared before its bytes are read, so a write racing with the send is caught by the
 * next sync.
 */
public final class RamSaver implements SaveVmHandlers {
    /** QEMU bounds one iteration to 50 ms so that the migration thread stays responsive. */
    private static final long MAX_ITERATE_NANOS = 50_000_000L;

    private final List<RamBlock> blocks;
    private final long[][] migBitmap;
    /** One ByteBuffer view per block (null above 2 GiB), so pages are queued without allocation. */
    private final java.nio.ByteBuffer[] views;
    private final RamStats stats;
    private final LongConsumer onSync;
    private final int pageSize;
    private final MemorySegment zeroPage;
    private final Arena arena = Arena.ofShared();
    private int cursorBlock;
    private long cursorPage;
    private RamBlock lastSent;
    private long lastSyncNanos;
    private final boolean zeroPageDetection;

    /**
     * @param onSync called after every dirty sync with the new {@code dirty-sync-count}
     *               (the MIGRATION_PASS event)
     */
    public RamSaver(List<RamBlock> blocks, RamStats stats, LongConsumer onSync, boolean zeroPageDetection) {
        this.zeroPageDetection = zeroPageDetection;
        if (blocks.isEmpty()) {
            throw new IllegalArgumentException("no RAM blocks");
        }
        this.blocks = List.copyOf(blocks);
        this.pageSize = blocks.getFirst().pageSize();
        for (RamBlock b : blocks) {
            if (b.pageSize() != pageSize) {
                throw new IllegalArgumentException("RAM blocks with different page sizes");
            }
        }
        this.views = new java.nio.ByteBuffer[blocks.size()];
        for (int i = 0; i < blocks.size(); i++) {
            RamBlock b = blocks.get(i);
            views[i] = b.usedLength() <= Integer.MAX_VALUE ? b.segment().asByteBuffer() : null;
        }
        this.migBitmap = new long[blocks.size()][];
        for (int i = 0; i < blocks.size(); i++) {
            migBitmap[i] = new long[blocks.get(i).dirtyBitmap().wordCount()];
        }
        this.stats = stats;
        this.onSync = onSync;
        this.zeroPage = arena.allocate(pageSize);
        long total = 0;
        for (RamBlock b : blocks) {
            total += b.usedLength();
        }
        stats.totalBytes = total;
        stats.pageSize = pageSize;
    }

    @Override
    public boolean isIterable() {
        return true;
    }

    public long totalBytes() {
        return stats.totalBytes;
    }

    @Override
    public void saveSetup(QemuFileWriter w) {
        w.putBe64(stats.totalBytes | RamFlags.MEM_SIZE);
        for (RamBlock b : blocks) {
            w.putCountedString(b.idstr());
            w.putBe64(b.usedLength());
        }
        // Start dirty logging: forget writes before now, then mark everything to be sent.
        long remaining = 0;
        for (int i = 0; i < blocks.size(); i++) {
            RamBlock b = blocks.get(i);
            b.dirtyBitmap().syncInto(new long[b.dirtyBitmap().wordCount()]);
            long pages = b.pages();
            long[] bm = migBitmap[i];
            java.util.Arrays.fill(bm, -1L);
            if ((pages & 63) != 0) {
                bm[bm.length - 1] = (1L << (pages & 63)) - 1;
            }
            remaining += pages;
        }
        stats.remainingPages = remaining;
        lastSyncNanos = System.nanoTime();
        stats.dirtySyncCount = 1;
        onSync.accept(1);
        w.putBe64(RamFlags.EOS);
    }

    @Override
    public long pendingEstimate() {
        return stats.remainingPages * pageSize;
    }

    @Override
    public long pendingExact() {
        syncDirty();
        return stats.remainingPages * pageSize;
    }

    /** Collects the vCPUs' dirty log into the migration bitmap ({@code migration_bitmap_sync}). */
    public void syncDirty() {
        syncDirty(true);
    }

    private void syncDirty(boolean measureRate) {
        long added = 0;
        for (int i = 0; i < blocks.size(); i++) {
            added += blocks.get(i).dirtyBitmap().syncInto(migBitmap[i]);
        }
        long now = System.nanoTime();
        long elapsed = Math.max(1, now - lastSyncNanos);
        lastSyncNanos = now;
        if (measureRate) { // the final sync with the VM stopped says nothing about the guest's rate
            stats.lastSyncDirtyPages = added;
            stats.dirtyPagesRate = (long) (added * 1e9 / elapsed);
        }
        stats.remainingPages += added;
        long n = stats.dirtySyncCount + 1;
        stats.dirtySyncCount = n;
        onSync.accept(n);
    }

    @Override
    public boolean saveIterate(QemuFileWriter w, RateLimit limit) {
        lastSent = null;
        long start = System.nanoTime();
        int sinceCheck = 0;
        while (true) {
            if (!sendNextDirty(w)) {
                cursorBlock = 0;
                cursorPage = 0;
                w.putBe64(RamFlags.EOS);
                return true;
            }
            if (++sinceCheck >= 16) {
                sinceCheck = 0;
                if (limit.exceeded() || System.nanoTime() - start > MAX_ITERATE_NANOS) {
                    w.putBe64(RamFlags.EOS);
                    return false;
                }
            }
        }
    }

    @Override
    public void saveComplete(QemuFileWriter w) {
        syncDirty(false);
        lastSent = null;
        cursorBlock = 0;
        cursorPage = 0;
        while (sendNextDirty(w)) {
            // the VM is stopped: send everything, no rate limit
        }
        w.putBe64(RamFlags.EOS);
    }

    /** Finds the next dirty page from the cursor, sends it; false when the pass is done. */
    private boolean sendNextDirty(QemuFileWriter w) {
        while (cursorBlock < blocks.size()) {
            long[] bm = migBitmap[cursorBlock];
            RamBlock b = blocks.get(cursorBlock);
            long pages = b.pages();
            long p = cursorPage;
            while (p < pages) {
                int wi = (int) (p >>> 6);
                long word = bm[wi] & (-1L << (p & 63));
                if (word == 0) {
                    p = (long) (wi + 1) << 6;
                    continue;
                }
                long page = ((long) wi << 6) + Long.numberOfTrailingZeros(word);
                if (page >= pages) {
                    break;
                }
                bm[wi] &= ~(1L << (page & 63));
                stats.remainingPages--;
                cursorPage = page + 1;
                sendPage(w, b, views[cursorBlock], page);
                return true;
            }
            cursorBlock++;
            cursorPage = 0;
        }
        return false;
    }

    private void sendPage(QemuFileWriter w, RamBlock b, java.nio.ByteBuffer view, long page) {
        long offset = page << b.pageShift();
        MemorySegment seg = b.segment();
        boolean zero = zeroPageDetection && MemorySegment.mismatch(seg, offset, offset + pageSize, zeroPage, 0, pageSize) == -1;
        int cont = b == lastSent ? RamFlags.CONTINUE : 0;
        w.putBe64(offset | (zero ? RamFlags.ZERO : RamFlags.PAGE) | cont);
        if (cont == 0) {
            w.putCountedString(b.idstr());
            lastSent = b;
        }
        if (zero) {
            w.putU8(0);
            stats.zeroPages++;
        } else {
            if (view != null) {
                w.queuePage(view, (int) offset, pageSize);
            } else {
                w.putSegment(seg.asSlice(offset, pageSize));
            }
            stats.normalPages++;
        }
    }

    @Override
    public void cleanup() {
        arena.close();
    }

    @Override
    public void loadState(QemuFileReader r, SectionType type, int versionId) {
        throw new MigrationException(Category.INTERNAL, "RamSaver is the source side; it loads nothing");
    }
}
