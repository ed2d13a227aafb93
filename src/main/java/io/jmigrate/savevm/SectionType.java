package io.jmigrate.savevm;

/**
 * Section type bytes of the main migration stream (PROTOCOL.md §1.3).
 *
 * <pre>
 *  0x00 EOF            ends the device stream
 *  0x01 SECTION_START  full header + data + footer   (iterative device, first section)
 *  0x02 SECTION_PART   short header + data + footer  (iterative device, one pass)
 *  0x03 SECTION_END    short header + data + footer  (iterative device, completion)
 *  0x04 SECTION_FULL   full header + data + footer   (non-iterative device)
 *  0x05 SUBSECTION     only inside VMState data
 *  0x06 VMDESCRIPTION  be32 length + JSON, after EOF
 *  0x07 CONFIGURATION  configuration VMState, right after the file header
 *  0x08 COMMAND        be16 cmd, be16 len, payload
 *  0x7e SECTION_FOOTER be32 section_id
 * </pre>
 */
public enum SectionType {
    EOF(0x00),
    START(0x01),
    PART(0x02),
    END(0x03),
    FULL(0x04),
    SUBSECTION(0x05),
    VMDESCRIPTION(0x06),
    CONFIGURATION(0x07),
    COMMAND(0x08),
    FOOTER(0x7e);

    private static final SectionType[] BY_BYTE = new SectionType[256];

    static {
        for (SectionType t : values()) {
            BY_BYTE[t.wire] = t;
        }
    }

    public final int wire;

    SectionType(int wire) {
        this.wire = wire;
    }

    /** The type for a wire byte, or null if the byte is no section type. */
    public static SectionType fromWire(int b) {
        return b >= 0 && b < 256 ? BY_BYTE[b] : null;
    }

    /** START and FULL carry the full header (id, idstr, instance, version). */
    public boolean hasFullHeader() {
        return this == START || this == FULL;
    }

    /** START, PART, END and FULL are device sections followed by a footer. */
    public boolean isDeviceSection() {
        return this == START || this == PART || this == END || this == FULL;
    }
}
