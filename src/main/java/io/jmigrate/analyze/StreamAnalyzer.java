package io.jmigrate.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.analyze.AnalysisResult.CommandInfo;
import io.jmigrate.analyze.AnalysisResult.MultifdSummary;
import io.jmigrate.analyze.AnalysisResult.RamBlockStats;
import io.jmigrate.analyze.AnalysisResult.SectionInfo;
import io.jmigrate.analyze.VmDesc.DeviceKey;
import io.jmigrate.analyze.VmDesc.VmsdStruct;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.multifd.MultifdCompression;
import io.jmigrate.multifd.MultifdConfig;
import io.jmigrate.ram.MultifdCapture;
import io.jmigrate.ram.RamBlockInfo;
import io.jmigrate.ram.RamFlags;
import io.jmigrate.ram.RamLoadSink;
import io.jmigrate.ram.RamSectionReader;
import io.jmigrate.savevm.Command;
import io.jmigrate.savevm.MainStreamWalker;
import io.jmigrate.savevm.MigCommand;
import io.jmigrate.savevm.SectionHeader;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.savevm.StreamFraming;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.StreamLimits;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Walks a saved main migration stream (PROTOCOL.md §1) from the file header to the vmdesc
 * trailer and reports what it holds, as QEMU's {@code scripts/analyze-migration.py} does (§7):
 *
 * <ol>
 *   <li>find the vmdesc JSON at the end of the stream ({@link StreamSource#scanTail});</li>
 *   <li>read the header (magic, version 3), the configuration (machine type, capabilities),
 *       then every section: START/PART/END/FULL with their footers, COMMAND, EOF, and the
 *       VMDESCRIPTION trailer, which must be the last bytes;</li>
 *   <li>decode the {@code ram} section's records with {@link RamSectionReader} (counting pages
 *       per block, extracting them if asked) and every other section with its vmdesc
 *       description ({@link VmStateDecoder}).</li>
 * </ol>
 *
 * With multifd channel files ({@link #analyzeCapture}) the same walk also feeds the {@code ram}
 * records to a {@link MultifdCapture}: this class is the one walker of a main channel.
 *
 * <p>Memory stays bounded: RAM pages are skipped or read straight into mapped extraction files;
 * only device state (kilobytes) and the section list are kept. (Rebuilding RAM from multifd
 * channels without {@code -x} needs the guest RAM size in native memory.) Every malformed input ends in a
 * {@link MigrationException} naming the byte offset and what was expected.
 */
public final class StreamAnalyzer {
    /** Sections listed individually in the result; more are only counted. */
    public static final int MAX_SECTIONS_LISTED = 100_000;
    /** Default limit for the vmdesc trailer (and the tail window scanned for it). */
    public static final int DEFAULT_MAX_VMDESC = 16 << 20;
    /** Longest machine type name accepted in the configuration section. */
    public static final int MAX_MACHINE_NAME = 256;

    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    private static final String CONFIG_PREFIX = "configuration/";

    /**
     * @param extractDir      where {@code -x} writes RAM block files, or null to skip page bytes
     * @param limits          bounds for lengths read off the stream; {@code maxVmdesc} also bounds the
     *                        tail window searched for the trailer
     * @param multifdChannels the multifd channel files of a recorded multifd migration whose main
     *                        channel is analysed (any order; empty for a plain stream)
     * @param ramDigests      with multifd channels: compute the sha256 of every reconstructed RAMBlock
     * @param multifdCompression with multifd channels: the multifd-compression method to decode them
     *                        with, or null to take it from the packets' compression flags
     */
    public record Options(Path extractDir, StreamLimits limits, List<Path> multifdChannels, boolean ramDigests,
                          MultifdCompression multifdCompression) {
        public static final Options DEFAULT = new Options(null,
                new StreamLimits(StreamLimits.DEFAULT.maxBuffer(), DEFAULT_MAX_VMDESC, StreamLimits.DEFAULT.maxCommandLen()));

        public Options {
            multifdChannels = List.copyOf(multifdChannels);
        }

        public Options(Path extractDir, StreamLimits limits) {
            this(extractDir, limits, List.of(), false, null);
        }

        public Options withExtractDir(Path dir) {
            return new Options(dir, limits, multifdChannels, ramDigests, multifdCompression);
        }

        public Options withLimits(StreamLimits l) {
            return new Options(extractDir, l, multifdChannels, ramDigests, multifdCompression);
        }

        /** Decodes {@code channels} along with the main stream (see {@link StreamAnalyzer#analyzeCapture}). */
        public Options withMultifd(List<Path> channels) {
            return new Options(extractDir, limits, channels, ramDigests, multifdCompression);
        }

        public Options withRamDigests(boolean digests) {
            return new Options(extractDir, limits, multifdChannels, digests, multifdCompression);
        }

        /** Decodes the multifd channels with {@code method} (null: detect it from the packet flags). */
        public Options withMultifdCompression(MultifdCompression method) {
            return new Options(extractDir, limits, multifdChannels, ramDigests, method);
        }
    }

    private final StreamSource source;
    private final Options options;

    private QemuFileReader r;
    private long length;
    private VmDesc vmdesc;
    private StreamSource.Tail tail;
    private String machine;
    private final List<String> capabilities = new ArrayList<>();
    private int pageSize = 4096;
    private boolean ignoreShared;
    private final List<SectionInfo> sections = new ArrayList<>();
    private long sectionCount;
    private final List<CommandInfo> commands = new ArrayList<>();
    /** section id to (key, state node) in first-seen order, as analyze-migration.py's dict. */
    private final Map<Long, Map.Entry<String, JsonNode>> stateById = new LinkedHashMap<>();
    /** VFIO devices' section decoders, and the section id each one's state entry is listed under. */
    private final Map<DeviceKey, io.jmigrate.vfio.VfioSectionDecoder> vfio = new LinkedHashMap<>();
    private final Map<DeviceKey, Long> vfioFirstId = new HashMap<>();
    /** A section footer: u8 0x7e, be32 section id. */
    private static final int FOOTER_SIZE = 5;
    private RamState ram;
    private long eofOffset = -1;
    private long vmdescOffset = -1;

    private StreamAnalyzer(StreamSource source, Options options) {
        this.source = source;
        this.options = options;
    }

    /** Analyzes {@code file} (plain or gzip). */
    public static AnalysisResult analyze(Path file, Options options) {
        return new StreamAnalyzer(StreamSource.open(file), options).run();
    }

    public static AnalysisResult analyze(Path file) {
        return analyze(file, Options.DEFAULT);
    }

    /**
     * Analyzes a recorded multifd migration: {@code files} are the main channel and every
     * multifd channel, one file per connection, in any order (exactly one starts with "QEVM").
     * The main channel is walked as {@link #analyze(Path, Options)} does; its {@code ram} section
     * records also drive a {@link MultifdCapture} over the channel files, so every packet is
     * validated and the RAM blocks are rebuilt (main-channel pages overlaid with multifd pages;
     * into the {@code -x} files when {@code options.extractDir()} is set). Any channel files
     * already in {@code options} are replaced.
     */
    public static AnalysisResult analyzeCapture(List<Path> files, Options options) {
        Path main = null;
        List<Path> channels = new ArrayList<>();
        for (Path p : files) {
            if (MultifdCapture.isMainStream(p)) {
                if (main != null) {
                    throw new MigrationException(Category.CONFIG, "two main channels (files starting with \"QEVM\"): "
                            + main + " and " + p + "; expected one main channel and the multifd channel files");
                }
                main = p;
            } else {
                channels.add(p);
            }
        }
        if (main == null) {
            throw new MigrationException(Category.CONFIG, "no main channel among " + files
                    + ": exactly one file must start with the stream magic \"QEVM\" (51 45 56 4d)");
        }
        if (channels.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "no multifd channel files given besides the main channel "
                    + main);
        }
        return analyze(main, options.withMultifd(channels));
    }

    /**
     * Reads only the vmdesc trailer (for {@code -d desc}); fails if there is none.
     */
    public static VmDesc readVmdesc(Path file, Options options) {
        StreamSource src = StreamSource.open(file);
        StreamSource.Tail t = src.scanTail(options.limits().maxVmdesc() + 5);
        if (!t.found()) {
            throw noVmdesc(src, t, options);
        }
        return parseVmdesc(src, t);
    }

    private static VmDesc parseVmdesc(StreamSource src, StreamSource.Tail t) {
        try {
            return VmDesc.parse(t.json(), t.offset() + 5);
        } catch (MigrationException e) {
            throw new MigrationException(e.category(), src.displayName() + ": " + e.getMessage(), e);
        }
    }

    private static MigrationException noVmdesc(StreamSource src, StreamSource.Tail t, Options o) {
        return new MigrationException(Category.PROTOCOL, src.displayName() + ": no vmdesc trailer found in the last "
                + Math.min(t.totalLength(), o.limits().maxVmdesc() + 5L) + " of " + t.totalLength()
                + " bytes (expected byte 0x06 QEMU_VM_VMDESCRIPTION, a be32 length L and L bytes of JSON ending the "
                + "stream); the stream may be truncated, or saved with suppress-vmdesc");
    }

    private AnalysisResult run() {
        tail = source.scanTail(options.limits().maxVmdesc() + 5);
        length = tail.totalLength();
        if (tail.found()) {
            vmdesc = parseVmdesc(source, tail);
            pageSize = vmdesc.pageSize();
        }
        RamExtractor extractor = null;
        MultifdSummary multifd = null;
        try (QemuFileReader reader = new QemuFileReader(source.openChannel(), source.displayName(), options.limits())) {
            r = reader;
            walk();
            if (ram != null && options.extractDir() != null) {
                extractor = ram.extractor;
            }
            if (!options.multifdChannels().isEmpty()) {
                multifd = finishMultifd();
            }
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot close " + source.path() + ": " + e.getMessage(), e);
        } catch (MigrationException e) {
            throw ram != null && ram.capture != null ? ram.capture.firstError(e) : e;
        } finally {
            closeRam();
        }
        ObjectNode state = NODES.objectNode();
        stateById.values().forEach(e -> state.set(e.getKey(), e.getValue()));
        List<RamBlockStats> blocks = new ArrayList<>();
        Map<String, Long> flags = new LinkedHashMap<>();
        if (ram != null) {
            ram.stats.values().forEach(s -> blocks.add(new RamBlockStats(s.idstr, s.length, s.normal, s.zero, pageSize)));
            ram.flagCounts.forEach((k, v) -> flags.put("0x" + Integer.toHexString(k), v));
        }
        return new AnalysisResult(source.path(), source.gzip(), length, machine, pageSize, capabilities, sections,
                sectionCount, commands, blocks, flags, state, vmdesc, vmdescOffset, eofOffset,
                extractor == null ? Map.of() : extractor.files(), multifd);
    }

    /** After the walk: drains the channel files, digests the rebuilt blocks if asked (memory still open). */
    private MultifdSummary finishMultifd() {
        if (ram == null || ram.capture == null) {
            throw new MigrationException(Category.PROTOCOL, source.displayName() + ": " + options.multifdChannels().size()
                    + " multifd channel file(s) given, but the main channel has no ram section, so they cannot be "
                    + "decoded");
        }
        MultifdCapture.Result res = ram.capture.finish();
        Map<String, String> digests = new LinkedHashMap<>();
        if (options.ramDigests()) {
            res.blocks().forEach((k, v) -> digests.put(k, MultifdCapture.Result.sha256(v)));
        }
        return new MultifdSummary(res.channels(), res.legacySync(), digests, res.compression(),
                res.detected() == null ? null : res.detected().where());
    }

    /** Channel threads stop before the memory they write into (extractor mappings, arena) goes away. */
    private void closeRam() {
        if (ram == null) {
            return;
        }
        try {
            if (ram.capture != null) {
                ram.capture.close();
            }
        } finally {
            try {
                if (ram.extractor != null) {
                    ram.extractor.close();
                }
            } finally {
                if (ram.arena != null) {
                    ram.arena.close();
                }
            }
        }
    }

    // ---- the section loop ---------------------------------------------------------------------

    /** The records, from the file header to EOF and the trailer, on the walk the loader shares. */
    private void walk() {
        MainStreamWalker walker = new MainStreamWalker();
        walker.walk(r, new MainStreamWalker.Visitor() {
            @Override
            public void configuration(QemuFileReader r, long at) {
                readConfiguration();
            }

            @Override
            public String section(QemuFileReader r, SectionHeader h, SectionHeader start) {
                return StreamAnalyzer.this.section(walker, h, start);
            }

            @Override
            public void command(QemuFileReader r, Command c, long at) {
                if (c.command() == MigCommand.PACKAGED) {
                    throw r.fail(Category.PROTOCOL, at + 1, "MIG_CMD_PACKAGED (postcopy) is not supported by the "
                            + "analyzer");
                }
                commands.add(new CommandInfo(c, at));
            }

            @Override
            public void eof(QemuFileReader r, long at) {
                eofOffset = at;
                trailer();
            }
        });
    }

    /** One device section's body, up to its footer; returns its description. */
    private String section(MainStreamWalker walker, SectionHeader h, SectionHeader start) {
        SectionType type = h.type();
        long at = h.offset();
        long id = Integer.toUnsignedLong(h.sectionId());
        if (type.hasFullHeader()) {
            checkIdstr(h, at);
        } else if (!walker.isOpen(h.sectionId())) {
            throw walker.unstarted(r, h, at); // its END came already
        }
        DeviceKey key = new DeviceKey(start.idstr(), Integer.toUnsignedLong(start.instanceId()));
        String where = type + " section " + id + " '" + key.idstr() + "' (at byte offset " + at + ")";
        boolean isRam = key.idstr().equals(RamFlags.IDSTR) && key.instanceId() == 0;
        if (isRam) {
            if (type.hasFullHeader() && Integer.toUnsignedLong(h.versionId()) != RamFlags.VERSION) {
                throw r.fail(Category.PROTOCOL, at, where + ": ram section version " + Integer.toUnsignedLong(h.versionId())
                        + ", expected " + RamFlags.VERSION);
            }
            ramSection(id, where);
        } else if (io.jmigrate.vfio.VfioSectionDecoder.isVfio(key.idstr())) {
            io.jmigrate.vfio.VfioSectionDecoder dec = vfio.computeIfAbsent(key,
                    k -> new io.jmigrate.vfio.VfioSectionDecoder(k.idstr()));
            long firstId = vfioFirstId.computeIfAbsent(key, k -> id);
            dec.section(r, type, where);
            stateById.put(firstId, Map.entry(key.idstr() + " (" + firstId + ")", dec.summary()));
        } else {
            if (type != SectionType.FULL) {
                throw r.fail(Category.PROTOCOL, at, where + ": iterative sections other than 'ram' and VFIO have no generic "
                        + "format and cannot be decoded");
            }
            VmsdStruct desc = vmdesc == null ? null : vmdesc.devices().get(key);
            if (desc == null) {
                throw r.fail(Category.PROTOCOL, at, where + ": no description for " + key + (vmdesc == null
                        ? " because the stream has no vmdesc trailer (it may be truncated, or saved with suppress-vmdesc)"
                        : " in the vmdesc (it describes " + vmdesc.devices().size() + " devices)"));
            }
            ObjectNode node = new VmStateDecoder(r, length).decode(desc, where);
            stateById.put(id, Map.entry(key.idstr() + " (" + id + ")", node));
        }
        sectionCount++;
        if (sections.size() < MAX_SECTIONS_LISTED) {
            sections.add(new SectionInfo(type, id, key.idstr(), key.instanceId(),
                    type.hasFullHeader() ? Integer.toUnsignedLong(h.versionId()) : 0, at,
                    r.position() + FOOTER_SIZE)); // the section ends after its footer, which the walk checks next
        }
        return where;
    }

    /**
     * QEMU accepts any bytes in an idstr; an analyzer that meets a non-printable one has almost
     * certainly met a corrupt length byte that ran into the following binary fields.
     */
    private void checkIdstr(SectionHeader h, long at) {
        String s = h.idstr();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c > 0x7e) {
                throw r.fail(Category.PROTOCOL, at + 5, String.format("%s section %d: over-long or corrupt idstr: its "
                        + "length byte says %d, but byte %d of the name is 0x%02x, not printable ASCII (expected an idstr "
                        + "of printable characters such as \"ram\" or \"0000:00:02.0/vga\", followed by be32 instance_id "
                        + "and be32 version_id); read \"%s\"", h.type(), Integer.toUnsignedLong(h.sectionId()),
                        s.length(), i, (int) c, VmStateDecoder.printable(s)));
            }
        }
    }

    private void trailer() {
        if (r.atEof()) {
            return;
        }
        long at = r.position();
        int b = r.readU8("vmdesc marker");
        if (b != SectionType.VMDESCRIPTION.wire) {
            throw r.fail(Category.PROTOCOL, at, String.format("expected QEMU_VM_VMDESCRIPTION (0x06) or the end of the "
                    + "stream after QEMU_VM_EOF, got byte 0x%02x", b));
        }
        long lenAt = r.position();
        long len = r.readBe32Unsigned("vmdesc length");
        checkFits(len, options.limits().maxVmdesc(), lenAt, "vmdesc JSON");
        if (!tail.found() || tail.offset() != at) {
            throw r.fail(Category.PROTOCOL, at, "vmdesc trailer of " + len + " bytes here does not end the stream ("
                    + length + " bytes)");
        }
        r.skip(len, "vmdesc JSON");
        vmdescOffset = at;
        if (!r.atEof()) {
            throw r.fail(Category.PROTOCOL, "unexpected bytes after the vmdesc trailer: expected the end of the stream");
        }
    }

    /** Checks a length read at {@code at} against a maximum and against the bytes left. */
    private void checkFits(long len, long max, long at, String what) {
        if (len > max) {
            throw r.fail(Category.LIMIT, at, "length " + len + " of " + what + " exceeds the configured maximum of "
                    + max + " bytes");
        }
        long left = length - r.position();
        if (len > left) {
            throw r.fail(Category.PROTOCOL, at, "length " + len + " of " + what + " runs past the end of the stream: only "
                    + Math.max(0, left) + " byte(s) remain");
        }
    }

    // ---- configuration (PROTOCOL.md §1.5) -----------------------------------------------------

    private void readConfiguration() {
        long lenAt = r.position();
        long len = r.readBe32Unsigned("configuration machine name length");
        checkFits(len, Math.min(MAX_MACHINE_NAME, options.limits().maxBuffer()), lenAt, "configuration machine name");
        byte[] name = r.readBytes(len, "configuration machine name");
        machine = new String(name, StandardCharsets.ISO_8859_1);
        VmsdStruct desc = vmdesc == null ? null : vmdesc.configuration();
        if (desc != null) {
            // The vmdesc describes the fields (len, name) and the subsections that were sent.
            VmDesc.Entry nameField = desc.fields().stream().filter(e -> e.field().name().equals("name")).findFirst()
                    .orElse(null);
            if (nameField != null && nameField.field() instanceof VmDesc.BytesField bf && bf.size() != len) {
                throw r.fail(Category.PROTOCOL, lenAt, "configuration machine name length " + len
                        + " differs from the vmdesc's name size " + bf.size());
            }
            ObjectNode subs = new VmStateDecoder(r, length).decode(
                    new VmsdStruct(desc.vmsdName(), desc.version(), List.of(), desc.subsections()), "configuration");
            JsonNode caps = subs.path(CONFIG_PREFIX + "capabilities").path("capabilities");
            if (caps.isTextual()) {
                capabilities.add(caps.asText());
            } else if (caps.isArray()) {
                caps.forEach(c -> capabilities.add(c.asText()));
            }
            JsonNode bits = subs.path(CONFIG_PREFIX + "target-page-bits").path("target_page_bits");
            if (bits.isTextual() && vmdesc == null) {
                pageSize = 1 << Integer.decode(bits.asText());
            }
        } else {
            readKnownConfigSubsections();
        }
        ignoreShared = capabilities.contains("x-ignore-shared");
        if (capabilities.contains("mapped-ram")) {
            throw r.fail(Category.PROTOCOL, "the stream uses the mapped-ram capability, whose file layout the analyzer "
                    + "does not support");
        }
    }

    /** Without a vmdesc description: the subsections QEMU 10 defines (§1.5), by name. */
    private void readKnownConfigSubsections() {
        while (r.peekU8() == SectionType.SUBSECTION.wire) {
            byte[] peek = r.peek(1, 1 + CONFIG_PREFIX.length());
            if (peek.length < 1 + CONFIG_PREFIX.length() || !new String(peek, 1, CONFIG_PREFIX.length(),
                    StandardCharsets.ISO_8859_1).equals(CONFIG_PREFIX)) {
                return;
            }
            long at = r.position();
            r.readU8("subsection marker");
            String name = r.readCountedString("configuration subsection name");
            r.readBe32("subsection version");
            switch (name) {
                case "configuration/target-page-bits" -> {
                    long bitsAt = r.position();
                    int bits = r.readBe32("target_page_bits");
                    if (bits < 10 || bits > 30) {
                        throw r.fail(Category.PROTOCOL, bitsAt, "target_page_bits " + bits + ", expected 10..30");
                    }
                    if (vmdesc == null) {
                        pageSize = 1 << bits;
                    }
                }
                case "configuration/capabilities" -> {
                    long countAt = r.position();
                    long n = r.readBe32Unsigned("caps_count");
                    checkFits(n, 1024, countAt, "capability list (entries)");
                    for (long i = 0; i < n; i++) {
                        capabilities.add(r.readCountedString("capability name"));
                    }
                }
                case "configuration/uuid" -> r.skip(16, "configuration uuid");
                default -> throw r.fail(Category.PROTOCOL, at, "unknown configuration subsection '"
                        + VmStateDecoder.printable(name) + "' and no vmdesc description to decode it");
            }
        }
    }

    // ---- ram --------------------------------------------------------------------------------

    private void ramSection(long id, String where) {
        if (ram == null) {
            RamExtractor extractor = options.extractDir() == null ? null : new RamExtractor(options.extractDir(), pageSize);
            ram = new RamState(new RamSectionReader(pageSize, ignoreShared), extractor);
            if (!options.multifdChannels().isEmpty()) {
                MultifdCapture.BlockMemory memory;
                if (extractor != null) {
                    memory = extractor::mapping;
                } else {
                    ram.arena = Arena.ofShared();
                    memory = (idstr, len) -> ram.arena.allocate(len, pageSize);
                }
                ram.capture = MultifdCapture.start(options.multifdChannels(), pageSize, memory,
                        MultifdConfig.DEFAULT_TIMEOUT, options.multifdCompression());
            }
            ObjectNode node = NODES.objectNode();
            ram.sizes = node.putObject("section sizes");
            stateById.put(id, Map.entry(RamFlags.IDSTR + " (" + id + ")", node));
        }
        ram.reader.readSection(r, ram, where);
    }

    private static final class BlockStats {
        final String idstr;
        final long length;
        long normal;
        long zero;

        BlockStats(String idstr, long length) {
            this.idstr = idstr;
            this.length = length;
        }
    }

    /**
     * Counts records per block and flag value; forwards pages to the multifd capture if any (which
     * writes them into the extractor's files when extracting), else to the extractor if any.
     */
    private static final class RamState implements RamLoadSink {
        final RamSectionReader reader;
        final RamExtractor extractor;
        MultifdCapture capture;
        Arena arena;
        final Map<String, BlockStats> stats = new LinkedHashMap<>();
        final Map<Integer, Long> flagCounts = new TreeMap<>();
        ObjectNode sizes;
        BlockStats last;

        RamState(RamSectionReader reader, RamExtractor extractor) {
            this.reader = reader;
            this.extractor = extractor;
        }

        @Override
        public void recordHeader(int flags, long offset, long streamOffset) {
            flagCounts.merge(flags, 1L, Long::sum);
        }

        @Override
        public void blockList(long totalBytes, List<RamBlockInfo> blocks) {
            flagCounts.merge(0, (long) blocks.size(), Long::sum);
            for (RamBlockInfo b : blocks) {
                stats.putIfAbsent(b.idstr(), new BlockStats(b.idstr(), b.usedLength()));
                sizes.put(b.idstr(), String.format("0x%016x", b.usedLength()));
            }
            if (extractor != null) {
                extractor.blockList(blocks);
            }
            if (capture != null) {
                capture.blockList(totalBytes, blocks);
            }
        }

        private BlockStats stats(String block) {
            if (last != null && last.idstr.equals(block)) {
                return last;
            }
            last = stats.computeIfAbsent(block, b -> new BlockStats(b, 0));
            return last;
        }

        @Override
        public MemorySegment pageTarget(String block, long offset) {
            stats(block).normal++;
            if (capture != null) {
                return capture.pageTarget(block, offset);
            }
            return extractor == null ? null : extractor.pageTarget(block, offset);
        }

        @Override
        public void pageLoaded(String block, long offset) {
            if (capture != null) {
                capture.pageLoaded(block, offset);
            }
        }

        @Override
        public void zeroPage(String block, long offset) {
            stats(block).zero++;
            if (capture != null) {
                capture.zeroPage(block, offset);
            } else if (extractor != null) {
                extractor.zeroPage(block, offset);
            }
        }

        @Override
        public void multifdFlush() {
            if (capture != null) {
                capture.multifdFlush();
            }
        }

        @Override
        public void endOfSection() {
            if (capture != null) {
                capture.endOfSection();
            }
        }
    }
}
