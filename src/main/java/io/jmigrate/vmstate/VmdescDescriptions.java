package io.jmigrate.vmstate;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.ArrayList;
import java.util.List;

/**
 * Rebuilds a {@link VmStateDescription} from a vmdesc JSON object ({@code vmsd_name},
 * {@code version}, {@code fields}, {@code subsections}), so that a stream's sections can be read
 * with the stream's own self-description (as scripts/analyze-migration.py does) through
 * {@link VmState#load}.
 *
 * <p>The vmdesc only lists what the source wrote, so the result describes exactly that stream:
 * its subsections are those the source sent, its uncompressed arrays (one JSON object per
 * element, with or without "index") become arrays with an always-true exists-test so that
 * {@link VmState#save} describes them the same way again. Types: the integer types, "bool",
 * "buffer", "unused_buffer", "struct", and QEMU's special infos with a plain layout ("int32 le",
 * "int32 equal", "uint8 equal", "uint16 equal", "timer", "pci config", "pci irq state"). Others
 * (e.g. "tmp", "nullptr") are rejected with an error naming them.
 */
public final class VmdescDescriptions {
    private VmdescDescriptions() {
    }

    /** The description of a vmdesc device or struct object. */
    public static VmStateDescription fromVmdesc(JsonNode o) {
        String name = text(o, "vmsd_name", "vmdesc object");
        int version = o.path("version").asInt(-1);
        if (version < 0) {
            throw bad("vmsd '" + name + "' has no valid \"version\"");
        }
        VmStateDescription.Builder b = VmStateDescription.builder(name, version);
        List<JsonNode> fields = new ArrayList<>();
        o.path("fields").forEach(fields::add);
        for (int i = 0; i < fields.size(); i++) {
            JsonNode f = fields.get(i);
            String fname = text(f, "name", "field of vmsd '" + name + "'");
            FieldKind.Element kind = kind(name, f);
            if (f.has("array_len")) {
                b.field(new VmStateField(fname, new FieldKind.Array(kind, f.get("array_len").asInt())));
            } else if (i + 1 < fields.size() && fields.get(i + 1).path("name").asText().equals(fname)) {
                int n = 1;
                while (i + n < fields.size() && fields.get(i + n).path("name").asText().equals(fname)) {
                    n++;
                }
                i += n - 1;
                b.field(new VmStateField(fname, new FieldKind.Array(kind, n)).when((v, ver) -> true));
            } else {
                b.field(new VmStateField(fname, kind));
            }
        }
        for (JsonNode s : o.path("subsections")) {
            b.subsection(fromVmdesc(s));
        }
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw bad("vmsd '" + name + "': " + e.getMessage());
        }
    }

    private static FieldKind.Element kind(String vmsd, JsonNode f) {
        String type = text(f, "type", "field '" + f.path("name").asText() + "' of vmsd '" + vmsd + "'");
        int size = f.path("size").asInt(-1);
        return switch (type) {
            case "int8" -> FieldKind.INT8;
            case "int16" -> FieldKind.INT16;
            case "int32" -> FieldKind.INT32;
            case "int64" -> FieldKind.INT64;
            case "uint8" -> FieldKind.UINT8;
            case "uint16" -> FieldKind.UINT16;
            case "uint32" -> FieldKind.UINT32;
            case "uint64" -> FieldKind.UINT64;
            case "bool" -> FieldKind.BOOL;
            case "int32 le", "int32 equal" -> FieldKind.INT32.named(type);
            case "uint8 equal" -> FieldKind.UINT8.named(type);
            case "uint16 equal" -> FieldKind.UINT16.named(type);
            case "timer" -> FieldKind.INT64.named(type);
            case "buffer", "pci config", "pci irq state" -> {
                if (size < 0) {
                    throw bad("field '" + f.path("name").asText() + "' of vmsd '" + vmsd + "' has no size");
                }
                yield new FieldKind.Buffer(size, type);
            }
            case "unused_buffer" -> {
                if (size <= 0) {
                    throw bad("field '" + f.path("name").asText() + "' of vmsd '" + vmsd + "' has no size");
                }
                yield new FieldKind.Unused(size);
            }
            case "struct" -> new FieldKind.Struct(fromVmdesc(f.path("struct")));
            default -> throw bad("field '" + f.path("name").asText() + "' of vmsd '" + vmsd + "' has type '" + type
                    + "', which cannot be decoded from the vmdesc alone");
        };
    }

    private static String text(JsonNode o, String key, String where) {
        JsonNode v = o.get(key);
        if (v == null || !v.isTextual() || v.asText().isEmpty()) {
            throw bad(where + " has no \"" + key + "\"");
        }
        return v.asText();
    }

    private static MigrationException bad(String what) {
        return new MigrationException(Category.PROTOCOL, "vmdesc: " + what);
    }
}
