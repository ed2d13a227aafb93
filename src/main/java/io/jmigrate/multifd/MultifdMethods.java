package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.StreamException;

import com.github.luben.zstd.EndDirective;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * The per-channel codec SPI (QEMU's {@code MultiFDMethods}), keyed by {@link MultifdCompression}:
 * each channel thread owns one {@link SendCodec} or {@link RecvCodec} for its whole life, so a
 * compression stream spans every packet of the channel and is flushed at the end of each packet.
 *
 * <p>Framing (PROTOCOL.md §2.6 and QEMU's multifd-zlib.c / multifd-zstd.c):
 * <ul>
 * <li>none: the payload is the normal pages' bytes, written with one gathering write straight
 *     from guest memory and read with one scattering read straight into it.</li>
 * <li>zlib: one zlib-wrapped deflate stream per channel ({@code deflateInit(level)}); every
 *     normal page is deflated with no flush except the packet's last page, with
 *     {@code Z_SYNC_FLUSH}. The payload is the compressed bytes, next_packet_size their count.
 *     The receiver inflates page by page and requires exactly normal_pages x page_size output.</li>
 * <li>zstd: one zstd frame per channel that never ends ({@code ZSTD_initCStream(level)});
 *     pages are compressed with {@code ZSTD_e_continue}, the last one with {@code ZSTD_e_flush}.</li>
 * </ul>
 * Zero pages carry no data in any method. Compressed payloads are bounded by
 * {@link RamPacket#MAX_COMPRESSED} (twice the packet data size, QEMU's zbuff).
 */
public final class MultifdMethods {
    private MultifdMethods() {
    }

    /** Source side of one channel. Not thread safe: owned by one {@code mig/src/send_N} thread. */
    public interface SendCodec extends AutoCloseable {
        /**
         * Prepares the payload of the normal pages in {@code pages[0..n)}, in offset order: one
         * page per buffer for compression, and for none, buffers that may each hold a run of
         * contiguous pages ({@link PageViews#fill}). Puts the buffers to write into {@code iov}
         * from index {@code start} and returns how many it put; {@link #nextPacketSize()} is
         * then the payload length.
         */
        int prepare(ByteBuffer[] pages, int n, ByteBuffer[] iov, int start);

        int nextPacketSize();

        @Override
        void close();
    }

    /** Destination side of one channel. Not thread safe: owned by one {@code mig/dst/recv_N} thread. */
    public interface RecvCodec extends AutoCloseable {
        /**
         * Reads {@code payloadLength} bytes from {@code ch} and fills the normal pages in
         * {@code pages[0..n)}, in offset order: one page per buffer for compression, and for
         * none, buffers that may each hold a run of contiguous pages ({@link PageViews#fill}).
         *
         * @param at byte offset of the payload in the channel, for errors
         */
        void receive(ReadableByteChannel ch, long payloadLength, ByteBuffer[] pages, int n, String channel, long at)
                throws IOException;

        @Override
        void close();
    }

    public static SendCodec newSend(MultifdCompression method, int pageSize, int level) {
        return switch (method) {
            case NONE -> new NocompSend();
            case ZLIB -> new ZlibSend(level);
            case ZSTD -> new ZstdSend(level);
        };
    }

    public static RecvCodec newRecv(MultifdCompression method, int pageSize) {
        return switch (method) {
            case NONE -> new NocompRecv();
            case ZLIB -> new ZlibRecv(pageSize);
            case ZSTD -> new ZstdRecv(pageSize);
        };
    }

    // ---- none -------------------------------------------------------------------------------

    private static final class NocompSend implements SendCodec {
        private int size;

        @Override
        public int prepare(ByteBuffer[] pages, int n, ByteBuffer[] iov, int start) {
            int bytes = 0;
            for (int i = 0; i < n; i++) {
                bytes += pages[i].remaining();
            }
            System.arraycopy(pages, 0, iov, start, n);
            size = bytes;
            return n;
        }

        @Override
        public int nextPacketSize() {
            return size;
        }

        @Override
        public void close() {
        }
    }

    private static final class NocompRecv implements RecvCodec {
        @Override
        public void receive(ReadableByteChannel ch, long payloadLength, ByteBuffer[] pages, int n, String channel,
                            long at) throws IOException {
            long got = ChannelIo.readFully(ch, pages, n);
            if (got != payloadLength) {
                throw new StreamException(Category.PROTOCOL, channel, at + got, "truncated RAM payload: expected "
                        + payloadLength + " bytes of page data, the channel ended after " + got);
            }
        }

        @Override
        public void close() {
        }
    }

    // ---- zlib -------------------------------------------------------------------------------

    private static ByteBuffer zbuff() {
        return ByteBuffer.allocateDirect(RamPacket.MAX_COMPRESSED);
    }

    private static void readPayload(ReadableByteChannel ch, ByteBuffer zbuff, long len, String channel, long at)
            throws IOException {
        if (len > zbuff.capacity()) {
            throw new StreamException(Category.LIMIT, channel, at, "compressed payload of " + len
                    + " bytes exceeds the maximum of " + zbuff.capacity());
        }
        zbuff.clear().limit((int) len);
        try {
            ChannelIo.readExactly(ch, zbuff);
        } catch (EOFException e) {
            throw new StreamException(Category.PROTOCOL, channel, at, "truncated compressed RAM payload: "
                    + e.getMessage());
        }
        zbuff.flip();
    }

    private static final class ZlibSend implements SendCodec {
        private final Deflater deflater;
        private final ByteBuffer zbuff = zbuff();
        private int size;

        ZlibSend(int level) {
            deflater = new Deflater(level, false);
        }

        @Override
        public int prepare(ByteBuffer[] pages, int n, ByteBuffer[] iov, int start) {
            zbuff.clear();
            for (int i = 0; i < n; i++) {
                int flush = i == n - 1 ? Deflater.SYNC_FLUSH : Deflater.NO_FLUSH;
                ByteBuffer page = pages[i].duplicate();
                deflater.setInput(page);
                while (true) {
                    deflater.deflate(zbuff, flush);
                    if (!zbuff.hasRemaining()) {
                        throw new IllegalStateException("zlib output exceeds " + zbuff.capacity() + " bytes");
                    }
                    if (deflater.needsInput() && (flush == Deflater.NO_FLUSH || zbuff.hasRemaining())) {
                        break;
                    }
                }
            }
            size = zbuff.position();
            iov[start] = zbuff.flip();
            return 1;
        }

        @Override
        public int nextPacketSize() {
            return size;
        }

        @Override
        public void close() {
            deflater.end();
        }
    }

    private static final class ZlibRecv implements RecvCodec {
        private final Inflater inflater = new Inflater(false);
        private final ByteBuffer zbuff = zbuff();
        private final ByteBuffer scratch;

        ZlibRecv(int pageSize) {
            scratch = ByteBuffer.allocateDirect(pageSize);
        }

        @Override
        public void receive(ReadableByteChannel ch, long payloadLength, ByteBuffer[] pages, int n, String channel,
                            long at) throws IOException {
            readPayload(ch, zbuff, payloadLength, channel, at);
            inflater.setInput(zbuff);
            try {
                for (int i = 0; i < n; i++) {
                    ByteBuffer page = pages[i];
                    while (page.hasRemaining()) {
                        int r = inflater.inflate(page);
                        if (r == 0 && (inflater.needsInput() || inflater.finished() || inflater.needsDictionary())) {
                            throw new StreamException(Category.PROTOCOL, channel, at, "zlib payload of "
                                    + payloadLength + " bytes inflated to too few bytes: page " + i + " of " + n
                                    + " is short by " + page.remaining());
                        }
                    }
                }
                // consume what remains (the sync-flush marker); it must produce no page data
                while (inflater.getRemaining() > 0 && !inflater.finished()) {
                    scratch.clear();
                    int r = inflater.inflate(scratch);
                    if (r > 0) {
                        throw new StreamException(Category.PROTOCOL, channel, at, "zlib payload inflates to more than "
                                + n + " pages");
                    }
                    if (inflater.needsInput()) {
                        break;
                    }
                }
            } catch (DataFormatException e) {
                throw new StreamException(Category.PROTOCOL, channel, at, "corrupt zlib payload: " + e.getMessage());
            }
        }

        @Override
        public void close() {
            inflater.end();
        }
    }

    // ---- zstd -------------------------------------------------------------------------------

    private static final class ZstdSend implements SendCodec {
        private final ZstdCompressCtx ctx = new ZstdCompressCtx();
        private final ByteBuffer zbuff = zbuff();
        private int size;

        ZstdSend(int level) {
            ctx.setLevel(level);
        }

        @Override
        public int prepare(ByteBuffer[] pages, int n, ByteBuffer[] iov, int start) {
            zbuff.clear();
            for (int i = 0; i < n; i++) {
                EndDirective d = i == n - 1 ? EndDirective.FLUSH : EndDirective.CONTINUE;
                ByteBuffer page = pages[i].duplicate();
                while (true) {
                    boolean done = ctx.compressDirectByteBufferStream(zbuff, page, d);
                    if (!zbuff.hasRemaining()) {
                        throw new IllegalStateException("zstd output exceeds " + zbuff.capacity() + " bytes");
                    }
                    if (!page.hasRemaining() && (d == EndDirective.CONTINUE || done)) {
                        break;
                    }
                }
            }
            size = zbuff.position();
            iov[start] = zbuff.flip();
            return 1;
        }

        @Override
        public int nextPacketSize() {
            return size;
        }

        @Override
        public void close() {
            ctx.close();
        }
    }

    private static final class ZstdRecv implements RecvCodec {
        private final ZstdDecompressCtx ctx = new ZstdDecompressCtx();
        private final ByteBuffer zbuff = zbuff();
        private final ByteBuffer scratch;

        ZstdRecv(int pageSize) {
            scratch = ByteBuffer.allocateDirect(pageSize);
        }

        @Override
        public void receive(ReadableByteChannel ch, long payloadLength, ByteBuffer[] pages, int n, String channel,
                            long at) throws IOException {
            readPayload(ch, zbuff, payloadLength, channel, at);
            try {
                for (int i = 0; i < n; i++) {
                    ByteBuffer page = pages[i];
                    while (page.hasRemaining()) {
                        int before = page.remaining() + zbuff.remaining();
                        ctx.decompressDirectByteBufferStream(page, zbuff);
                        if (page.remaining() + zbuff.remaining() == before) {
                            throw new StreamException(Category.PROTOCOL, channel, at, "zstd payload of "
                                    + payloadLength + " bytes decompressed to too few bytes: page " + i + " of " + n
                                    + " is short by " + page.remaining());
                        }
                    }
                }
                while (zbuff.hasRemaining()) {
                    scratch.clear();
                    int before = zbuff.remaining();
                    ctx.decompressDirectByteBufferStream(scratch, zbuff);
                    if (scratch.position() > 0) {
                        throw new StreamException(Category.PROTOCOL, channel, at, "zstd payload decompresses to more than "
                                + n + " pages");
                    }
                    if (zbuff.remaining() == before) {
                        break;
                    }
                }
            } catch (com.github.luben.zstd.ZstdException e) {
                throw new StreamException(Category.PROTOCOL, channel, at, "corrupt zstd payload: " + e.getMessage());
            }
        }

        @Override
        public void close() {
            ctx.close();
        }
    }
}
