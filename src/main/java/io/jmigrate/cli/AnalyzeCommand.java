package io.jmigrate.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.analyze.AnalysisResult;
import io.jmigrate.analyze.AnalysisResult.CommandInfo;
import io.jmigrate.analyze.AnalysisResult.MultifdSummary;
import io.jmigrate.analyze.AnalysisResult.RamBlockStats;
import io.jmigrate.analyze.AnalysisResult.SectionInfo;
import io.jmigrate.analyze.PyJson;
import io.jmigrate.analyze.StreamAnalyzer;
import io.jmigrate.analyze.VmDesc;
import io.jmigrate.common.MigrationException;
import io.jmigrate.multifd.ChannelStats;
import io.jmigrate.multifd.MultifdCompression;
import io.jmigrate.ram.MultifdCapture;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code jmigrate analyze FILE [--multifd CH ...]}: QEMU's {@code scripts/analyze-migration.py} for a
 * saved main migration stream (plain or gzip), optionally with the multifd channel files of a
 * recorded multifd migration. Presentation only; the work is {@link StreamAnalyzer}.
 */
@Command(name = "analyze", mixinStandardHelpOptions = true,
        description = {"Decode a saved QEMU migration stream (plain or .gz), like QEMU's scripts/analyze-migration.py.",
            "Default output: the device state as JSON, identical to 'analyze-migration.py -d state'."},
        footer = {"", "Exit status: 0 if the whole stream decoded, 1 on malformed input (the message names the byte "
                + "offset), 2 on bad usage."})
public final class AnalyzeCommand implements Callable<Integer> {

