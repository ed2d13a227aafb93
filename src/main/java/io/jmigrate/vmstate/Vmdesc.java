package io.jmigrate.vmstate;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.core.util.MinimalPrettyPrinter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileWriter;

import java.io.IOException;

/**
 * The VM description JSON that trails a stream after QEMU_VM_EOF (PROTOCOL.md §1.7), built in
 * exactly QEMU's shape and key order, and printed with QEMU's separators ({@code ": "} and
 * {@code ", "}, no newlines, non-ASCII escaped) so that our trailer reads like QEMU's to people
 * and tools (scripts/analyze-migration.py).
 *
 * <pre>
 * {"configuration": {"vmsd_name": "configuration", "version": 1, "fields": [...]},   (if sent)
 *  "page_size": 4096,
 *  "devices": [
 *    {"name": "timer", "instance_id": 0, "vmsd_name": "timer", "version": 2,
 *     "fields": [{"name": "cpu_ticks_offset", "type": "int64", "size": 8}, ...],
 *     "subsections": [{"vmsd_name": "timer/x", "version": 1, "fields": [...]}]},     (if any written)
 *    {"name": "slirp", "instance_id": 0, "size": 131,                                (old-style device)
 *     "fields": [{"name": "data", "size": 131, "type": "buffer"}]}]}
 * field: {"name", ["array_len" | "index"], "type", ["struct": {vmsd object}], "size"}
 * </pre>
 *
 * <p>Usage while saving: {@link #configuration()} or {@link #addDevice} returns the object to pass
 * to {@link VmState#save(io.jmigrate.stream.QemuFileWriter, VmStateDescription, VmStateValues,
 * ObjectNode)}, which fills in the rest. Not thread safe (the migration thread owns it).
 */
public final class Vmdesc {
    private static final JsonMapper MAPPER = JsonMapper.builder().enable(JsonWriteFeature.ESCAPE_NON_ASCII).build();
    private static final ObjectWriter QEMU_WRITER = MAPPER.writer(new QemuPrettyPrinter());

    private final long pageSize;
    private final VmdescStyle style;
    private ObjectNode configuration;
    private final ArrayNode devices = JsonNodeFactory.instance.arrayNode();

    public Vmdesc(long pageSize) {
        this(pageSize, VmdescStyle.DEFAULT);
    }

    /** A description written as QEMU release {@code style} writes it (see {@link VmdescStyle}). */
    public Vmdesc(long pageSize, VmdescStyle style) {
        if (pageSize <= 0) {
            throw new IllegalArgumentException("page size must be positive");
        }
        this.pageSize = pageSize;
        this.style = java.util.Objects.requireNonNull(style);
    }

    public VmdescStyle style() {
        return style;
    }

    /** Saves the configuration body ({@link VmState#save}) and records its description. */
    public void saveConfiguration(QemuFileWriter w, VmStateDescription vmsd, VmStateValues values) {
        VmState.save(w, vmsd, values, vmsd.versionId(), configuration(), style);
    }

    /** Saves a device section body ({@link VmState#save}) and appends its description. */
    public void saveDevice(QemuFileWriter w, String idstr, int instanceId, VmStateDescription vmsd,
                           VmStateValues values) {
        VmState.save(w, vmsd, values, vmsd.versionId(), addDevice(idstr, instanceId), style);
    }

    /** The "configuration" object (created on first call), to be filled by {@code VmState.save}. */
    public ObjectNode configuration() {
        if (configuration == null) {
            configuration = JsonNodeFactory.instance.objectNode();
        }
        return configuration;
    }

    /** Appends a VMSD device {"name", "instance_id", ...} and returns it for {@code VmState.save}. */
    public ObjectNode addDevice(String idstr, int instanceId) {
        ObjectNode d = devices.addObject();
        d.put("name", idstr);
        d.put("instance_id", instanceId);
        return d;
    }

    /** Appends an old-style (save_state, no VMSD) device: its {@code size} and one "data" buffer field. */
    public void addOldStyleDevice(String idstr, int instanceId, long size) {
        ObjectNode d = addDevice(idstr, instanceId);
        VmState.putNumber(d, "size", size);
        ObjectNode f = d.putArray("fields").addObject();
        f.put("name", "data");
        VmState.putNumber(f, "size", size);
        f.put("type", "buffer");
    }

    /** The whole description as a JSON tree, keys in QEMU's order. */
    public ObjectNode toTree() {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        if (configuration != null) {
            root.set("configuration", configuration.deepCopy());
        }
        VmState.putNumber(root, "page_size", pageSize);
        root.set("devices", devices.deepCopy());
        return root;
    }

    /** The description as QEMU prints it (the bytes of the 0x06 trailer). */
    public String toJson() {
        return toQemuJson(toTree());
    }

    /** Prints any JSON tree with QEMU's JSON writer layout. */
    public static String toQemuJson(JsonNode node) {
        try {
            return QEMU_WRITER.writeValueAsString(node);
        } catch (JsonProcessingException e) {
            throw new MigrationException(Category.INTERNAL, "cannot print vmdesc JSON: " + e.getMessage(), e);
        }
    }

    /** Parses vmdesc JSON text (e.g. a stream's trailer), failing with a clear PROTOCOL error. */
    public static JsonNode parse(String json) {
        try {
            return MAPPER.readTree(json);
        } catch (JsonProcessingException e) {
            throw new MigrationException(Category.PROTOCOL, "vmdesc is not valid JSON: " + e.getOriginalMessage(), e);
        }
    }

    /** QEMU's qobject JSON writer: {@code ": "} after keys, {@code ", "} between entries, nothing else. */
    private static final class QemuPrettyPrinter extends MinimalPrettyPrinter {
        @Override
        public void writeObjectFieldValueSeparator(JsonGenerator g) throws IOException {
            g.writeRaw(": ");
        }

        @Override
        public void writeObjectEntrySeparator(JsonGenerator g) throws IOException {
            g.writeRaw(", ");
        }

        @Override
        public void writeArrayValueSeparator(JsonGenerator g) throws IOException {
            g.writeRaw(", ");
        }
    }
}
