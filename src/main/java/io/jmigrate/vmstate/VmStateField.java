package io.jmigrate.vmstate;

/**
 * One field of a {@link VmStateDescription}.
 *
 * <p>A field is on the wire for stream version {@code v} when its {@code exists} test says so, or,
 * without a test, when {@code versionId <= v} (QEMU's {@code field_exists} / {@code version_id}
 * rule, the same on save and load). A field with a test is never compressed in the vmdesc.
 *
 * @param name      the field name as QEMU writes it in the vmdesc ("env.regs", "runstate")
 * @param kind      wire layout
 * @param versionId first description version that has the field (0 = always)
 * @param exists    optional test replacing the version rule (null = none)
 */
public record VmStateField(String name, FieldKind kind, int versionId, ExistsTest exists) {

    /** QEMU's {@code field_exists(opaque, version_id)}, evaluated over the values saved or loaded so far. */
    @FunctionalInterface
    public interface ExistsTest {
        boolean test(VmStateValues values, int versionId);
    }

    public VmStateField {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("field name must not be empty");
        }
        if (kind == null) {
            throw new IllegalArgumentException("field " + name + ": kind is null");
        }
        if (versionId < 0) {
            throw new IllegalArgumentException("field " + name + ": version must be >= 0");
        }
    }

    public VmStateField(String name, FieldKind kind) {
        this(name, kind, 0, null);
    }

    /** This field, present only from description version {@code version} on ({@code VMSTATE_*_V}). */
    public VmStateField since(int version) {
        return new VmStateField(name, kind, version, exists);
    }

    /** This field, present only when {@code test} holds ({@code VMSTATE_*_TEST}). */
    public VmStateField when(ExistsTest test) {
        return new VmStateField(name, kind, versionId, test);
    }

    /** True if the field is on the wire for {@code values} at stream version {@code version}. */
    public boolean present(VmStateValues values, int version) {
        return exists != null ? exists.test(values, version) : versionId <= version;
    }

    // ---- factories, named as QEMU's VMSTATE_* macros -------------------------------------------

    public static VmStateField int8(String name) {
        return new VmStateField(name, FieldKind.INT8);
    }

    public static VmStateField int16(String name) {
        return new VmStateField(name, FieldKind.INT16);
    }

    public static VmStateField int32(String name) {
        return new VmStateField(name, FieldKind.INT32);
    }

    public static VmStateField int64(String name) {
        return new VmStateField(name, FieldKind.INT64);
    }

    public static VmStateField uint8(String name) {
        return new VmStateField(name, FieldKind.UINT8);
    }

    public static VmStateField uint16(String name) {
        return new VmStateField(name, FieldKind.UINT16);
    }

    public static VmStateField uint32(String name) {
        return new VmStateField(name, FieldKind.UINT32);
    }

    public static VmStateField uint64(String name) {
        return new VmStateField(name, FieldKind.UINT64);
    }

    public static VmStateField bool(String name) {
        return new VmStateField(name, FieldKind.BOOL);
    }

    /** {@code VMSTATE_BUFFER}: exactly {@code size} bytes, vmdesc type "buffer". */
    public static VmStateField buffer(String name, int size) {
        return new VmStateField(name, new FieldKind.Buffer(size, "buffer"));
    }

    /** {@code VMSTATE_VBUFFER_ALLOC_UINT32}: length from the earlier integer field {@code lengthField}. */
    public static VmStateField vbuffer(String name, String lengthField, int maxSize) {
        return new VmStateField(name, new FieldKind.VBuffer(lengthField, maxSize));
    }

    /** {@code VMSTATE_UNUSED}: {@code size} zero bytes, named "unused" as QEMU names them. */
    public static VmStateField unused(int size) {
        return new VmStateField("unused", new FieldKind.Unused(size));
    }

    public static VmStateField array(String name, FieldKind.Element element, int count) {
        return new VmStateField(name, new FieldKind.Array(element, count));
    }

    public static VmStateField varray(String name, FieldKind.Element element, String countField, int maxCount) {
        return new VmStateField(name, new FieldKind.VArray(element, countField, maxCount));
    }

    public static VmStateField struct(String name, VmStateDescription vmsd) {
        return new VmStateField(name, new FieldKind.Struct(vmsd));
    }

    public static VmStateField structArray(String name, VmStateDescription vmsd, int count) {
        return new VmStateField(name, new FieldKind.Array(new FieldKind.Struct(vmsd), count));
    }
}
