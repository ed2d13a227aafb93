package io.jmigrate.ram;

/**
 * RAM counters of one migration, QEMU's {@code mig_stats}/{@code RAMStats} subset that
 * {@code query-migrate} shows. Written by the migration thread only, read by anyone.
 */
public final class RamStats {
    /** Normal (non-zero) pages sent. */
    public volatile long normalPages;
    /** Zero pages sent as ZERO records ("duplicate"). */
    public volatile long zeroPages;
    /** Dirty pages still to send (in the migration bitmap). */
    public volatile long remainingPages;
    public volatile long dirtySyncCount;
    /** Pages dirtied per second, measured between the last two syncs. */
    public volatile long dirtyPagesRate;
    /** Pages dirtied in total at the last sync. */
    public volatile long lastSyncDirtyPages;
    public volatile long totalBytes;
    public volatile int pageSize;
}
