package io.jmigrate.ram;

import io.jmigrate.common.Durations;
import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.multifd.ChannelStats;
import io.jmigrate.multifd.DeviceStateSink;
import io.jmigrate.multifd.DeviceStatePacket;
import io.jmigrate.multifd.MultifdBlock;
import io.jmigrate.multifd.MultifdCompression;
import io.jmigrate.multifd.MultifdConfig;
import io.jmigrate.multifd.MultifdInit;
import io.jmigrate.multifd.MultifdReceiver;
import io.jmigrate.multifd.PacketHeader;
import io.jmigrate.multifd.RamPacket;
import io.jmigrate.savevm.StreamFraming;

import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ReadableByteChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.GZIPInputStream;

/**
 * The multifd half of decoding a recorded multifd migration: each multifd channel's bytes (one
 * file per connection, any order, gzip or not) go through the real {@link MultifdReceiver}, so
 * every init record and packet is validated and pages are written into memory by
 * {@code mig/dst/recv_N} threads, exactly as a destination takes them.
 *
 * <p>The main channel is not read here: whoever walks it (the analyzer's one main-stream walker)
 * feeds this object its {@code ram} section records, since it is a {@link RamLoadSink}. Main-channel
 * pages land in the same block memory as multifd pages, each RAM_SAVE_FLAG_MULTIFD_FLUSH (or each
 * RAM EOS in legacy mode, i.e. when no flush came before the first EOS, as QEMU &lt; 8.1 sends)
 * runs the SYNC barrier, so the two are overlaid in the order the protocol defines.
 *
 * <pre>{@code
 * try (MultifdCapture c = MultifdCapture.start(channelFiles, 4096, memory, timeout)) {
 *     ramSectionReader.readSection(mainReader, c, "ram section 2 (START)");   // and every PART/END
 *     MultifdCapture.Result r = c.finish();                                   // channels drained
 * } catch (MigrationException e) { throw c.firstError(e); }
 * }</pre>
 *
 * The channel files are opened at the first MEM_SIZE block list (their init records name the
 * channel ids); the channel count is the number of files. All channels must carry the UUID of the
 * first one. Device-state packets are counted and discarded.
 *
 * <p>The multifd-compression method is not in the init record; only the packets say it, by their
 * compression flag bits (PROTOCOL.md §2.5: none 0x00, ZLIB 0x02, ZSTD 0x04). {@link #start} reads
 * each channel file up to its first RAM packet that carries pages (SYNC-only packets carry no
 * method bits) and takes the method from there, unless the caller names one; every file must
 * agree with the others and with the named method. The receiver then runs with that method's
 * codec ({@link io.jmigrate.multifd.MultifdMethods}), so compressed captures are inflated by the
 * same code a destination uses, and every later packet is still checked against the method.
 */
public final class MultifdCapture implements RamLoadSink, AutoCloseable {

    /** Gives the memory that a reconstructed RAMBlock is written into (zeroed, exactly {@code length} bytes). */
    @FunctionalInterface
    public interface BlockMemory {
        MemorySegment allocate(String idstr, long length);
    }

    /**
     * One multifd channel's facts.
     *
     * @param file  the channel's file as given
     * @param stats the receiver's counters; {@code bytes} counts (gunzipped) bytes consumed, init record included
     */
    public record ChannelReport(String file, ChannelStats stats) {
    }

