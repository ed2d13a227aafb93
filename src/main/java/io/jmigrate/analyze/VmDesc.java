package io.jmigrate.analyze;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The VM description JSON trailer (PROTOCOL.md §1.7), parsed into typed field descriptions that
 * drive {@link VmStateDecoder}.
 *
 * <pre>
 * { "configuration": {vmsd},            optional (send-configuration)
 *   "page_size": 4096,
 *   "devices": [ { "name": idstr, "instance_id": n,
 *                  "vmsd_name": .., "version": .., "fields": [field..], "subsections": [vmsd..] }
 *              | { "name": idstr, "instance_id": n, "size": n,
 *                  "fields": [ {"name": "data", "type": "buffer", "size": n} ] } ] }   (old-style save_state)
 * field = { "name": .., ["array_len": n | "index": n], "type": .., ["struct": {vmsd}], "size": n }
 * </pre>
 *
 * Every structural problem is reported with its JSON path (e.g. {@code devices[3].fields[2]}) and,
 * for text that is not JSON, the byte offset of the trailer in the stream.
 *
 * @param json          the parsed JSON tree exactly as in the stream (for {@code -d desc})
 * @param pageSize      target page size ({@code page_size})
 * @param configuration the configuration VMSD, or null if the stream has none in its description
 * @param devices       device descriptions keyed by (idstr, instance_id), in JSON order
 */
public record VmDesc(ObjectNode json, int pageSize, VmsdStruct configuration, Map<DeviceKey, VmsdStruct> devices) {

    /** Largest {@code array_len} accepted (an element count, bounded again by the stream length). */
    public static final int MAX_ARRAY_LEN = 1 << 24;
    /** Deepest struct nesting accepted. */
    public static final int MAX_DEPTH = 64;

    public VmDesc {
        devices = Collections.unmodifiableMap(new LinkedHashMap<>(devices));
    }

    /** A section's identity: idstr and instance id. */
    public record DeviceKey(String idstr, long instanceId) {
        @Override
        public String toString() {
            return "'" + idstr + "' instance " + instanceId;
        }
    }

    /**
     * One VMSD (a device, a struct type or a subsection).
     *
     * @param vmsdName    {@code vmsd_name}, or "" for an old-style device
     * @param version     {@code version}, or -1 if absent
     * @param fields      fields in wire order; {@code repeat} unfolds {@code array_len}
     * @param subsections subsections in wire order (each is present on the wire, in this order)
     */
    public record VmsdStruct(String vmsdName, long version, List<Entry> fields, List<VmsdStruct> subsections) {
        public VmsdStruct {
            fields = List.copyOf(fields);
            subsections = List.copyOf(subsections);
        }
    }

    /** A field and how many consecutive copies of it the wire holds ({@code array_len}, else 1). */
    public record Entry(Field field, int repeat) {
        public Entry {
            if (repeat < 1) {
                throw new IllegalArgumentException("repeat must be >= 1");
            }
        }
    }

    /** A field description; the type decides how the bytes are read and shown. */
    public sealed interface Field permits IntField, BoolField, BytesField, NullPtrField, CapabilityField, StructField {
        String name();

        String type();
    }

    /**
     * A big-endian integer of 1..8 bytes. {@code signed} follows analyze-migration.py's table
     * (e.g. "uint8 equal" is shown signed there). Note "int32 le" means "int32, must be less or
     * equal" (a load-time check), not little-endian: it is big-endian on the wire like all
     * VMState integers.
     */
    public record IntField(String name, String type, int size, boolean signed) implements Field {
    }

    /** {@code bool}: {@code size} bytes, true unless the first is 0. */
    public record BoolField(String name, String type, int size) implements Field {
    }

    /**
     * Opaque bytes shown as hex: buffer, unused_buffer, timer, float64, bitmap, and every type the
     * analyzer has no reader for (pci config, tmp, ...).
     */
    public record BytesField(String name, String type, int size) implements Field {
    }

    /** {@code nullptr}: a NULL pointer marker, the byte '0' (0x30). */
    public record NullPtrField(String name, String type, int size) implements Field {
    }

    /** {@code capability} (configuration only): u8 length + name. */
    public record CapabilityField(String name, String type) implements Field {
    }

    /** {@code struct}: a nested VMSD. */
    public record StructField(String name, String type, VmsdStruct struct) implements Field {
    }

    /**
     * Parses the vmdesc JSON text.
     *
     * @param text         the JSON
     * @param streamOffset byte offset of the JSON text in the stream (for messages)
     */
    public static VmDesc parse(String text, long streamOffset) {
        JsonNode root;
        try {
            root = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS).readTree(text);
        } catch (JsonProcessingException e) {
            long charOffset = e.getLocation() == null ? -1 : e.getLocation().getCharOffset();
            String where = charOffset < 0 ? "" : " at character " + charOffset + " of the JSON (stream byte offset about "
                    + (streamOffset + charOffset) + ")";
            throw new MigrationException(Category.PROTOCOL, "malformed vmdesc JSON trailer starting at byte offset "
                    + streamOffset + where + ": " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw bad(streamOffset, "", "the vmdesc must be a JSON object, got " + (root == null ? "nothing" : root.getNodeType()));
        }
        ObjectNode obj = (ObjectNode) root;
        JsonNode ps = obj.get("page_size");
        if (ps == null || !ps.canConvertToInt() || Integer.bitCount(ps.asInt()) != 1 || ps.asInt() < 1024) {
            throw bad(streamOffset, "page_size", "expected a power of two >= 1024, got " + ps);
        }
        VmsdStruct config = null;
        JsonNode c = obj.get("configuration");
        if (c != null) {
            config = struct(c, "configuration", streamOffset, 0);
        }
        JsonNode devs = obj.get("devices");
        if (devs == null || !devs.isArray()) {
            throw bad(streamOffset, "devices", "expected an array of device descriptions");
        }
        Map<DeviceKey, VmsdStruct> devices = new LinkedHashMap<>();
        for (int i = 0; i < devs.size(); i++) {
            JsonNode d = devs.get(i);
            String path = "devices[" + i + "]";
            if (!d.isObject()) {
                throw bad(streamOffset, path, "expected an object");
            }
            String name = text(d, "name", path, streamOffset);
            JsonNode inst = d.get("instance_id");
            if (inst == null || !inst.canConvertToLong()) {
                throw bad(streamOffset, path + ".instance_id", "expected an integer, got " + inst);
            }
            if (!d.has("fields")) {
                throw bad(streamOffset, path, "device '" + name + "' has no \"fields\"");
            }
            devices.put(new DeviceKey(name, inst.asLong()), struct(d, path, streamOffset, 0));
        }
        return new VmDesc(obj, ps.asInt(), config, devices);
    }

