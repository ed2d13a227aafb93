package io.jmigrate.savevm;

/**
 * The header of a device section (PROTOCOL.md §1.4).
 *
 * <pre>
 * START / FULL:                          PART / END:
 *  u8   type (0x01 | 0x04)                u8   type (0x02 | 0x03)
 *  be32 section_id                        be32 section_id
 *  u8   idstr length N (1..255)
 *  N    idstr, no NUL
 *  be32 instance_id
 *  be32 version_id
 * </pre>
 *
 * For PART and END, {@code idstr} is null and {@code instanceId}/{@code versionId} are 0.
 *
 * @param offset byte offset of the type byte in the stream (-1 when built for writing)
 */
public record SectionHeader(SectionType type, int sectionId, String idstr, int instanceId, int versionId,
                            long offset) {
    public SectionHeader {
        if (!type.isDeviceSection()) {
            throw new IllegalArgumentException("not a device section type: " + type);
        }
        if (type.hasFullHeader()) {
            if (idstr == null || idstr.isEmpty() || idstr.length() > 255) {
                throw new IllegalArgumentException("idstr must be 1..255 bytes: " + idstr);
            }
        } else if (idstr != null) {
            throw new IllegalArgumentException(type + " headers carry no idstr");
        }
    }

    public static SectionHeader full(SectionType type, int sectionId, String idstr, int instanceId, int versionId) {
        return new SectionHeader(type, sectionId, idstr, instanceId, versionId, -1);
    }

    public static SectionHeader partEnd(SectionType type, int sectionId) {
        return new SectionHeader(type, sectionId, null, 0, 0, -1);
    }
}