    /**
     * The decoded multifd side of a migration.
     *
     * @param channels   per channel, ordered by id
     * @param blocks     reconstructed RAM blocks in MEM_SIZE order (valid while their memory is)
     * @param legacySync whether EOS (not MULTIFD_FLUSH) drove the SYNC barrier
     * @param compression the multifd-compression method the channels were decoded with
     * @param detected    how that method was known: the packet that showed it, or null when it was
     *                    named by the caller and no channel had a packet with pages
     */
    public record Result(List<ChannelReport> channels, Map<String, MemorySegment> blocks, boolean legacySync,
                         MultifdCompression compression, Detection detected) {
        public Result {
            channels = List.copyOf(channels);
            blocks = Collections.unmodifiableMap(new LinkedHashMap<>(blocks));
        }

        /** sha256 of a reconstructed block, hex. */
        public String sha256(String block) {
            MemorySegment s = blocks.get(block);
            if (s == null) {
                throw new IllegalArgumentException("no RAMBlock " + block + " in " + blocks.keySet());
            }
            return sha256(s);
        }

        /** sha256 of a segment, hex (in 1 GiB slices, so blocks over 2 GiB work too). */
        public static String sha256(MemorySegment s) {
            try {
                MessageDigest md = MessageDigest.getInstance("SHA-256");
                for (long off = 0; off < s.byteSize(); off += 1L << 30) {
                    md.update(s.asSlice(off, Math.min(1L << 30, s.byteSize() - off)).asByteBuffer());
                }
                return HexFormat.of().formatHex(md.digest());
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private final List<Path> files;
    private final int pageSize;
    private final BlockMemory memory;
    private final Duration timeout;
    private final MultifdConfig config;
    private final FirstError errors = new FirstError();
    private final Map<String, MultifdBlock> blocks = new ConcurrentHashMap<>();
    private final Map<String, MemorySegment> ordered = new LinkedHashMap<>();
    private final Map<Integer, Path> fileById = new ConcurrentHashMap<>();
    private final MultifdReceiver rx;
    private boolean started;
    private boolean flushSeen;
    private boolean legacy;

    /**
     * Where a channel file showed its compression method: the first RAM packet with pages.
     *
     * @param method  the method its flag bits name
     * @param channel the channel id from the file's init record
     * @param file    the channel file
     * @param offset  byte offset of that packet in the (gunzipped) file
     * @param flags   the packet's flags word
     */
    public record Detection(MultifdCompression method, int channel, Path file, long offset, int flags) {
        /** "multifd channel 0 (conn-01.c2s.bin.gz (gunzipped)) at byte offset 64: RAM packet flags 0x00000002 (zlib)". */
        public String where() {
            return "multifd channel " + channel + " (" + displayName(file) + ") at byte offset " + offset
                    + String.format(": RAM packet flags 0x%08x (%s)", flags, method.parameter());
        }
    }

    private final Detection detection;

    private MultifdCapture(List<Path> files, int pageSize, BlockMemory memory, Duration timeout, byte[] uuid,
                           MultifdCompression compression, Detection detection) {
        this.files = List.copyOf(files);
        this.pageSize = pageSize;
        this.memory = memory;
        this.timeout = timeout;
        this.detection = detection;
        MultifdConfig d = MultifdConfig.defaults(files.size());
        // the level only matters to a sender; a receiver's codec takes any level's output
        this.config = new MultifdConfig(files.size(), pageSize, compression, d.level(), d.zeroPageDetection(), uuid,
                d.maxDeviceStatePacket(), timeout);
        DeviceStateSink discard = (idstr, instance, data) -> { };
        this.rx = new MultifdReceiver(config, blocks::get, discard, errors);
    }

    /**
     * Prepares to decode {@code channelFiles} (one per multifd connection, any order). Reads the
     * first file's init record for the UUID every channel must carry; nothing else is read until
     * the first block list.
     *
     * @param pageSize target page size (4096 for x86)
     * @param memory   where reconstructed blocks live
     * @param timeout  bound on waiting for channel threads
     */
    public static MultifdCapture start(List<Path> channelFiles, int pageSize, BlockMemory memory, Duration timeout) {
        return start(channelFiles, pageSize, memory, timeout, null);
    }

    /**
     * As {@link #start(List, int, BlockMemory, Duration)}, with the multifd-compression method
     * named by the caller, or null to take it from the packet flags. Before any thread starts,
     * each channel file is read up to its first RAM packet with pages; a file whose flags name
     * another method than the other files, or than {@code compression}, is a MISMATCH error
     * naming both files and packet offsets.
     */
    public static MultifdCapture start(List<Path> channelFiles, int pageSize, BlockMemory memory, Duration timeout,
                                       MultifdCompression compression) {
        if (channelFiles.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "no multifd channel files given");
        }
        if (channelFiles.size() > 255) {
            throw new MigrationException(Category.CONFIG, channelFiles.size()
                    + " multifd channel files given: at most 255 channels exist");
        }
        Path first = channelFiles.getFirst();
        byte[] head;
        try (InputStream in = open(first)) {
            head = in.readNBytes(MultifdInit.SIZE);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot read " + first + ": " + e.getMessage(), e);
        }
        MultifdInit init = MultifdInit.decode(ByteBuffer.wrap(head), displayName(first));
        Detection detected = detectCompression(channelFiles, pageSize);
        if (compression != null && detected != null && detected.method() != compression) {
            throw new MigrationException(Category.MISMATCH, "multifd-compression " + compression.parameter()
                    + " was asked for, but the packets say " + detected.method().parameter() + ": " + detected.where());
        }
        MultifdCompression method = compression != null ? compression
                : detected != null ? detected.method() : MultifdCompression.NONE;
        return new MultifdCapture(channelFiles, pageSize, memory, timeout, init.uuid(), method, detected);
    }

    /**
     * The compression method the channel files' packets name: each file is read up to its first
     * RAM packet that carries pages (normal or zero), whose compression bits are the method
     * (SYNC-only packets and device-state packets carry none). Files must agree. A file that ends
     * or is malformed before such a packet shows nothing here; the receiver then reports what is
     * wrong with it, at its byte offset.
     *
     * @return the first file's detection, or null if no file has a RAM packet with pages
     * @throws MigrationException MISMATCH when two files name different methods, CONFIG when a
     *                            file names a method jmigrate does not implement
     */
    public static Detection detectCompression(List<Path> channelFiles, int pageSize) {
        Detection first = null;
        for (Path p : channelFiles) {
            Detection d = detectOne(p, pageSize);
            if (d == null) {
                continue;
            }
            if (first == null) {
                first = d;
            } else if (first.method() != d.method()) {
                throw new MigrationException(Category.MISMATCH, "multifd channel files disagree on multifd-compression ("
                        + first.method().parameter() + " and " + d.method().parameter() + "): " + first.where() + "; "
                        + d.where());
            }
        }
        return first;
    }

    private static Detection detectOne(Path p, int pageSize) {
        int ramLen = RamPacket.length(pageSize);
        byte[] buf = new byte[Math.max(ramLen, DeviceStatePacket.SIZE)];
        ByteBuffer b = ByteBuffer.wrap(buf);
        String name = displayName(p);
        try (InputStream in = open(p)) {
            if (in.readNBytes(buf, 0, MultifdInit.SIZE) < MultifdInit.SIZE) {
                return null;
            }
            int id = MultifdInit.decode(ByteBuffer.wrap(buf, 0, MultifdInit.SIZE), name).id();
            long at = MultifdInit.SIZE;
            while (true) {
                if (in.readNBytes(buf, 0, PacketHeader.SIZE) < PacketHeader.SIZE) {
                    return null;
                }
                int flags = PacketHeader.decodeFlags(b, 0, name, at);
                if ((flags & PacketHeader.FLAG_DEVICE_STATE) != 0) {
                    readRest(in, buf, DeviceStatePacket.SIZE);
                    DeviceStatePacket h = DeviceStatePacket.decode(b, 0, MultifdConfig.DEFAULT_MAX_DEVICE_STATE_PACKET,
                            name, at);
                    in.skipNBytes(h.nextPacketSize());
                    at += DeviceStatePacket.SIZE + (long) h.nextPacketSize();
                    continue;
                }
                readRest(in, buf, ramLen);
                long normal = Integer.toUnsignedLong(b.getInt(16));
                long zero = Integer.toUnsignedLong(b.getInt(32));
                if (normal + zero == 0) {
                    at += ramLen;   // no pages, no payload (a stale next_packet_size is ignored)
                    continue;
                }
                int comp = flags & PacketHeader.FLAG_COMPRESSION_MASK;
                MultifdCompression method = switch (comp) {
                    case PacketHeader.FLAG_NOCOMP -> MultifdCompression.NONE;
                    case PacketHeader.FLAG_ZLIB -> MultifdCompression.ZLIB;
                    case PacketHeader.FLAG_ZSTD -> MultifdCompression.ZSTD;
                    default -> throw new MigrationException(Category.CONFIG, "multifd channel " + id + " (" + name
                            + ") at byte offset " + at + String.format(": RAM packet compression flag bits 0x%02x name %s; ",
                            comp, MultifdCompression.fromFlag(comp)) + "jmigrate decodes multifd-compression none, zlib and zstd");
                };
                return new Detection(method, id, p, at, flags);
            }
        } catch (EOFException e) {
            return null;
        } catch (MigrationException e) {
            if (e.category() == Category.CONFIG) {
                throw e;
            }
            return null;   // malformed: the receiver reports it where it is
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot read " + p + ": " + e.getMessage(), e);
        }
    }

    private static void readRest(InputStream in, byte[] buf, int total) throws IOException {
        if (in.readNBytes(buf, PacketHeader.SIZE, total - PacketHeader.SIZE) < total - PacketHeader.SIZE) {
            throw new EOFException();
        }
    }

    /**
     * Opens a capture file, gunzipping when it starts with the gzip magic {@code 1f 8b}.
     *
     * @throws IOException also {@link NoSuchFileException}
     */
    public static InputStream open(Path p) throws IOException {
        InputStream in = new BufferedInputStream(Files.newInputStream(p), 1 << 16);
        in.mark(2);
        int a = in.read();
        int b = in.read();
        in.reset();
        if (a == 0x1f && b == 0x8b) {
            return new BufferedInputStream(new GZIPInputStream(in, 1 << 16), 1 << 16);
        }
        return in;
    }

    /** Whether {@code p} (gunzipped if need be) starts with the main stream's magic "QEVM". */
    public static boolean isMainStream(Path p) {
        try (InputStream in = open(p)) {
            byte[] m = in.readNBytes(4);
            return m.length == 4 && ByteBuffer.wrap(m).getInt() == StreamFraming.QEMU_VM_FILE_MAGIC;
        } catch (NoSuchFileException e) {
            throw new MigrationException(Category.CONFIG, "no such file: " + p);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot read " + p + ": " + e.getMessage(), e);
        }
    }

    /** The name a channel file goes by in errors: its file name, "(gunzipped)" when offsets count gunzipped bytes. */
    public static String displayName(Path p) {
        boolean gz;
        try (InputStream in = Files.newInputStream(p)) {
            gz = in.read() == 0x1f && in.read() == 0x8b;
        } catch (IOException e) {
            gz = false;
        }
        return p.getFileName() + (gz ? " (gunzipped)" : "");
    }

    public MultifdConfig config() {
        return config;
    }

    // ---- RamLoadSink: the main channel's ram records ------------------------------------------

    @Override
    public void blockList(long totalBytes, List<RamBlockInfo> list) {
        for (RamBlockInfo b : list) {
            if (!blocks.containsKey(b.idstr())) {
                MemorySegment mem = memory.allocate(b.idstr(), b.usedLength());
                blocks.put(b.idstr(), new MultifdBlock(b.idstr(), mem, pageSize));
                ordered.put(b.idstr(), mem);
            }
        }
        if (!started) {
            started = true;
            for (Path p : files) {
                ReadableByteChannel ch;
                try {
                    ch = Channels.newChannel(open(p));
                } catch (IOException e) {
                    throw new MigrationException(Category.IO, "cannot open " + p + ": " + e.getMessage(), e);
                }
                fileById.put(rx.addChannel(ch, displayName(p)), p);
            }
            rx.awaitChannels();
        }
    }

    @Override
    public MemorySegment pageTarget(String block, long offset) {
        return target(block).memory().asSlice(offset, pageSize);
    }

    @Override
    public void pageLoaded(String block, long offset) {
        target(block).markReceived(offset);
    }

    @Override
    public void zeroPage(String block, long offset) {
        MultifdBlock b = target(block);
        if (b.markReceived(offset)) {
            b.memory().asSlice(offset, pageSize).fill((byte) 0);
        }
    }

    @Override
    public void multifdFlush() {
        flushSeen = true;
        rx.recvSyncMain();
    }

    @Override
    public void endOfSection() {
        if (!flushSeen) {
            legacy = true;
            rx.recvSyncMain();
        }
    }

    private MultifdBlock target(String name) {
        MultifdBlock b = blocks.get(name);
        if (b == null) {
            throw new MigrationException(Category.PROTOCOL, "RAM record for block '" + name + "' before the block list");
        }
        return b;
    }

    // ---- the end ------------------------------------------------------------------------------

    /**
     * Call once the main channel's {@code ram} section has ended: waits until every channel file
     * has been read to its end (each must end right after its last packet) and returns the
     * per-channel reports and the reconstructed blocks.
     */
    public Result finish() {
        if (!started) {
            throw new MigrationException(Category.PROTOCOL, "multifd channel files were given, but the main channel "
                    + "has no ram section with a block list, so no channel was read");
        }
        if (!rx.awaitEnd(timeout)) {
            errors.throwIfSet();
            throw new MigrationException(Category.TIMEOUT, "multifd channel files did not end within " + Durations.human(timeout)
                    + " after the main channel's last MULTIFD_FLUSH (more packets after the last SYNC?)");
        }
        errors.throwIfSet();
        List<ChannelReport> reports = new ArrayList<>();
        for (ChannelStats s : rx.stats()) {
            reports.add(new ChannelReport(fileById.get(s.id()).toString(), s));
        }
        return new Result(reports, ordered, legacy, config.compression(), detection);
    }

    /**
     * The error to report for {@code e} thrown while decoding: when a channel failed first, the
     * main side only sees a "shutting down" cancellation; the channel's error names the cause.
     */
    public MigrationException firstError(MigrationException e) {
        MigrationException first = errors.get();
        return first != null && first != e && e.category() == Category.CANCELLED ? first : e;
    }

    /** Stops and joins the channel threads; the block memory stays with its owner. */
    @Override
    public void close() {
        rx.close();
    }
}