    private static VmsdStruct struct(JsonNode n, String path, long at, int depth) {
        if (depth > MAX_DEPTH) {
            throw bad(at, path, "structs nested deeper than " + MAX_DEPTH);
        }
        if (!n.isObject()) {
            throw bad(at, path, "expected an object");
        }
        JsonNode fs = n.get("fields");
        if (fs == null || !fs.isArray()) {
            throw bad(at, path + ".fields", "expected an array of fields");
        }
        List<Entry> fields = new ArrayList<>(fs.size());
        for (int i = 0; i < fs.size(); i++) {
            String fp = path + ".fields[" + i + "]";
            JsonNode f = fs.get(i);
            if (!f.isObject()) {
                throw bad(at, fp, "expected an object");
            }
            int repeat = 1;
            JsonNode al = f.get("array_len");
            if (al != null) {
                if (!al.canConvertToInt() || al.asInt() < 1 || al.asInt() > MAX_ARRAY_LEN) {
                    throw bad(at, fp + ".array_len", "expected 1.." + MAX_ARRAY_LEN + ", got " + al);
                }
                repeat = al.asInt();
            }
            fields.add(new Entry(field(f, fp, at, depth), repeat));
        }
        List<VmsdStruct> subs = new ArrayList<>();
        JsonNode ss = n.get("subsections");
        if (ss != null) {
            if (!ss.isArray()) {
                throw bad(at, path + ".subsections", "expected an array");
            }
            for (int i = 0; i < ss.size(); i++) {
                VmsdStruct s = struct(ss.get(i), path + ".subsections[" + i + "]", at, depth + 1);
                if (s.vmsdName().isEmpty()) {
                    throw bad(at, path + ".subsections[" + i + "]", "subsection without vmsd_name");
                }
                subs.add(s);
            }
        }
        String vmsdName = n.hasNonNull("vmsd_name") ? n.get("vmsd_name").asText() : "";
        long version = n.has("version") && n.get("version").canConvertToLong() ? n.get("version").asLong() : -1;
        return new VmsdStruct(vmsdName, version, fields, subs);
    }

    private static Field field(JsonNode f, String path, long at, int depth) {
        String name = text(f, "name", path, at);
        String type = text(f, "type", path, at);
        return switch (type) {
            case "struct" -> {
                JsonNode s = f.get("struct");
                if (s == null) {
                    throw bad(at, path, "struct field '" + name + "' has no \"struct\" description");
                }
                yield new StructField(name, type, struct(s, path + ".struct", at, depth + 1));
            }
            case "capability" -> new CapabilityField(name, type);
            case "int8", "int16", "int32", "int64", "int32 equal", "int32 le", "int64 equal", "uint8 equal",
                 "uint16 equal" -> new IntField(name, type, intSize(f, path, at, name, type), true);
            case "uint8", "uint16", "uint32", "uint64", "uint32 equal" ->
                    new IntField(name, type, intSize(f, path, at, name, type), false);
            case "bool" -> {
                int size = size(f, path, at, name);
                if (size < 1) {
                    throw bad(at, path + ".size", "bool field '" + name + "' has size 0, expected at least 1");
                }
                yield new BoolField(name, type, size);
            }
            case "nullptr" -> new NullPtrField(name, type, size(f, path, at, name));
            default -> new BytesField(name, type, size(f, path, at, name));
        };
    }

    private static int intSize(JsonNode f, String path, long at, String name, String type) {
        int size = size(f, path, at, name);
        if (size < 1 || size > 8) {
            throw bad(at, path + ".size", type + " field '" + name + "' has size " + size + ", expected 1..8");
        }
        return size;
    }

    private static int size(JsonNode f, String path, long at, String name) {
        JsonNode s = f.get("size");
        if (s == null || !s.canConvertToInt() || s.asInt() < 0) {
            throw bad(at, path + ".size", "field '" + name + "' needs a non-negative integer \"size\", got " + s);
        }
        return s.asInt();
    }

    private static String text(JsonNode n, String key, String path, long at) {
        JsonNode v = n.get(key);
        if (v == null || !v.isTextual()) {
            throw bad(at, path + "." + key, "expected a string, got " + v);
        }
        return v.asText();
    }

    private static MigrationException bad(long at, String path, String what) {
        return new MigrationException(Category.PROTOCOL, "invalid vmdesc JSON trailer (at byte offset " + at + ")"
                + (path.isEmpty() ? "" : ", " + path) + ": " + what);
    }
}
