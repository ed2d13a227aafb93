package io.jmigrate.vfio;

import java.nio.ByteBuffer;

/**
 * The data fd of one VFIO migration data session (PROTOCOL.md §4.8): returned by
 * {@link VfioDeviceBackend#transition} on an arc that opens a session, read in the saving group
 * (PRE_COPY, PRE_COPY_P2P, STOP_COPY), written in RESUMING. The stream is opaque; the user keeps
 * its byte order but need not keep its segmentation. One thread at a time uses an fd.
 */
public interface VfioDataFd extends AutoCloseable {

    /** {@link #read} in PRE_COPY: nothing to read now, more may come ({@code ENOMSG}). */
    int NOTHING_NOW = -1;
    /** {@link #read} in STOP_COPY: the device state has been read completely. */
    int END_OF_STREAM = 0;

    /**
     * Reads up to {@code dst.remaining()} bytes into {@code dst} (advancing its position).
     *
     * @return the bytes read (&gt; 0); {@link #NOTHING_NOW} in a precopy state when nothing is
     * pending; {@link #END_OF_STREAM} in STOP_COPY after the last byte
     * @throws io.jmigrate.common.MigrationException (IO) when the device fails the read
     * ({@code -EIO}), or (STATE) outside the saving group
     */
    int read(ByteBuffer dst);

    /**
     * Writes up to {@code src.remaining()} bytes (in RESUMING), advancing {@code src}; may write
     * fewer, as write(2) does.
     *
     * @return the bytes written (&gt; 0)
     * @throws io.jmigrate.common.MigrationException (PROTOCOL) when the device rejects the
     * stream, or (STATE) outside RESUMING
     */
    int write(ByteBuffer src);

    /**
     * {@code VFIO_MIG_GET_PRECOPY_INFO}: valid only in PRE_COPY and PRE_COPY_P2P.
     *
     * @throws io.jmigrate.common.MigrationException (STATE) in any other state ({@code -EINVAL})
     */
    PrecopyInfo precopyInfo();

    /** Closes the fd. Idempotent. */
    @Override
    void close();
}
