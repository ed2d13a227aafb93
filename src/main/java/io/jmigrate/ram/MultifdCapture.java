package io.jmigrate.ram;

import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.multifd.ChannelStats;
import io.jmigrate.multifd.DeviceStateSink;
import io.jmigrate.multifd.MultifdBlock;
import io.jmigrate.multifd.MultifdConfig;
import io.jmigrate.multifd.MultifdReceiver;
import io.jmigrate.savevm.Command;
import io.jmigrate.savevm.SectionHeader;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.savevm.StreamFraming;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.StreamLimits;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.Channels;
import java.nio.channels.ReadableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.GZIPInputStream;

/**
 * Decodes a recorded multifd migration: the main channel's bytes and each multifd channel's
 * bytes, one file per connection (any order, gzip or not), exactly as a destination would take
 * them. Each multifd file goes through the real {@link MultifdReceiver} (every packet validated,
 * pages written into memory by {@code mig/dst/recv_N} threads); the main channel is walked up to
 * the end of its {@code ram} section with {@link RamSectionReader}, and each
 * RAM_SAVE_FLAG_MULTIFD_FLUSH (or each RAM EOS in legacy mode, i.e. when the stream has no
 * flush before its first EOS, as QEMU &lt; 8.1) runs the SYNC barrier. So main-channel records
 * and multifd pages are overlaid in the order the protocol defines.
 *
 * <p>Limits: device sections other than {@code ram} before RAM completes are not skippable
 * without their descriptions and are rejected; device-state packets are counted but discarded.
 */
public final class MultifdCapture {
    private MultifdCapture() {
    }

    /** One multifd channel's facts. */
    public record ChannelReport(String file, ChannelStats stats) {
    }

