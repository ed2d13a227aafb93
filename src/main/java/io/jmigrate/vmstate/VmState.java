package io.jmigrate.vmstate;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * The VMState interpreter: writes and reads a {@link VmStateDescription}'s fields and
 * subsections (QEMU's {@code vmstate_save_state} / {@code vmstate_load_state}), and while saving
 * builds the description's vmdesc JSON object exactly as QEMU does (PROTOCOL.md §1.6, §1.7).
 *
 * <p>Rules, as QEMU applies them:
 * <ul>
 * <li>A field is on the wire when its exists-test holds, or without a test when its version is
 *     at most the stream version ({@link VmStateField#present}).</li>
 * <li>Load rejects a stream version newer than the description's version or older than its
 *     minimum version.</li>
 * <li>Nested structs are written at their own description's version; that version is not on the
 *     wire.</li>
 * <li>After the fields, each needed subsection is written as
 *     {@code 0x05 | u8 len | name | be32 version | body}. On load, subsections are consumed while
 *     the next byte is 0x05 and the peeked name starts with the parent's name (and is longer);
 *     such a name that the description does not know is an error naming it.</li>
 * </ul>
 *
 * <p>Errors name the description, the field and the byte offset. Lengths and counts taken from
 * the stream are checked against the description's maximum and the stream's {@code StreamLimits}
 * before anything is allocated.
 */
public final class VmState {
    /** QEMU_VM_SUBSECTION. */
    public static final int SUBSECTION = 0x05;

    private static final byte[] ZEROS = new byte[4096];

    private VmState() {
    }

    // ---- save -------------------------------------------------------------------------------

    /** Writes {@code values} at the description's own version. */
    public static void save(QemuFileWriter w, VmStateDescription vmsd, VmStateValues values) {
        save(w, vmsd, values, vmsd.versionId(), null);
    }

    /**
     * Writes {@code values} at the description's version and fills {@code vmdesc} (when not null)
     * with {@code vmsd_name}, {@code version}, {@code fields} and, if any subsection was written,
     * {@code subsections}: the object QEMU writes for this description.
     */
    public static void save(QemuFileWriter w, VmStateDescription vmsd, VmStateValues values, ObjectNode vmdesc) {
        save(w, vmsd, values, vmsd.versionId(), vmdesc);
    }

    /**
     * Writes {@code values} at stream version {@code version} (between the minimum version and the
     * version of the description): fields newer than {@code version} are left out.
     */
    public static void save(QemuFileWriter w, VmStateDescription vmsd, VmStateValues values, int version,
                            ObjectNode vmdesc) {
        save(w, vmsd, values, version, vmdesc, VmdescStyle.DEFAULT);
    }

    /** As {@link #save(QemuFileWriter, VmStateDescription, VmStateValues, int, ObjectNode)}, describing
     *  uncompressed arrays in the vmdesc as the given QEMU release does. */
    public static void save(QemuFileWriter w, VmStateDescription vmsd, VmStateValues values, int version,
                            ObjectNode vmdesc, VmdescStyle style) {
        if (version > vmsd.versionId() || version < vmsd.minimumVersionId()) {
            throw new MigrationException(Category.INTERNAL, "cannot save vmsd '" + vmsd.name() + "' at version "
                    + version + ": it supports " + vmsd.minimumVersionId() + ".." + vmsd.versionId());
        }
        saveState(w, vmsd, values, version, vmdesc, vmsd.name(), style);
    }

    private static void saveState(QemuFileWriter w, VmStateDescription vmsd, VmStateValues values, int version,
                                  ObjectNode desc, String ctx, VmdescStyle style) {
        ArrayNode descFields = null;
        if (desc != null) {
            desc.put("vmsd_name", vmsd.name());
            desc.put("version", version);
            descFields = desc.putArray("fields");
        }
        for (VmStateField f : vmsd.fields()) {
            if (!f.present(values, version)) {
                continue;
            }
            String descName = descFields == null ? null : vmdescName(vmsd, f);
            switch (f.kind()) {
                case FieldKind.Array a -> saveArray(w, f, a.element(), a.count(), values, descFields, descName, ctx, style);
                case FieldKind.VArray va -> {
                    long n = requireLong(values, va.countField(), ctx);
                    saveArray(w, f, va.element(), n, values, descFields, descName, ctx, style);
                }
                case FieldKind.VBuffer vb -> {
                    byte[] b = require(values, f.name(), byte[].class, ctx);
                    long len = requireLong(values, vb.lengthField(), ctx);
                    if (len != b.length) {
                        throw internal(ctx, f.name(), "buffer holds " + b.length + " bytes but its length field '"
                                + vb.lengthField() + "' says " + len);
                    }
                    long start = w.position();
                    ObjectNode fd = startDescField(descFields, descName, -1, -1, "buffer");
                    w.putBytes(b);
                    endDescField(fd, w.position() - start);
                }
                case FieldKind.Element e -> {
                    long start = w.position();
                    ObjectNode fd = startDescField(descFields, descName, -1, -1, e.type());
                    saveElement(w, f, e, e instanceof FieldKind.Unused ? null : values.get(f.name()), fd, ctx, style);
                    endDescField(fd, w.position() - start);
                }
            }
        }
        ArrayNode descSubs = null;
        for (VmStateSubsection s : vmsd.subsections()) {
            if (!s.needed().test(values)) {
                continue;
            }
            VmStateValues sv = values.subsection(s.name());
            if (sv == null) {
                sv = new VmStateValues();
            }
            ObjectNode sd = null;
            if (desc != null) {
                if (descSubs == null) {
                    descSubs = desc.putArray("subsections");
                }
                sd = descSubs.addObject();
            }
            w.putU8(SUBSECTION).putCountedString(s.name()).putBe32(s.vmsd().versionId());
            saveState(w, s.vmsd(), sv, s.vmsd().versionId(), sd, s.name(), style);
        }
    }

    private static void saveArray(QemuFileWriter w, VmStateField f, FieldKind.Element element, long n,
                                  VmStateValues values, ArrayNode descFields, String descName, String ctx,
                                  VmdescStyle style) {
        List<?> list = require(values, f.name(), List.class, ctx);
        if (list.size() != n) {
            throw internal(ctx, f.name(), "array holds " + list.size() + " elements, expected " + n);
        }
        boolean compress = canCompress(f);
        for (int i = 0; i < n; i++) {
            // A compressed array is described once with array_len = n; an uncompressed one has
            // one object per element, with "index" on the elements the style says.
            ObjectNode fd = null;
            if (descFields != null && (i == 0 || !compress)) {
                fd = startDescField(descFields, descName, compress && n > 1 ? (int) n : -1,
                        !compress && style.indexed(i, n) ? i : -1, element.type());
            }
            long start = w.position();
            saveElement(w, f, element, list.get(i), fd, ctx, style);
            endDescField(fd, w.position() - start);
        }
    }

    private static void saveElement(QemuFileWriter w, VmStateField f, FieldKind.Element kind, Object value,
                                    ObjectNode fd, String ctx, VmdescStyle style) {
        switch (kind) {
            case FieldKind.Int i -> {
                if (!(value instanceof Long)) {
                    throw failType(ctx, f.name(), value, "Long");
                }
                long v = (Long) value;
                if (i.size() < 8 && (v < i.min() || v > i.max())) {
                    throw internal(ctx, f.name(), "value " + v + " does not fit " + i.type() + " (" + i.min() + ".."
                            + i.max() + ")");
                }
                if (i.littleEndian()) {
                    v = switch (i.size()) {
                        case 2 -> Short.reverseBytes((short) v);
                        case 4 -> Integer.reverseBytes((int) v);
                        case 8 -> Long.reverseBytes(v);
                        default -> v;
                    };
                }
                switch (i.size()) {
                    case 1 -> w.putU8((int) v);
                    case 2 -> w.putBe16((int) v);
                    case 4 -> w.putBe32((int) v);
                    default -> w.putBe64(v);
                }
            }
            case FieldKind.Bool b -> {
                if (!(value instanceof Boolean x)) {
                    throw failType(ctx, f.name(), value, "Boolean");
                }
                w.putU8(x ? 1 : 0);
            }
            case FieldKind.Buffer b -> {
                if (!(value instanceof byte[] x)) {
                    throw failType(ctx, f.name(), value, "byte[]");
                }
                if (x.length != b.size()) {
                    throw internal(ctx, f.name(), "buffer holds " + x.length + " bytes, expected exactly " + b.size());
                }
                w.putBytes(x);
            }
            case FieldKind.Unused u -> {
                for (int left = u.size(); left > 0; left -= ZEROS.length) {
                    w.putBytes(ZEROS, 0, Math.min(left, ZEROS.length));
                }
            }
            case FieldKind.CountedString s -> {
                if (!(value instanceof String x)) {
                    throw failType(ctx, f.name(), value, "String");
                }
                if (x.getBytes(StandardCharsets.ISO_8859_1).length > 255) {
                    throw internal(ctx, f.name(), "counted string longer than 255 bytes");
                }
                w.putCountedString(x);
            }
            case FieldKind.Struct s -> {
                if (!(value instanceof VmStateValues x)) {
                    throw failType(ctx, f.name(), value, "VmStateValues");
                }
                ObjectNode sd = fd == null ? null : fd.putObject("struct");
                saveState(w, s.vmsd(), x, s.vmsd().versionId(), sd, ctx + " > " + f.name(), style);
            }
        }
    }

    // ---- vmdesc helpers -----------------------------------------------------------------------

    /** Starts a vmdesc field object: {@code name}, then {@code array_len} or {@code index} (when >= 0), then {@code type}. */
    private static ObjectNode startDescField(ArrayNode fields, String name, int arrayLen, int index, String type) {
        if (fields == null) {
            return null;
        }
        ObjectNode fd = fields.addObject();
        fd.put("name", name);
        if (arrayLen >= 0) {
            fd.put("array_len", arrayLen);
        } else if (index >= 0) {
            fd.put("index", index);
        }
        fd.put("type", type);
        return fd;
    }

    private static void endDescField(ObjectNode fd, long size) {
        if (fd != null) {
            putNumber(fd, "size", size);
        }
    }

    /** Puts an int node when the value fits (so trees compare equal to parsed QEMU JSON), else a long. */
    static void putNumber(ObjectNode node, String key, long v) {
        if (v == (int) v) {
            node.put(key, (int) v);
        } else {
            node.put(key, v);
        }
    }

    /** QEMU appends "[k]" (k = how many earlier fields share the name) when a name is not unique. */
    static String vmdescName(VmStateDescription vmsd, VmStateField field) {
        int same = 0;
        int index = 0;
        for (VmStateField f : vmsd.fields()) {
            if (f.name().equals(field.name())) {
                if (f == field) {
                    index = same;
                }
                same++;
            }
        }
        return same > 1 ? field.name() + "[" + index + "]" : field.name();
    }

    /**
     * QEMU's {@code vmsd_can_compress}: an array is described once with {@code array_len} unless
     * it has an exists-test, or its struct elements (recursively) do or have subsections.
     */
    static boolean canCompress(VmStateField f) {
        if (f.exists() != null) {
            return false;
        }
        FieldKind k = f.kind();
        if (k instanceof FieldKind.Array a) {
            k = a.element();
        } else if (k instanceof FieldKind.VArray va) {
            k = va.element();
        }
        if (k instanceof FieldKind.Struct s) {
            for (VmStateField sf : s.vmsd().fields()) {
                if (!canCompress(sf)) {
                    return false;
                }
            }
            return s.vmsd().subsections().isEmpty();
        }
        return true;
    }

    // ---- load -------------------------------------------------------------------------------

    /**
     * Reads a description's fields and subsections written at stream version {@code versionId}.
     *
     * @throws io.jmigrate.stream.StreamException when the version is outside
     *         [minimumVersionId, versionId], the bytes are truncated, a length is over its bound,
     *         or a subsection with the parent's prefix is unknown
     */
    public static VmStateValues load(QemuFileReader r, VmStateDescription vmsd, int versionId) {
        checkVersion(r, r.position(), vmsd, versionId, "vmsd '" + vmsd.name() + "'");
        return loadState(r, vmsd, versionId, vmsd.name());
    }

    private static void checkVersion(QemuFileReader r, long at, VmStateDescription vmsd, int versionId, String what) {
        if (versionId > vmsd.versionId() || versionId < 0) {
            throw r.fail(Category.MISMATCH, at, what + ": incoming version_id " + Integer.toUnsignedString(versionId)
                    + " is too new for local version_id " + vmsd.versionId());
        }
        if (versionId < vmsd.minimumVersionId()) {
            throw r.fail(Category.MISMATCH, at, what + ": incoming version_id " + versionId
                    + " is too old for local minimum version_id " + vmsd.minimumVersionId());
        }
    }

    private static VmStateValues loadState(QemuFileReader r, VmStateDescription vmsd, int version, String ctx) {
        VmStateValues values = new VmStateValues();
        for (VmStateField f : vmsd.fields()) {
            if (!f.present(values, version)) {
                continue;
            }
            String what = "field '" + f.name() + "' of vmsd '" + ctx + "'";
            switch (f.kind()) {
                case FieldKind.Array a -> values.put(f.name(), loadArray(r, f, a.element(), a.count(), what, ctx));
                case FieldKind.VArray va -> {
                    long at = r.position();
                    long n = values.getLong(va.countField());
                    if (n < 0 || n > va.maxCount()) {
                        throw r.fail(Category.LIMIT, at, "element count " + Long.toUnsignedString(n) + " of " + what
                                + " (from field '" + va.countField() + "') exceeds the maximum of " + va.maxCount());
                    }
                    values.put(f.name(), loadArray(r, f, va.element(), (int) n, what, ctx));
                }
                case FieldKind.VBuffer vb -> {
                    long len = values.getLong(vb.lengthField());
                    r.checkLength(len, Math.min(vb.maxSize(), r.limits().maxBuffer()), what
                            + " (length from field '" + vb.lengthField() + "')");
                    values.put(f.name(), r.readBytes(len, what));
                }
                case FieldKind.Element e -> {
                    Object v = loadElement(r, e, what,
                            e instanceof FieldKind.Struct ? ctx + " > " + f.name() : null);
                    if (v != null) {
                        values.put(f.name(), v);
                    }
                }
            }
        }
        loadSubsections(r, vmsd, values, ctx);
        return values;
    }

    private static List<Object> loadArray(QemuFileReader r, VmStateField f, FieldKind.Element element, int n,
                                          String what, String ctx) {
        List<Object> list = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            Object v = loadElement(r, element, what,
                    element instanceof FieldKind.Struct ? ctx + " > " + f.name() + "[" + i + "]" : null);
            list.add(v);
        }
        return list;
    }

    /** Reads one element; null for Unused. {@code structCtx} names a struct element in messages. */
    private static Object loadElement(QemuFileReader r, FieldKind.Element kind, String what, String structCtx) {
        return switch (kind) {
            case FieldKind.Int i -> {
                long v = switch (i.size()) {
                    case 1 -> r.readU8(what);
                    case 2 -> r.readBe16(what);
                    case 4 -> r.readBe32(what) & 0xffff_ffffL;
                    default -> r.readBe64(what);
                };
                if (i.littleEndian()) {
                    v = switch (i.size()) {
                        case 2 -> Short.reverseBytes((short) v) & 0xffffL;
                        case 4 -> Integer.reverseBytes((int) v) & 0xffff_ffffL;
                        case 8 -> Long.reverseBytes(v);
                        default -> v;
                    };
                }
                if (i.signed() && i.size() < 8) {
                    int shift = 64 - 8 * i.size();
                    v = (v << shift) >> shift;
                }
                yield v;
            }
            case FieldKind.Bool b -> r.readU8(what) != 0;
            case FieldKind.Buffer b -> r.readBytes(b.size(), what);
            case FieldKind.Unused u -> {
                r.skip(u.size(), what);
                yield null;
            }
            case FieldKind.CountedString s -> r.readCountedString(what);
            case FieldKind.Struct s -> loadState(r, s.vmsd(), s.vmsd().versionId(), structCtx);
        };
    }

    private static void loadSubsections(QemuFileReader r, VmStateDescription vmsd, VmStateValues values, String ctx) {
        int prefix = vmsd.name().getBytes(StandardCharsets.ISO_8859_1).length;
        while (r.peekU8() == SUBSECTION) {
            byte[] lenByte = r.peek(1, 1);
            if (lenByte.length < 1) {
                return;
            }
            int len = lenByte[0] & 0xff;
            if (len < prefix + 1) {
                return;
            }
            byte[] nameBytes = r.peek(2, len);
            if (nameBytes.length != len) {
                return;
            }
            String name = new String(nameBytes, StandardCharsets.ISO_8859_1);
            if (!name.startsWith(vmsd.name())) {
                return;
            }
            long at = r.position();
            VmStateSubsection sub = vmsd.subsection(name);
            if (sub == null) {
                List<String> known = vmsd.subsections().stream().map(VmStateSubsection::name).toList();
                throw r.fail(Category.MISMATCH, at, "unknown subsection '" + name + "' of vmsd '" + ctx
                        + "' (this side knows " + (known.isEmpty() ? "none" : String.join(", ", known)) + ")");
            }
            if (values.hasSubsection(name)) {
                throw r.fail(Category.PROTOCOL, at, "subsection '" + name + "' of vmsd '" + ctx + "' appears twice");
            }
            r.skip(2 + len, "subsection header");
            long vat = r.position();
            int version = r.readBe32("version of subsection '" + name + "'");
            checkVersion(r, vat, sub.vmsd(), version, "subsection '" + name + "'");
            values.putSubsection(name, loadState(r, sub.vmsd(), version, name));
        }
    }

    // ---- errors -----------------------------------------------------------------------------

    private static <T> T require(VmStateValues values, String name, Class<T> type, String ctx) {
        Object v = values.get(name);
        if (v == null) {
            throw internal(ctx, name, "no value to save");
        }
        if (!type.isInstance(v)) {
            throw failType(ctx, name, v, type.getSimpleName());
        }
        return type.cast(v);
    }

    private static long requireLong(VmStateValues values, String name, String ctx) {
        return require(values, name, Long.class, ctx);
    }

    private static MigrationException failType(String ctx, String field, Object v, String expected) {
        throw internal(ctx, field, v == null ? "no value to save"
                : "value is a " + v.getClass().getSimpleName() + ", expected " + expected);
    }

    private static MigrationException internal(String ctx, String field, String what) {
        return new MigrationException(Category.INTERNAL, "saving field '" + field + "' of vmsd '" + ctx + "': " + what);
    }
}
