package io.jmigrate.vfio;

/**
 * {@code struct vfio_precopy_info}, the answer of {@code VFIO_MIG_GET_PRECOPY_INFO} on a data fd
 * in PRE_COPY or PRE_COPY_P2P (PROTOCOL.md §4.8, §4.9).
 *
 * @param initialBytes initial precopy data still to read; should reach 0 before leaving PRE_COPY
 *                     (VFIO's switchover-ack waits for it)
 * @param dirtyBytes   data the device changed since it was last read
 */
public record PrecopyInfo(long initialBytes, long dirtyBytes) {
    public PrecopyInfo {
        if (initialBytes < 0 || dirtyBytes < 0) {
            throw new IllegalArgumentException("precopy info must not be negative: " + initialBytes + ", " + dirtyBytes);
        }
    }
}
