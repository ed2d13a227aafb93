package io.jmigrate.ram;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.RamBlock;
import io.jmigrate.memory.SegmentWindows;
import io.jmigrate.memory.ZeroPages;
import io.jmigrate.multifd.MultifdBlock;
import io.jmigrate.multifd.MultifdSender;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.stream.QemuFileWriter;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.function.LongConsumer;

/**
 * The source side of the {@code ram} section (PROTOCOL.md §1.11), over the main channel alone,
 * or with the pages on multifd channels (§2.8). Zero-page detection on the migration thread
 * ({@code zero-page-detection=legacy}) sends zero pages as ZERO records on the main channel;
 * with {@code none} every page is a normal page; with multifd's {@code multifd} detection the
 * sender threads find zero pages.
 *
 * <p>With multifd no page data goes on the main channel. Every page is queued with
 * {@link MultifdSender#queuePage}; the SYNC barrier is placed as QEMU does:
 * <ul>
 *   <li>per-round (default): one flush-and-sync plus a {@code MULTIFD_FLUSH} word at setup and
 *       at every wrap of the dirty scan, including the completion scan's, so two copies of a
 *       page are always separated by a barrier;</li>
 *   <li>per-section (legacy, {@code multifd-flush-after-each-section}, QEMU ≤ 8.0 peers): a
 *       flush-and-sync before every RAM EOS and no {@code MULTIFD_FLUSH} words. A scan never
 *       wraps inside one section, so the same holds.</li>
 * </ul>
 * Every SYNC is paired with a {@code MULTIFD_FLUSH} (or EOS) that follows it on the main
 * channel (the "no unpaired SYNC" rule).
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
public final class RamSaver implements SaveVmHandlers.Save {
    /** QEMU bounds one iteration to 50 ms so that the migration thread stays responsive. */
    private static final long MAX_ITERATE_NANOS = 50_000_000L;
    /** Pages between two rate-limit checks (and counter publications): 256 KiB of 4 KiB pages. */
    private static final int CHECK_EVERY = 64;

    private final List<RamBlock> blocks;
    private final long[][] migBitmap;
    /** ByteBuffer windows over every block (any size), so pages are queued without allocation. */
    private final SegmentWindows[] windows;
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
    private final MultifdSender multifd;
    private final boolean flushPerSection;
    private final MultifdBlock[] multifdBlocks;
    // Counters owned by the migration thread, plain, published to the volatile RamStats once per
    // batch of pages (a rate check), per sync and at the end of every section: nothing volatile
    // happens per page.
    private long remaining;
    private long normal;
    private long zero;

    /**
     * How pages travel.
     *
     * @param mainZeroDetection  the migration thread detects zero pages and sends them as ZERO
     *                           records on the main channel (zero-page-detection legacy; without
     *                           multifd also multifd, as QEMU)
     * @param multifd            the running multifd sender, or null for the main channel only
     * @param flushPerSection    legacy per-section SYNC (multifd-flush-after-each-section)
     */
    public record Mode(boolean mainZeroDetection, MultifdSender multifd, boolean flushPerSection) {
        /** Main channel only. */
        public static Mode mainChannel(boolean zeroPageDetection) {
            return new Mode(zeroPageDetection, null, false);
        }
    }

    /**
     * @param onSync called after every dirty sync with the new {@code dirty-sync-count}
     *               (the MIGRATION_PASS event)
     */
    public RamSaver(List<RamBlock> blocks, RamStats stats, LongConsumer onSync, boolean zeroPageDetection) {
        this(blocks, stats, onSync, Mode.mainChannel(zeroPageDetection));
    }

    public RamSaver(List<RamBlock> blocks, RamStats stats, LongConsumer onSync, Mode mode) {
        this.zeroPageDetection = mode.mainZeroDetection();
        this.multifd = mode.multifd();
        this.flushPerSection = mode.flushPerSection();
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
        this.multifdBlocks = new MultifdBlock[blocks.size()];
        if (multifd != null) {
            for (int i = 0; i < blocks.size(); i++) {
                RamBlock b = blocks.get(i);
                multifdBlocks[i] = new MultifdBlock(b.idstr(), b.segment(), b.pageSize(),
                        MultifdSender.SENDFILE ? b.sharedFile() : null);
            }
        }
        this.windows = new SegmentWindows[blocks.size()];
        for (int i = 0; i < blocks.size(); i++) {
            windows[i] = blocks.get(i).ioWindows();
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
        this.remaining = remaining;
        publish();
        lastSyncNanos = System.nanoTime();
        stats.dirtySyncCount = 1;
        onSync.accept(1);
        if (multifd != null) {
            flushAndSync(w); // both modes: in legacy mode the EOS below is the pairing
        }
        w.putBe64(RamFlags.EOS);
    }

    /**
     * QEMU's {@code multifd_ram_flush_and_sync}: queued pages out, a SYNC on every channel,
     * then (per-round mode) the MULTIFD_FLUSH word that pairs with them.
     */
    private void flushAndSync(QemuFileWriter w) {
        multifd.flushAndSync();
        if (!flushPerSection) {
            w.putBe64(RamFlags.MULTIFD_FLUSH);
            // now: the destination's channels wait at their SYNC until the loader reads this word
            w.flush();
        }
    }

    /** The end of a pass over RAM: per-round mode places its barrier here. */
    private void wrapped(QemuFileWriter w) {
        cursorBlock = 0;
        cursorPage = 0;
        if (multifd != null && !flushPerSection) {
            flushAndSync(w);
        }
    }

    /** RAM EOS; legacy multifd mode syncs before every one. */
    private void endOfSection(QemuFileWriter w) {
        if (multifd != null && flushPerSection) {
            multifd.flushAndSync();
        }
        w.putBe64(RamFlags.EOS);
    }

    @Override
    public long pendingEstimate() {
        return remaining * pageSize;
    }

    @Override
    public long pendingExact() {
        syncDirty();
        return remaining * pageSize;
    }

    /** Makes the migration thread's plain counters visible to readers of {@link RamStats}. */
    private void publish() {
        stats.remainingPages = remaining;
        stats.normalPages = normal;
        stats.zeroPages = zero;
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
        remaining += added;
        publish();
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
                publish();
                wrapped(w);
                endOfSection(w);
                return true;
            }
            if (++sinceCheck >= CHECK_EVERY) {
                sinceCheck = 0;
                publish();
                if (limit.exceeded() || System.nanoTime() - start > MAX_ITERATE_NANOS) {
                    endOfSection(w);
                    return false;
                }
            }
        }
    }

    /**
     * The final pass with the VM stopped, no rate limit. As QEMU's completion scan it goes on
     * from where the last iteration stopped, wraps (a barrier in per-round multifd mode), sends
     * what lies before that point, and wraps once more if it sent anything after the first wrap,
     * so the last pages are behind a barrier too.
     */
    @Override
    public void saveComplete(QemuFileWriter w) {
        syncDirty(false);
        lastSent = null;
        while (sendNextDirty(w)) {
            // up to the end of RAM
        }
        wrapped(w);
        boolean more = false;
        while (sendNextDirty(w)) {
            more = true;
        }
        publish();
        if (more) {
            wrapped(w);
        }
        endOfSection(w);
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
                remaining--;
                cursorPage = page + 1;
                sendPage(w, b, windows[cursorBlock], page);
                return true;
            }
            cursorBlock++;
            cursorPage = 0;
        }
        return false;
    }

    private void sendPage(QemuFileWriter w, RamBlock b, SegmentWindows win, long page) {
        long offset = page << b.pageShift();
        MemorySegment seg = b.segment();
        boolean zero = zeroPageDetection && ZeroPages.isZero(seg, offset, pageSize, zeroPage);
        if (multifd != null && !zero) {
            multifd.queuePage(multifdBlocks[cursorBlock], offset);
            return;
        }
        int cont = b == lastSent ? RamFlags.CONTINUE : 0;
        w.putBe64(offset | (zero ? RamFlags.ZERO : RamFlags.PAGE) | cont);
        if (cont == 0) {
            w.putCountedString(b.idstr());
            lastSent = b;
        }
        if (zero) {
            w.putU8(0);
            this.zero++;
        } else {
            w.queuePage(win.window(offset), SegmentWindows.offsetInWindow(offset), pageSize);
            normal++;
        }
    }

    private boolean cleanedUp;

    @Override
    public synchronized void saveCleanup() {
        if (!cleanedUp) {
            cleanedUp = true;
            arena.close();
        }
    }
}
