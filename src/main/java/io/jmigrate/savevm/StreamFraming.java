package io.jmigrate.savevm;

import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

import java.nio.charset.StandardCharsets;

/**
 * Encode and decode of the main stream's framing records: file header (§1.2), section headers
 * and footers (§1.4), commands (§1.8) and the vmdesc trailer (§1.7). Device payloads are not
 * this class's business.
 *
 * <pre>
 * file header:  be32 0x5145564d "QEVM" | be32 version 3
 * footer:       u8 0x7e | be32 section_id (same id as the header it closes)
 * vmdesc:       u8 0x06 | be32 length L | L bytes of JSON (no NUL, no footer)
 * </pre>
 */
public final class StreamFraming {
    public static final int QEMU_VM_FILE_MAGIC = 0x5145564d;
    public static final int QEMU_VM_FILE_VERSION = 3;
    /** Obsolete version 2, rejected with its own message. */
    public static final int QEMU_VM_FILE_VERSION_COMPAT = 2;

    private StreamFraming() {
    }

    // ---- file header ------------------------------------------------------------------------

    public static void writeFileHeader(QemuFileWriter w) {
        w.putBe32(QEMU_VM_FILE_MAGIC).putBe32(QEMU_VM_FILE_VERSION);
    }

    /** Reads and checks magic and version. */
    public static void readFileHeader(QemuFileReader r) {
        long at = r.position();
        int magic = r.readBe32("file magic");
        if (magic != QEMU_VM_FILE_MAGIC) {
            throw r.fail(Category.PROTOCOL, at, String.format(
                    "wrong file magic 0x%08x, expected 0x%08x (\"QEVM\"): this is not a QEMU migration stream",
                    magic, QEMU_VM_FILE_MAGIC));
        }
        at = r.position();
        int version = r.readBe32("file version");
        if (version == QEMU_VM_FILE_VERSION_COMPAT) {
            throw r.fail(Category.PROTOCOL, at, "stream version 2 is obsolete and not supported, expected 3");
        }
        if (version != QEMU_VM_FILE_VERSION) {
            throw r.fail(Category.PROTOCOL, at, "unsupported stream version " + Integer.toUnsignedString(version)
                    + ", expected 3");
        }
    }

    // ---- sections ---------------------------------------------------------------------------

    public static void writeSectionHeader(QemuFileWriter w, SectionHeader h) {
        w.putU8(h.type().wire).putBe32(h.sectionId());
        if (h.type().hasFullHeader()) {
            w.putCountedString(h.idstr()).putBe32(h.instanceId()).putBe32(h.versionId());
        }
    }

    /**
     * Reads the next section type byte. Returns null only when the caller allowed a clean end of
     * stream and the stream ended; an unknown byte is an error naming the offset.
     */
    public static SectionType readSectionType(QemuFileReader r) {
        long at = r.position();
        int b = r.readU8("section type");
        SectionType t = SectionType.fromWire(b);
        if (t == null || t == SectionType.SUBSECTION || t == SectionType.FOOTER) {
            throw r.fail(Category.PROTOCOL, at, String.format(
                    "unknown section type 0x%02x, expected one of EOF 0x00, START 0x01, PART 0x02, END 0x03, "
                            + "FULL 0x04, VMDESCRIPTION 0x06, CONFIGURATION 0x07, COMMAND 0x08", b));
        }
        return t;
    }

    /** Reads the rest of a device section header after its type byte (read at {@code typeOffset}). */
    public static SectionHeader readSectionHeader(QemuFileReader r, SectionType type, long typeOffset) {
        int id = r.readBe32("section id");
        if (!type.hasFullHeader()) {
            return new SectionHeader(type, id, null, 0, 0, typeOffset);
        }
        long at = r.position();
        int len = r.readU8("idstr length");
        if (len == 0) {
            throw r.fail(Category.PROTOCOL, at, "empty idstr in " + type + " section " + id);
        }
        String idstr = new String(r.readBytes(len, "idstr"), StandardCharsets.ISO_8859_1);
        int instance = r.readBe32("instance id");
        int version = r.readBe32("version id");
        return new SectionHeader(type, id, idstr, instance, version, typeOffset);
    }

    public static void writeFooter(QemuFileWriter w, int sectionId) {
        w.putU8(SectionType.FOOTER.wire).putBe32(sectionId);
    }

    /** Reads and checks the footer of section {@code sectionId} ({@code what} names the section). */
    public static void readFooter(QemuFileReader r, int sectionId, String what) {
        long at = r.position();
        int b = r.readU8("section footer");
        if (b != SectionType.FOOTER.wire) {
            throw r.fail(Category.PROTOCOL, at, String.format(
                    "missing section footer for %s: expected byte 0x7e, got 0x%02x", what, b));
        }
        int id = r.readBe32("section footer id");
        if (id != sectionId) {
            throw r.fail(Category.PROTOCOL, at, "section footer id mismatch for " + what + ": expected "
                    + sectionId + ", got " + Integer.toUnsignedString(id));
        }
    }

    // ---- commands ---------------------------------------------------------------------------

    public static void writeCommand(QemuFileWriter w, Command c) {
        byte[] p = c.payload();
        w.putU8(SectionType.COMMAND.wire).putBe16(c.command().wire).putBe16(p.length).putBytes(p);
    }

    /** Reads a command after its 0x08 byte; rejects unknown numbers and wrong lengths. */
    public static Command readCommand(QemuFileReader r) {
        long at = r.position();
        int n = r.readBe16("command number");
        int len = r.readBe16("command length");
        MigCommand c = MigCommand.fromWire(n);
        if (c == null) {
            throw r.fail(Category.PROTOCOL, at, "unknown QEMU_VM_COMMAND " + n + ", expected 1.."
                    + (MigCommand.MAX - 1));
        }
        if (!c.lengthOk(len)) {
            throw r.fail(Category.PROTOCOL, at + 2, c.qemuName() + " has length " + len + ", expected "
                    + (c == MigCommand.POSTCOPY_ADVISE ? "0 or 16" : String.valueOf(c.length)));
        }
        r.checkLength(len, r.limits().maxCommandLen(), c.qemuName() + " payload");
        return new Command(c, r.readBytes(len, c.qemuName() + " payload"));
    }

    // ---- vmdesc -----------------------------------------------------------------------------

    public static void writeVmdesc(QemuFileWriter w, String json) {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        w.putU8(SectionType.VMDESCRIPTION.wire).putBe32(b.length).putBytes(b);
    }

    /** Reads the vmdesc JSON text after its 0x06 byte, bounded by the configured maximum. */
    public static String readVmdesc(QemuFileReader r) {
        long len = r.readBe32Unsigned("vmdesc length");
        r.checkLength(len, r.limits().maxVmdesc(), "vmdesc JSON");
        return new String(r.readBytes(len, "vmdesc JSON"), StandardCharsets.UTF_8);
    }
}
