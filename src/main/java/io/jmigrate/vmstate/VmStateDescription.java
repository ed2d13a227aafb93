package io.jmigrate.vmstate;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * QEMU's {@code VMStateDescription}: the declarative layout of one device's (or one nested
 * struct's) state, interpreted by {@link VmState} for save and load and self-described in the
 * vmdesc JSON ({@link Vmdesc}).
 *
 * <p>Wire form of a description at version {@code v} (the version itself travels in the section
 * header, or after a subsection's name):
 * <pre>
 * +---------------------------------------------+
 * | fields present at v, in declaration order    |  see {@link FieldKind}
 * +---------------------------------------------+
 * | for each needed subsection:                  |
 * |   u8 0x05 | u8 N | N bytes name | be32 ver   |  PROTOCOL.md §1.6
 * |   the subsection's fields and subsections    |
 * +---------------------------------------------+
 * </pre>
 *
 * @param name             vmsd name ("timer", "configuration", "fw_cfg/dma")
 * @param versionId        the version this side writes and the newest it reads
 * @param minimumVersionId the oldest version it reads
 * @param fields           fields in wire order
 * @param subsections      optional subsections in the order they are written
 */
public record VmStateDescription(String name, int versionId, int minimumVersionId, List<VmStateField> fields,
                                 List<VmStateSubsection> subsections) {

    public VmStateDescription {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("description name must not be empty");
        }
        if (name.getBytes(StandardCharsets.ISO_8859_1).length > 255) {
            throw new IllegalArgumentException("description name longer than 255 bytes: " + name);
        }
        if (minimumVersionId < 0 || minimumVersionId > versionId) {
            throw new IllegalArgumentException("description " + name + ": minimum version " + minimumVersionId
                    + " must be between 0 and the version " + versionId);
        }
        fields = List.copyOf(fields);
        subsections = List.copyOf(subsections);
        Set<String> intFields = new HashSet<>();
        for (VmStateField f : fields) {
            if (f.exists() == null && f.versionId() > versionId) {
                throw new IllegalArgumentException("description " + name + ": field " + f.name() + " has version "
                        + f.versionId() + ", newer than the description's " + versionId);
            }
            String ref = switch (f.kind()) {
                case FieldKind.VBuffer vb -> vb.lengthField();
                case FieldKind.VArray va -> va.countField();
                case FieldKind.Int i -> null;
                case FieldKind.Bool b -> null;
                case FieldKind.Buffer b -> null;
                case FieldKind.Unused u -> null;
                case FieldKind.CountedString s -> null;
                case FieldKind.Array a -> null;
                case FieldKind.Struct s -> null;
            };
            if (ref != null && !intFields.contains(ref)) {
                throw new IllegalArgumentException("description " + name + ": field " + f.name()
                        + " takes its length from '" + ref + "', which is not an earlier integer field");
            }
            if (f.kind() instanceof FieldKind.Int) {
                intFields.add(f.name());
            }
        }
        Set<String> subNames = new HashSet<>();
        for (VmStateSubsection s : subsections) {
            if (!s.name().startsWith(name) || s.name().length() <= name.length()) {
                throw new IllegalArgumentException("subsection " + s.name() + " of " + name
                        + " must be named with its parent's name as prefix (\"" + name + "/...\")");
            }
            if (!subNames.add(s.name())) {
                throw new IllegalArgumentException("description " + name + ": duplicate subsection " + s.name());
            }
        }
    }

    /** The subsection named {@code n}, or null. */
    public VmStateSubsection subsection(String n) {
        for (VmStateSubsection s : subsections) {
            if (s.name().equals(n)) {
                return s;
            }
        }
        return null;
    }

    public static Builder builder(String name, int versionId) {
        return new Builder(name, versionId);
    }

    /** Fluent construction; minimum version defaults to the version. */
    public static final class Builder {
        private final String name;
        private final int versionId;
        private int minimumVersionId;
        private final List<VmStateField> fields = new ArrayList<>();
        private final List<VmStateSubsection> subsections = new ArrayList<>();

        private Builder(String name, int versionId) {
            this.name = name;
            this.versionId = versionId;
            this.minimumVersionId = versionId;
        }

        public Builder minimumVersion(int v) {
            this.minimumVersionId = v;
            return this;
        }

        public Builder field(VmStateField f) {
            fields.add(f);
            return this;
        }

        public Builder subsection(VmStateSubsection s) {
            subsections.add(s);
            return this;
        }

        /** A subsection needed when the parent's values carry values for it. */
        public Builder subsection(VmStateDescription vmsd) {
            return subsection(VmStateSubsection.whenPresent(vmsd));
        }

        public VmStateDescription build() {
            return new VmStateDescription(name, versionId, minimumVersionId, fields, subsections);
        }
    }
}
