package io.jmigrate.ram;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.RamBlock;
import io.jmigrate.memory.ZeroPages;
import io.jmigrate.multifd.MultifdReceiver;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The destination side of the {@code ram} section: decodes records with
 * {@link RamSectionReader} and puts pages straight into guest memory. The block list must name
 * exactly this VM's blocks with equal lengths (jmigrate does not resize blocks).
 *
 * <p>With multifd ({@link #useMultifd}) the receive threads put the pages into memory and this
 * loader runs the SYNC barrier ({@link MultifdReceiver#recvSyncMain}) on every
 * {@code MULTIFD_FLUSH}, or, with a legacy per-section source (QEMU ≤ 8.0, or
 * {@code multifd-flush-after-each-section=on}), on every RAM EOS. The mode is recognised from the
 * stream: a per-round source always puts a {@code MULTIFD_FLUSH} into its setup section before
 * the first EOS, a legacy one never sends one.
 */
public final class RamLoader implements SaveVmHandlers.Load, RamLoadSink {
    private final Map<String, RamBlock> blocks = new LinkedHashMap<>();
    private final RamSectionReader reader;
    private final int pageSize;
    private final MemorySegment zero;
    private boolean sawBlockList;
    private MultifdReceiver multifd;
    /** null until the setup section's EOS tells the source's flush mode. */
    private Boolean perSection;
    private boolean sawFlush;
    private String lastBlockName;
    private MemorySegment lastBlockMemory;
    // plain counters of the loader thread, published at every section end and MULTIFD_FLUSH
    private long normal;
    private long zeroCount;
    private volatile long normalPublished;
    private volatile long zeroPublished;

    public RamLoader(List<RamBlock> blocks) {
        for (RamBlock b : blocks) {
            this.blocks.put(b.idstr(), b);
        }
        this.pageSize = blocks.getFirst().pageSize();
        this.reader = new RamSectionReader(pageSize);
        this.zero = MemorySegment.ofArray(new byte[pageSize]);
    }

    /** Pages arrive on {@code rx}'s channels; the main channel carries the SYNC points. */
    public void useMultifd(MultifdReceiver rx) {
        this.multifd = rx;
    }

    /** Whether the source uses the legacy per-section sync (null before its setup section ended). */
    public Boolean legacyFlush() {
        return perSection;
    }

    /** Normal pages loaded from the main channel, as of the last section end or flush. */
    public long normalPages() {
        return normalPublished;
    }

    /** Zero pages loaded from the main channel, as of the last section end or flush. */
    public long zeroPages() {
        return zeroPublished;
    }

    private void publish() {
        normalPublished = normal;
        zeroPublished = zeroCount;
    }

    @Override
    public void multifdFlush() {
        publish();
        sawFlush = true;
        if (multifd == null) {
            // QEMU ignores it and loads on, without the pages the source put on its multifd
            // channels; only a multifd source sends this flag, so this is the misconfiguration
            throw new MigrationException(Category.MISMATCH, "the ram section carries a MULTIFD_FLUSH: the source "
                    + "sends its pages on multifd channels, but this destination expects only the main channel (is "
                    + "the multifd capability on at the source only?)");
        }
        multifd.recvSyncMain();
    }

    @Override
    public void endOfSection() {
        publish();
        if (perSection == null) {
            perSection = !sawFlush;
        }
        if (multifd != null && perSection) {
            multifd.recvSyncMain();
        }
    }

    @Override
    public void loadState(QemuFileReader r, SectionType type, int versionId) {
        if (type == SectionType.FULL) {
            throw r.fail(Category.PROTOCOL, "ram arrived as a FULL section; it is iterable (START/PART/END)");
        }
        if (type != SectionType.START && !sawBlockList) {
            throw r.fail(Category.PROTOCOL, "ram " + type + " section before its START section's block list");
        }
        reader.readSection(r, this, "ram " + type + " section");
    }

    @Override
    public void blockList(long totalBytes, List<RamBlockInfo> list) {
        for (RamBlockInfo info : list) {
            RamBlock b = blocks.get(info.idstr());
            if (b == null) {
                throw new MigrationException(Category.MISMATCH, "incoming RAM block '" + info.idstr()
                        + "' is unknown here (this VM has " + blocks.keySet() + "); check --machine on both sides");
            }
            if (b.usedLength() != info.usedLength()) {
                throw new MigrationException(Category.MISMATCH, "incoming RAM block '" + info.idstr() + "' has "
                        + info.usedLength() + " bytes but this VM's has " + b.usedLength()
                        + "; start the destination with the same -m/--memory");
            }
        }
        sawBlockList = true;
    }

    @Override
    public MemorySegment pageTarget(String block, long offset) {
        return blocks.get(block).segment().asSlice(offset, pageSize);
    }

    /** The page goes into the block's memory at its offset, with nothing allocated per page. */
    @Override
    public MemorySegment blockTarget(String block) {
        String last = lastBlockName;
        if (last != block) { // the reader hands the same String instance until the block changes
            lastBlockName = block;
            lastBlockMemory = blocks.get(block).segment();
        }
        return lastBlockMemory;
    }

    @Override
    public void pageLoaded(String block, long offset) {
        normal++;
    }

    @Override
    public void zeroPage(String block, long offset) {
        zeroCount++;
        MemorySegment seg = blockTarget(block);
        if (!ZeroPages.isZero(seg, offset, pageSize, zero)) {
            MemorySegment.copy(zero, 0, seg, offset, pageSize); // no slice per page
        }
    }

    @Override
    public void loadComplete() {
        if (!sawBlockList) {
            throw new MigrationException(Category.PROTOCOL, "the stream ended without a ram section: no guest RAM "
                    + "was received");
        }
    }


}
