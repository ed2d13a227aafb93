package io.jmigrate.analyze;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * A saved migration stream on disk, plain or gzip-compressed (detected by the gzip magic
 * {@code 1f 8b}, decompressed transparently). It can be opened several times: the analyzer
 * first looks at the tail for the vmdesc trailer, then walks the stream from the start.
 *
 * <p>Locating the vmdesc (PROTOCOL.md §7 describes analyze-migration.py's heuristic, "last NUL
 * then first '{'"). Here the rule is exact: the trailer is the last position {@code p} in the
 * final bytes of the stream where byte {@code p} is 0x06 (QEMU_VM_VMDESCRIPTION), the be32 at
 * {@code p+1} equals the number of bytes after it up to the end, and the next byte is '{'. Only
 * the last {@code window} bytes are kept in memory for this, so memory stays bounded whatever the
 * stream's size.
 */
public final class StreamSource {
    private static final int GZIP_MAGIC = 0x1f8b;
    private static final int IO_BUFFER = 64 * 1024;

    private final Path path;
    private final boolean gzip;

    private StreamSource(Path path, boolean gzip) {
        this.path = path;
        this.gzip = gzip;
    }

    /** Opens {@code path}; fails with a clear message if it does not exist or is empty. */
    public static StreamSource open(Path path) {
        byte[] head = new byte[2];
        int n;
        try (InputStream in = Files.newInputStream(path)) {
            n = in.readNBytes(head, 0, 2);
        } catch (NoSuchFileException e) {
            throw new MigrationException(Category.CONFIG, "no such file: " + path);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot read " + path + ": " + e.getMessage(), e);
        }
        if (n == 0) {
            throw new MigrationException(Category.PROTOCOL, path + " is empty: expected a QEMU migration stream "
                    + "starting with the magic \"QEVM\" (51 45 56 4d)");
        }
        boolean gz = n == 2 && ((head[0] & 0xff) << 8 | (head[1] & 0xff)) == GZIP_MAGIC;
        return new StreamSource(path, gz);
    }

    public Path path() {
        return path;
    }

    public boolean gzip() {
        return gzip;
    }

    /** Name used in messages: the file name, with "(gunzipped)" offsets for gzip files. */
    public String displayName() {
        return path.getFileName() + (gzip ? " (gunzipped)" : "");
    }

    /** A fresh channel over the (decompressed) stream bytes from offset 0. */
    public ReadableByteChannel openChannel() {
        try {
            InputStream in = Files.newInputStream(path);
            if (gzip) {
                in = new GZIPInputStream(new BufferedInputStream(in, IO_BUFFER), IO_BUFFER);
            }
            return Channels.newChannel(in);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot open " + path + ": " + e.getMessage(), e);
        }
    }

    /**
     * Where the vmdesc trailer is.
     *
     * @param totalLength length of the whole (decompressed) stream
     * @param offset      offset of the 0x06 byte, or -1 if no trailer was found
     * @param jsonLength  the be32 length
     * @param json        the JSON text, or null
     */
    public record Tail(long totalLength, long offset, long jsonLength, String json) {
        public boolean found() {
            return offset >= 0;
        }
    }

    /**
     * Finds the total length and the vmdesc trailer, keeping at most {@code window} tail bytes in
     * memory (a trailer longer than {@code window - 5} is not found).
     */
    public Tail scanTail(int window) {
        if (window < 6) {
            throw new IllegalArgumentException("window too small");
        }
        try {
            if (!gzip) {
                try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                    long size = ch.size();
                    int small = (int) Math.min(size, Math.min(window, 1 << 20));
                    Tail t = search(size, readAt(ch, size - small, small));
                    if (t.found() || small == Math.min(size, window)) {
                        return t;
                    }
                    int big = (int) Math.min(size, window);
                    return search(size, readAt(ch, size - big, big));
                }
            }
            Ring ring = new Ring(window);
            long total = 0;
            try (InputStream in = new GZIPInputStream(new BufferedInputStream(Files.newInputStream(path), IO_BUFFER),
                    IO_BUFFER)) {
                byte[] buf = new byte[IO_BUFFER];
                int r;
                while ((r = in.read(buf)) > 0) {
                    ring.add(buf, r);
                    total += r;
                }
            }
            return search(total, ring.linear());
        } catch (ZipException | java.io.EOFException e) {
            throw new MigrationException(Category.PROTOCOL, path + ": damaged gzip data: " + e.getMessage(), e);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot read " + path + ": " + e.getMessage(), e);
        }
    }

    private static byte[] readAt(FileChannel ch, long pos, int len) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(len);
        while (b.hasRemaining()) {
            if (ch.read(b, pos + b.position()) < 0) {
                break;
            }
        }
        return b.array();
    }

    private static Tail search(long total, byte[] t) {
        long base = total - t.length;
        for (int p = t.length - 6; p >= 0; p--) {
            if (t[p] != 0x06 || t[p + 5] != '{') {
                continue;
            }
            long len = ((t[p + 1] & 0xffL) << 24) | ((t[p + 2] & 0xffL) << 16) | ((t[p + 3] & 0xffL) << 8)
                    | (t[p + 4] & 0xffL);
            if (len == t.length - p - 5L) {
                String json = new String(t, p + 5, (int) len, StandardCharsets.UTF_8);
                return new Tail(total, base + p, len, json);
            }
        }
        return new Tail(total, -1, 0, null);
    }

    /** The last {@code cap} bytes of what was added; grows on demand up to cap. */
    private static final class Ring {
        private final int cap;
        private byte[] a = new byte[0];
        /** Next write index; while {@code size < a.length} the bytes are {@code a[0, size)}. */
        private int pos;
        private int size;

        Ring(int cap) {
            this.cap = cap;
        }

        void add(byte[] src, int n) {
            int off = 0;
            if (n > cap) {
                off = n - cap;
                n = cap;
            }
            if (a.length < cap && size + n > a.length) {
                byte[] grown = new byte[(int) Math.min(cap, Math.max(2L * a.length, (long) size + n))];
                byte[] lin = linear();
                System.arraycopy(lin, 0, grown, 0, lin.length);
                a = grown;
                pos = lin.length;
            }
            while (n > 0) {
                int chunk = Math.min(n, a.length - pos);
                System.arraycopy(src, off, a, pos, chunk);
                off += chunk;
                n -= chunk;
                pos = (pos + chunk) % a.length;
                size = Math.min(a.length, size + chunk);
            }
        }

        byte[] linear() {
            byte[] out = new byte[size];
            if (size < a.length) {
                System.arraycopy(a, 0, out, 0, size);
            } else {
                System.arraycopy(a, pos, out, 0, a.length - pos);
                System.arraycopy(a, 0, out, a.length - pos, pos);
            }
            return out;
        }
    }
}