    enum Dump { state, desc, summary }

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "FILE", description = "the migration stream (gzip is detected by its magic)")
    Path file;

    @Option(names = {"-d", "--dump"}, paramLabel = "WHAT",
            description = "what to print: state (device state JSON, the default), desc (the vmdesc JSON), "
                    + "summary (sections, commands with byte offsets, RAM)")
    Dump dump;

    @Option(names = "--ram", description = "print per-RAMBlock page counts (normal, zero, total pages and bytes)")
    boolean ram;

    @Option(names = "--multifd", arity = "1..*", paramLabel = "CH",
            description = {"the multifd channel files of a recorded multifd migration whose main channel is FILE "
                    + "(one file per connection, any order, gzip or not): every packet is validated, a per-channel "
                    + "report is printed after the usual output, -x writes the rebuilt RAM (main-channel pages "
                    + "overlaid with multifd pages), --ram adds each rebuilt RAMBlock's sha256"})
    List<Path> multifd;

    @Option(names = "--multifd-compression", paramLabel = "METHOD",
            converter = CompressionConverter.class,
            description = {"with --multifd: decode the channels as multifd-compression METHOD (none, zlib or zstd). "
                    + "Default: the method the packets' compression flags name; a capture whose flags name another "
                    + "method than METHOD is an error"})
    MultifdCompression multifdCompression;

    static final class CompressionConverter implements picocli.CommandLine.ITypeConverter<MultifdCompression> {
        @Override
        public MultifdCompression convert(String value) {
            try {
                return MultifdCompression.fromParameter(value);
            } catch (IllegalArgumentException e) {
                throw new picocli.CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }

    @Option(names = {"-x", "--extract"}, paramLabel = "DIR",
            description = "extract into DIR: ram/<block>.ram per RAMBlock ('/' in names becomes '_'), "
                    + "devices/<idstr>_<section id>.json per device, state.json, desc.json, summary.json")
    Path extract;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try {
            if (dump == Dump.desc && extract == null && !ram && multifd == null) {
                VmDesc d = StreamAnalyzer.readVmdesc(file, StreamAnalyzer.Options.DEFAULT);
                out.println(PyJson.toString(d.json()));
                out.flush();
                return 0;
            }
            StreamAnalyzer.Options opts = StreamAnalyzer.Options.DEFAULT;
            if (extract != null) {
                opts = opts.withExtractDir(extract.resolve("ram"));
            }
            if (multifdCompression != null && multifd == null) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                        "--multifd-compression needs --multifd channel files");
            }
            AnalysisResult res;
            if (multifd == null) {
                res = StreamAnalyzer.analyze(file, opts);
            } else {
                List<Path> files = new ArrayList<>();
                files.add(file);
                files.addAll(multifd);
                res = StreamAnalyzer.analyzeCapture(files, opts.withRamDigests(ram).withMultifdCompression(multifdCompression));
            }
            if (extract != null) {
                writeExtract(res, out);
            }
            Dump what = dump != null ? dump : (ram || extract != null ? null : Dump.state);
            if (what == Dump.state) {
                out.println(PyJson.toString(res.state()));
                for (CommandInfo c : res.commands()) {
                    err.println("note: " + c.name() + " at byte offset " + c.offset());
                }
            } else if (what == Dump.desc) {
                out.println(res.vmdesc() == null ? "null" : PyJson.toString(res.vmdesc().json()));
            } else if (what == Dump.summary) {
                printSummary(res, out);
            }
            if (ram) {
                printRam(res, out);
            }
            if (res.multifd() != null) {
                printMultifd(res.multifd(), out);
                printDeviceState(io.jmigrate.analyze.DeviceStateScan.scan(multifd, res.pageSize()), out);
            }
            out.flush();
            err.flush();
            return 0;
        } catch (MigrationException e) {
            out.flush();
            err.println("jmigrate analyze: " + e.getMessage());
            err.flush();
            return 1;
        }
    }

    private void writeExtract(AnalysisResult res, PrintWriter out) {
        try {
            Files.createDirectories(extract.resolve("devices"));
            write(extract.resolve("state.json"), res.state());
            write(extract.resolve("summary.json"), res.summary());
            if (res.vmdesc() != null) {
                write(extract.resolve("desc.json"), res.vmdesc().json());
            }
            Iterator<Map.Entry<String, JsonNode>> it = res.state().properties().iterator();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                write(extract.resolve("devices").resolve(deviceFile(e.getKey())), e.getValue());
            }
        } catch (IOException e) {
            throw new MigrationException(MigrationException.Category.IO, "cannot write into " + extract + ": "
                    + e.getMessage(), e);
        }
        if (dump == null && !ram) {
            out.println("extracted into " + extract + ":");
            res.extractedRam().forEach((k, v) -> out.println("  " + extract.relativize(v) + "  (RAMBlock " + k + ")"));
            out.println("  state.json, summary.json" + (res.vmdesc() != null ? ", desc.json" : "") + ", devices/ ("
                    + res.state().size() + " files)");
        }
    }

    /** "0000:00:02.0/vga (21)" becomes "0000_00_02.0_vga_21.json". */
    static String deviceFile(String stateKey) {
        String s = stateKey.replaceAll("[^A-Za-z0-9._@+-]", "_").replaceAll("_+", "_").replaceAll("_$", "");
        if (s.startsWith(".")) {
            s = "_" + s;
        }
        return s + ".json";
    }

    private static void write(Path p, JsonNode n) throws IOException {
        Files.writeString(p, PyJson.toString(n) + "\n", StandardCharsets.UTF_8);
    }

    private static void printSummary(AnalysisResult res, PrintWriter out) {
        out.printf("file:          %s (%s)%n", res.file(), res.gzip()
                ? "gzip; " + res.length() + " bytes gunzipped, offsets count gunzipped bytes" : res.length() + " bytes");
        out.printf("machine:       %s%n", res.machine() == null ? "(no configuration section)" : res.machine());
        out.printf("page size:     %d%n", res.pageSize());
        out.printf("capabilities:  %s%n", res.capabilities().isEmpty() ? "-" : String.join(", ", res.capabilities()));
        out.printf("sections:      %d%n", res.sectionCount());
        out.printf("%10s  %-5s %5s  %-28s %8s %7s %10s%n", "offset", "type", "id", "idstr", "instance", "version", "bytes");
        for (SectionInfo s : res.sections()) {
            boolean full = s.type().hasFullHeader();
            out.printf("%10d  %-5s %5d  %-28s %8s %7s %10d%n", s.offset(), s.type(), s.sectionId(), s.idstr(),
                    full ? String.valueOf(s.instanceId()) : "", full ? String.valueOf(s.versionId()) : "",
                    s.end() - s.offset());
        }
        if (res.sections().size() < res.sectionCount()) {
            out.printf("  ... %d more sections not listed%n", res.sectionCount() - res.sections().size());
        }
        out.printf("commands:      %d%n", res.commands().size());
        for (CommandInfo c : res.commands()) {
            out.printf("%10d  %s%s%n", c.offset(), c.name(),
                    c.command().payload().length == 0 ? "" : " " + c.command());
        }
        out.printf("EOF at byte offset %d%n", res.eofOffset());
        out.println(res.vmdescOffset() < 0 ? "no vmdesc trailer" : "vmdesc trailer at byte offset " + res.vmdescOffset()
                + " (" + (res.length() - res.vmdescOffset() - 5) + " bytes of JSON)");
        out.println("RAM record flags: " + flagText(res));
    }

    private static String flagText(AnalysisResult res) {
        StringBuilder sb = new StringBuilder();
        res.summary().get("ram_record_flags").properties().forEach(e ->
                sb.append(sb.isEmpty() ? "" : ", ").append(e.getKey()).append(" x").append(e.getValue().asLong()));
        return sb.isEmpty() ? "-" : sb.toString();
    }

    private void printMultifd(MultifdSummary m, PrintWriter out) {
        out.printf("multifd: %d channel(s), every packet valid; SYNC barrier on %s%n", m.channels().size(),
                m.legacySync() ? "each RAM EOS (legacy, QEMU < 8.1)" : "RAM_SAVE_FLAG_MULTIFD_FLUSH");
        out.printf("multifd-compression: %s (%s)%n", m.compression().parameter(),
                m.detectedAt() != null ? "from the packet flags"
                        : multifdCompression != null ? "as given; no packet carried pages" : "no packet carried pages");
        out.printf("%4s  %-28s %9s %7s %13s %13s %13s %14s%n", "id", "file", "packets", "SYNCs", "device state",
                "normal pages", "zero pages", "bytes");
        for (MultifdCapture.ChannelReport c : m.channels()) {
            ChannelStats s = c.stats();
            out.printf("%4d  %-28s %9d %7d %13d %13d %13d %14d%n", s.id(), Path.of(c.file()).getFileName(), s.packets(),
                    s.syncPackets(), s.deviceStatePackets(), s.normalPages(), s.zeroPages(), s.bytes());
        }
        ChannelStats t = m.total();
        out.printf("%4s  %-28s %9d %7d %13d %13d %13d %14d%n", "all", "", t.packets(), t.syncPackets(),
                t.deviceStatePackets(), t.normalPages(), t.zeroPages(), t.bytes());
        if (!m.ramSha256().isEmpty()) {
            out.println("rebuilt RAM (main-channel pages overlaid with multifd pages):");
            m.ramSha256().forEach((k, v) -> out.printf("  %-28s sha256 %s%n", k, v));
        }
    }

    /** Per device: device-state packets, bytes, channels, and (VFIO) out-of-order degree in a lockstep replay. */
    private static void printDeviceState(List<io.jmigrate.analyze.DeviceStateScan.DeviceReport> devices, PrintWriter out) {
        if (devices.isEmpty()) {
            return;
        }
        out.println("device state over multifd (out of order: VFIO idx in a lockstep replay of the channels):");
        out.printf("%-28s %8s %9s %14s %-24s %6s %8s %7s%n", "device", "instance", "packets", "bytes", "channels",
                "late", "max-disp", "config");
        for (io.jmigrate.analyze.DeviceStateScan.DeviceReport d : devices) {
            StringBuilder ch = new StringBuilder();
            d.perChannel().forEach((k, v) -> ch.append(ch.isEmpty() ? "" : " ").append(k).append(':').append(v));
            out.printf("%-28s %8d %9d %14d %-24s %6s %8s %7s%n", d.idstr(), d.instanceId(), d.packets(), d.bytes(), ch,
                    d.lateArrivals() < 0 ? "-" : Long.toString(d.lateArrivals()),
                    d.maxDisplacement() < 0 ? "-" : Long.toString(d.maxDisplacement()),
                    d.configIdx() < 0 ? "-" : "idx " + d.configIdx());
        }
    }

    private static void printRam(AnalysisResult res, PrintWriter out) {
        if (res.multifd() != null) {
            out.println("main channel RAM records (pages sent on multifd channels are counted per channel below):");
        }
        out.printf("%-28s %12s %12s %12s %14s %14s %14s%n", "RAMBlock", "total pages", "normal pages", "zero pages",
                "total bytes", "normal bytes", "zero bytes");
        long tp = 0, np = 0, zp = 0, tb = 0;
        for (RamBlockStats b : res.ramBlocks()) {
            out.printf("%-28s %12d %12d %12d %14d %14d %14d%n", b.idstr(), b.totalPages(), b.normalPages(), b.zeroPages(),
                    b.usedLength(), b.normalBytes(), b.zeroBytes());
            tp += b.totalPages();
            np += b.normalPages();
            zp += b.zeroPages();
            tb += b.usedLength();
        }
        out.printf("%-28s %12d %12d %12d %14d %14d %14d%n", "(all)", tp, np, zp, tb, np * res.pageSize(),
                zp * res.pageSize());
    }
}
