package io.jmigrate.ram;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Receives the records of a {@code ram} section as {@link RamSectionReader} decodes them. The
 * loader (guest memory), the analyzer (counting, extraction) and tests implement it.
 * Implementations may throw a {@link io.jmigrate.common.MigrationException} to reject a record
 * (e.g. an unknown block or a size mismatch); the reader adds nothing to it.
 */
public interface RamLoadSink {

    /**
     * Every record header word as read, before its payload: {@code flags} are the low bits
     * (below the page size, CONTINUE included) and {@code offset} the rest;
     * {@code streamOffset} is the byte offset of the word. For statistics (the analyzer counts
     * flag values); a sink that does not care ignores it.
     */
    default void recordHeader(int flags, long offset, long streamOffset) {
    }

    /**
     * The MEM_SIZE block list of the setup section, complete (the sum of lengths equals
     * {@code totalBytes}).
     */
    void blockList(long totalBytes, List<RamBlockInfo> blocks);

    /**
     * Where to put the normal page at {@code offset} of {@code block}: a segment of exactly one
     * page, or null to skip the page's bytes. The reader has already checked the offset against
     * the block length announced in the block list, if one was seen.
     */
    MemorySegment pageTarget(String block, long offset);

    /**
     * Fast path for sinks that put pages into guest memory: the memory of the whole
     * {@code block}, into which the reader copies the normal page at its offset (so nothing is
     * sliced or allocated per page); null (the default) to use {@link #pageTarget} instead. When
     * this returns a segment, {@link #pageTarget} is not called for the page.
     */
    default MemorySegment blockTarget(String block) {
        return null;
    }

    /** Called after a normal page's bytes were read into the target (or skipped). */
    default void pageLoaded(String block, long offset) {
    }

    /** A zero page at {@code offset} of {@code block}. */
    void zeroPage(String block, long offset);

    /** RAM_SAVE_FLAG_MULTIFD_FLUSH: every multifd page sent before it must be in memory. */
    default void multifdFlush() {
    }

    /** RAM_SAVE_FLAG_EOS ended the section. */
    default void endOfSection() {
    }
}