    /**
     * The decoded migration.
     *
     * @param mainFile   the file that starts with "QEVM"
     * @param channels   per channel, ordered by id
     * @param blocks     reconstructed RAM blocks in MEM_SIZE order (valid while the arena is open)
     * @param ramRecords main-channel RAM record counts by flag value (low bits of each be64 word;
     *                   the block-list lengths count as 0x0, as in the testdata's streams.json)
     * @param legacySync whether EOS (not MULTIFD_FLUSH) drove the SYNC barrier
     */
    public record Result(Path mainFile, List<ChannelReport> channels, Map<String, MemorySegment> blocks,
                         Map<Integer, Long> ramRecords, boolean legacySync) {
        /** sha256 of a reconstructed block, hex. */
        public String sha256(String block) {
            MemorySegment s = blocks.get(block);
            if (s == null) {
                throw new IllegalArgumentException("no RAMBlock " + block + " in " + blocks.keySet());
            }
            try {
                MessageDigest md = MessageDigest.getInstance("SHA-256");
                md.update(s.asByteBuffer());
                return HexFormat.of().formatHex(md.digest());
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /** Opens a capture file, gunzipping when it starts with the gzip magic. */
    static InputStream open(Path p) throws IOException {
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

    private static boolean isMain(Path p) throws IOException {
        try (InputStream in = open(p)) {
            byte[] m = in.readNBytes(4);
            return m.length == 4 && ((m[0] & 0xff) << 24 | (m[1] & 0xff) << 16 | (m[2] & 0xff) << 8 | (m[3] & 0xff))
                    == StreamFraming.QEMU_VM_FILE_MAGIC;
        }
    }

    /**
     * Decodes the capture. RAM blocks are allocated in {@code arena}.
     *
     * @param files    the main channel file and every multifd channel file, any order
     * @param pageSize target page size (4096 for x86)
     * @param timeout  bound on waiting for channel threads
     */
    public static Result decode(List<Path> files, int pageSize, Arena arena, Duration timeout) {
        Path main = null;
        List<Path> multifd = new ArrayList<>();
        try {
            for (Path p : files) {
                if (isMain(p)) {
                    if (main != null) {
                        throw new MigrationException(Category.CONFIG, "two main channels (starting with QEVM): " + main
                                + " and " + p);
                    }
                    main = p;
                } else {
                    multifd.add(p);
                }
            }
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot read capture: " + e.getMessage(), e);
        }
        if (main == null) {
            throw new MigrationException(Category.CONFIG, "no main channel among " + files
                    + ": exactly one file must start with \"QEVM\"");
        }
        if (multifd.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "no multifd channel files given besides " + main);
        }
        MultifdConfig cfg = MultifdConfig.defaults(multifd.size()).withTimeout(timeout);
        cfg = new MultifdConfig(cfg.channels(), pageSize, cfg.compression(), cfg.level(), cfg.zeroPageDetection(),
                null, cfg.maxDeviceStatePacket(), timeout);
        Map<String, MultifdBlock> blocks = new ConcurrentHashMap<>();
        Map<String, MemorySegment> ordered = new LinkedHashMap<>();
        FirstError errors = new FirstError();
        DeviceStateSink discard = (idstr, instance, data) -> { };
        Map<String, String> names = new ConcurrentHashMap<>();
        Map<Integer, Long> records = new java.util.TreeMap<>();
        boolean[] legacy = new boolean[1];
        try (MultifdReceiver rx = new MultifdReceiver(cfg, blocks::get, discard, errors);
             QemuFileReader r = new QemuFileReader(open(main), main.getFileName().toString(), StreamLimits.DEFAULT)) {
            List<Path> channelFiles = List.copyOf(multifd);
            MultifdConfig config = cfg;
            RamLoadSink sink = new RamLoadSink() {
                boolean started;
                boolean flushSeen;

                @Override
                public void blockList(long totalBytes, List<RamBlockInfo> list) {
                    count(RamFlags.MEM_SIZE);
                    for (RamBlockInfo b : list) {
                        count(0);
                        if (!blocks.containsKey(b.idstr())) {
                            MemorySegment mem = arena.allocate(b.usedLength(), config.pageSize());
                            blocks.put(b.idstr(), new MultifdBlock(b.idstr(), mem, config.pageSize()));
                            ordered.put(b.idstr(), mem);
                        }
                    }
                    if (!started) {
                        started = true;
                        for (Path p : channelFiles) {
                            ReadableByteChannel ch;
                            try {
                                ch = Channels.newChannel(open(p));
                            } catch (IOException e) {
                                throw new MigrationException(Category.IO, "cannot open " + p + ": " + e.getMessage(), e);
                            }
                            int id = rx.addChannel(ch, p.getFileName().toString());
                            names.put(String.valueOf(id), p.toString());
                        }
                        rx.awaitChannels();
                    }
                }

                @Override
                public MemorySegment pageTarget(String block, long offset) {
                    return target(block).memory().asSlice(offset, config.pageSize());
                }

                @Override
                public void pageLoaded(String block, long offset) {
                    count(RamFlags.PAGE);
                    target(block).markReceived(offset);
                }

                @Override
                public void zeroPage(String block, long offset) {
                    count(RamFlags.ZERO);
                    MultifdBlock b = target(block);
                    if (b.markReceived(offset)) {
                        b.memory().asSlice(offset, config.pageSize()).fill((byte) 0);
                    }
                }

                @Override
                public void multifdFlush() {
                    count(RamFlags.MULTIFD_FLUSH);
                    flushSeen = true;
                    rx.recvSyncMain();
                }

                @Override
                public void endOfSection() {
                    count(RamFlags.EOS);
                    if (!flushSeen) {
                        legacy[0] = true;
                        rx.recvSyncMain();
                    }
                }

                private MultifdBlock target(String name) {
                    MultifdBlock b = blocks.get(name);
                    if (b == null) {
                        throw new MigrationException(Category.PROTOCOL, "RAM record for block '" + name
                                + "' before the block list");
                    }
                    return b;
                }

                private void count(int flag) {
                    records.merge(flag, 1L, Long::sum);
                }
            };
            walkMain(r, new RamSectionReader(pageSize), sink);
            if (!rx.awaitEnd(timeout)) {
                throw new MigrationException(Category.TIMEOUT, "multifd channel files did not end within " + timeout
                        + " after the main channel's RAM section ended (a SYNC without a matching flush?)");
            }
            List<ChannelReport> reports = new ArrayList<>();
            for (ChannelStats s : rx.stats()) {
                reports.add(new ChannelReport(names.get(String.valueOf(s.id())), s));
            }
            errors.throwIfSet();
            return new Result(main, List.copyOf(reports), java.util.Collections.unmodifiableMap(ordered),
                    java.util.Collections.unmodifiableMap(records), legacy[0]);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot read " + main + ": " + e.getMessage(), e);
        } catch (MigrationException e) {
            MigrationException first = errors.get();
            throw first != null && first != e && e.category() == Category.CANCELLED ? first : e;
        }
    }

    /** Walks header, configuration, commands and the ram section until its END (or EOF). */
    private static void walkMain(QemuFileReader r, RamSectionReader ram, RamLoadSink sink) {
        StreamFraming.readFileHeader(r);
        Integer ramId = null;
        while (true) {
            long at = r.position();
            SectionType t = StreamFraming.readSectionType(r);
            switch (t) {
                case EOF -> {
                    return;
                }
                case CONFIGURATION -> skipConfiguration(r);
                case COMMAND -> {
                    Command c = StreamFraming.readCommand(r);
                    if (c == null) {
                        throw r.fail(Category.PROTOCOL, at, "bad command");
                    }
                }
                case START, FULL -> {
                    SectionHeader h = StreamFraming.readSectionHeader(r, t, at);
                    if (!RamFlags.IDSTR.equals(h.idstr()) || h.instanceId() != 0) {
                        throw r.fail(Category.PROTOCOL, at, "section '" + h.idstr() + "' (" + t + ") before the ram "
                                + "section completed: only ram sections can be decoded without a device description");
                    }
                    ramId = h.sectionId();
                    ram.readSection(r, sink, "ram section " + h.sectionId() + " (" + t + ")");
                    StreamFraming.readFooter(r, h.sectionId(), "ram section " + h.sectionId());
                    if (t == SectionType.FULL) {
                        return;
                    }
                }
                case PART, END -> {
                    SectionHeader h = StreamFraming.readSectionHeader(r, t, at);
                    if (ramId == null || h.sectionId() != ramId) {
                        throw r.fail(Category.PROTOCOL, at, t + " section " + h.sectionId()
                                + " is not the ram section" + (ramId == null ? " (no ram START seen)" : " " + ramId));
                    }
                    ram.readSection(r, sink, "ram section " + h.sectionId() + " (" + t + ")");
                    StreamFraming.readFooter(r, h.sectionId(), "ram section " + h.sectionId());
                    if (t == SectionType.END) {
                        return;
                    }
                }
                default -> throw r.fail(Category.PROTOCOL, at, "unexpected " + t + " before the ram section completed");
            }
        }
    }

    /** Skips the configuration VMState (§1.5): be32 len + machine name, then known subsections. */
    private static void skipConfiguration(QemuFileReader r) {
        long len = r.readBe32Unsigned("machine name length");
        r.readBytes(len, "machine name");
        while (r.peekU8() == SectionType.SUBSECTION.wire) {
            long at = r.position();
            r.readU8("subsection marker");
            String name = r.readCountedString("subsection name");
            r.readBe32("subsection version");
            switch (name) {
                case "configuration/target-page-bits" -> r.readBe32("target page bits");
                case "configuration/capabilities" -> {
                    long n = r.readBe32Unsigned("capability count");
                    r.checkLength(n, 256, "capability count");
                    for (long i = 0; i < n; i++) {
                        r.readCountedString("capability name");
                    }
                }
                case "configuration/uuid" -> r.readBytes(16, "VM UUID");
                default -> throw r.fail(Category.PROTOCOL, at, "unknown configuration subsection '" + name + "'");
            }
        }
    }
}
