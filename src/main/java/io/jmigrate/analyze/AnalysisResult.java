package io.jmigrate.analyze;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.multifd.ChannelStats;
import io.jmigrate.multifd.MultifdCompression;
import io.jmigrate.ram.MultifdCapture;
import io.jmigrate.savevm.Command;
import io.jmigrate.savevm.SectionType;

import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * What {@link StreamAnalyzer} found in one stream.
 *
 * @param file            the analysed file
 * @param gzip            whether it was gzip-compressed (offsets are then in the gunzipped bytes)
 * @param length          stream length in bytes (gunzipped)
 * @param machine         machine type from the configuration section, or null if there was none
 * @param pageSize        target page size used for RAM records
 * @param capabilities    capability names from {@code configuration/capabilities}
 * @param sections        device sections in stream order (at most {@link StreamAnalyzer#MAX_SECTIONS_LISTED})
 * @param sectionCount    number of device sections (may exceed {@code sections.size()})
 * @param commands        QEMU_VM_COMMAND records with their offsets
 * @param ramBlocks       per-RAMBlock page statistics, in block-list order
 * @param ramFlagCounts   RAM record header flag values (low bits, e.g. "0x22") and how often each
 *                        occurred; "0x0" counts the be64 lengths of MEM_SIZE block lists, like
 *                        the test data's streams.json
 * @param state           the device state in analyze-migration.py's {@code -d state} shape
 * @param vmdesc          the parsed vmdesc, or null if the stream has none
 * @param vmdescOffset    offset of the QEMU_VM_VMDESCRIPTION byte, or -1
 * @param eofOffset       offset of the QEMU_VM_EOF byte
 * @param extractedRam    RAMBlock idstr to extracted file ({@code -x}), else empty
 * @param multifd         the multifd channels decoded with the main channel, or null for a plain stream
 */
public record AnalysisResult(Path file, boolean gzip, long length, String machine, int pageSize,
                             List<String> capabilities, List<SectionInfo> sections, long sectionCount,
                             List<CommandInfo> commands, List<RamBlockStats> ramBlocks,
                             Map<String, Long> ramFlagCounts, ObjectNode state, VmDesc vmdesc, long vmdescOffset,
                             long eofOffset, Map<String, Path> extractedRam, MultifdSummary multifd) {

    public AnalysisResult {
        capabilities = List.copyOf(capabilities);
        sections = List.copyOf(sections);
        commands = List.copyOf(commands);
        ramBlocks = List.copyOf(ramBlocks);
        ramFlagCounts = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(ramFlagCounts));
        extractedRam = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(extractedRam));
    }

    /**
     * The multifd side of a recorded multifd migration ({@link StreamAnalyzer#analyzeCapture}).
     *
     * @param channels   per channel, ordered by id: file, packets, SYNCs, normal and zero pages, bytes
     * @param legacySync whether each RAM EOS (QEMU &lt; 8.1 without MULTIFD_FLUSH) drove the SYNC barrier
     * @param ramSha256  RAMBlock idstr to the sha256 (hex) of its reconstructed contents (main-channel
     *                   pages overlaid with multifd pages), in block-list order; empty unless asked for
     * @param compression the multifd-compression method the channels were decoded with
     * @param detectedAt  the packet whose flags showed the method (channel, file, byte offset), or
     *                    null when it was named by the user and no packet carried pages
     */
    public record MultifdSummary(List<MultifdCapture.ChannelReport> channels, boolean legacySync,
                                 Map<String, String> ramSha256, MultifdCompression compression, String detectedAt) {
        public MultifdSummary {
            channels = List.copyOf(channels);
            ramSha256 = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(ramSha256));
        }

        /** Totals over every channel (id -1). */
        public ChannelStats total() {
            long p = 0, s = 0, d = 0, n = 0, z = 0, b = 0;
            for (MultifdCapture.ChannelReport c : channels) {
                ChannelStats t = c.stats();
                p += t.packets();
                s += t.syncPackets();
                d += t.deviceStatePackets();
                n += t.normalPages();
                z += t.zeroPages();
                b += t.bytes();
            }
            return new ChannelStats(-1, p, s, d, n, z, b);
        }
    }

    /**
     * One device section.
     *
     * @param offset byte offset of its type byte
     * @param end    byte offset just past its footer
     */
    public record SectionInfo(SectionType type, long sectionId, String idstr, long instanceId, long versionId,
                              long offset, long end) {
    }

    /** One QEMU_VM_COMMAND at {@code offset} (the 0x08 byte). */
    public record CommandInfo(Command command, long offset) {
        public String name() {
            return command.command().qemuName();
        }
    }

    /**
     * RAM records seen for one RAMBlock.
     *
     * @param normalPages PAGE records (every transfer counts, a page sent twice counts twice)
     * @param zeroPages   ZERO records
     */
    public record RamBlockStats(String idstr, long usedLength, long normalPages, long zeroPages, int pageSize) {
        public long totalPages() {
            return usedLength / pageSize;
        }

        public long normalBytes() {
            return normalPages * pageSize;
        }

        public long zeroBytes() {
            return zeroPages * pageSize;
        }
    }

    /** A machine-readable summary: sections, commands, RAM statistics (not the device state). */
    public ObjectNode summary() {
        JsonNodeFactory f = JsonNodeFactory.instance;
        ObjectNode o = f.objectNode();
        o.put("file", file.toString());
        o.put("gzip", gzip);
        o.put("bytes", length);
        o.put("machine", machine);
        o.put("page_size", pageSize);
        ArrayNode caps = o.putArray("capabilities");
        capabilities.forEach(caps::add);
        ArrayNode secs = o.putArray("sections");
        for (SectionInfo s : sections) {
            ObjectNode n = secs.addObject();
            n.put("offset", s.offset());
            n.put("type", s.type().name());
            n.put("section_id", s.sectionId());
            n.put("idstr", s.idstr());
            if (s.type().hasFullHeader()) {
                n.put("instance_id", s.instanceId());
                n.put("version_id", s.versionId());
            }
            n.put("bytes", s.end() - s.offset());
        }
        o.put("section_count", sectionCount);
        ArrayNode cmds = o.putArray("commands");
        for (CommandInfo c : commands) {
            ObjectNode n = cmds.addObject();
            n.put("offset", c.offset());
            n.put("command", c.name());
            n.put("number", c.command().command().wire);
            n.put("payload", HexFormat.of().formatHex(c.command().payload()));
        }
        o.put("eof_offset", eofOffset);
        o.put("vmdesc_offset", vmdescOffset);
        ObjectNode ram = o.putObject("ram");
        for (RamBlockStats b : ramBlocks) {
            ObjectNode n = ram.putObject(b.idstr());
            n.put("used_length", b.usedLength());
            n.put("total_pages", b.totalPages());
            n.put("normal_pages", b.normalPages());
            n.put("normal_bytes", b.normalBytes());
            n.put("zero_pages", b.zeroPages());
            n.put("zero_bytes", b.zeroBytes());
            Path x = extractedRam.get(b.idstr());
            if (x != null) {
                n.put("file", x.toString());
            }
        }
        ObjectNode flags = o.putObject("ram_record_flags");
        ramFlagCounts.entrySet().stream()
                .sorted(Map.Entry.comparingByKey((a, b) -> Long.compare(Long.decode(a), Long.decode(b))))
                .forEach(e -> flags.put(e.getKey(), e.getValue()));
        if (multifd != null) {
            ObjectNode m = o.putObject("multifd");
            m.put("sync", multifd.legacySync() ? "legacy: each RAM EOS" : "MULTIFD_FLUSH");
            m.put("compression", multifd.compression().parameter());
            if (multifd.detectedAt() != null) {
                m.put("compression_detected_at", multifd.detectedAt());
            }
            ArrayNode chs = m.putArray("channels");
            for (MultifdCapture.ChannelReport c : multifd.channels()) {
                ChannelStats t = c.stats();
                ObjectNode n = chs.addObject();
                n.put("id", t.id());
                n.put("file", c.file());
                n.put("packets", t.packets());
                n.put("sync_packets", t.syncPackets());
                n.put("device_state_packets", t.deviceStatePackets());
                n.put("normal_pages", t.normalPages());
                n.put("zero_pages", t.zeroPages());
                n.put("bytes", t.bytes());
            }
            if (!multifd.ramSha256().isEmpty()) {
                ObjectNode d = m.putObject("ram_sha256");
                multifd.ramSha256().forEach(d::put);
            }
        }
        return o;
    }
}
