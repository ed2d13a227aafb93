package io.jmigrate.vmstate;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The values of one description's fields, in wire order, plus the values of its subsections:
 * what {@link VmState#save} writes and {@link VmState#load} returns.
 *
 * <p>Value types by {@link FieldKind}: Int → {@link Long}, Bool → {@link Boolean}, Buffer and
 * VBuffer → {@code byte[]}, CountedString → {@link String}, Array and VArray → {@link List} of
 * element values, Struct → a nested {@code VmStateValues}. Unused fields have no value.
 * Equality is deep (buffers compare by content), so loaded values can be compared with
 * expected ones.
 *
 * <p>Mutable and not thread safe: a device builds one for a save, a loader fills one in.
 */
public final class VmStateValues {
    private final LinkedHashMap<String, Object> fields = new LinkedHashMap<>();
    private final LinkedHashMap<String, VmStateValues> subsections = new LinkedHashMap<>();

    public VmStateValues() {
    }

    /** Sets a field value (see the class comment for the types); returns this. */
    public VmStateValues put(String name, Object value) {
        Objects.requireNonNull(value, () -> "value of " + name);
        if (value instanceof Integer i) {
            value = i.longValue();
        } else if (value instanceof Short s) {
            value = s.longValue();
        } else if (value instanceof Byte b) {
            value = b.longValue();
        }
        fields.put(name, value);
        return this;
    }

    public VmStateValues putSubsection(String name, VmStateValues values) {
        subsections.put(name, Objects.requireNonNull(values));
        return this;
    }

    public boolean has(String name) {
        return fields.containsKey(name);
    }

    public Object get(String name) {
        return fields.get(name);
    }

    public long getLong(String name) {
        return as(name, Long.class);
    }

    public boolean getBoolean(String name) {
        return as(name, Boolean.class);
    }

    public byte[] getBytes(String name) {
        return as(name, byte[].class);
    }

    public String getString(String name) {
        return as(name, String.class);
    }

    @SuppressWarnings("unchecked")
    public List<Object> getList(String name) {
        return as(name, List.class);
    }

    public VmStateValues getStruct(String name) {
        return as(name, VmStateValues.class);
    }

    private <T> T as(String name, Class<T> type) {
        Object v = fields.get(name);
        if (v == null) {
            throw new IllegalArgumentException("no value for field '" + name + "'");
        }
        if (!type.isInstance(v)) {
            throw new IllegalArgumentException("field '" + name + "' holds a " + v.getClass().getSimpleName()
                    + ", not a " + type.getSimpleName());
        }
        return type.cast(v);
    }

    public boolean hasSubsection(String name) {
        return subsections.containsKey(name);
    }

    /** The values of subsection {@code name}, or null when it was not loaded / is not to be saved. */
    public VmStateValues subsection(String name) {
        return subsections.get(name);
    }

    /** Field names in insertion (wire) order. */
    public List<String> names() {
        return List.copyOf(fields.keySet());
    }

    public Map<String, VmStateValues> subsections() {
        return Collections.unmodifiableMap(subsections);
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof VmStateValues other)) {
            return false;
        }
        if (!fields.keySet().equals(other.fields.keySet()) || !subsections.equals(other.subsections)) {
            return false;
        }
        for (Map.Entry<String, Object> e : fields.entrySet()) {
            if (!deepEquals(e.getValue(), other.fields.get(e.getKey()))) {
                return false;
            }
        }
        return true;
    }

    private static boolean deepEquals(Object a, Object b) {
        if (a instanceof List<?> la && b instanceof List<?> lb) {
            if (la.size() != lb.size()) {
                return false;
            }
            for (int i = 0; i < la.size(); i++) {
                if (!deepEquals(la.get(i), lb.get(i))) {
                    return false;
                }
            }
            return true;
        }
        return Objects.deepEquals(a, b);
    }

    @Override
    public int hashCode() {
        int h = subsections.hashCode();
        for (Map.Entry<String, Object> e : fields.entrySet()) {
            h = 31 * h + e.getKey().hashCode() + deepHash(e.getValue());
        }
        return h;
    }

    private static int deepHash(Object v) {
        if (v instanceof byte[] b) {
            return Arrays.hashCode(b);
        }
        if (v instanceof List<?> l) {
            int h = 1;
            for (Object o : l) {
                h = 31 * h + deepHash(o);
            }
            return h;
        }
        return Objects.hashCode(v);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("{");
        fields.forEach((k, v) -> {
            if (sb.length() > 1) {
                sb.append(", ");
            }
            sb.append(k).append('=').append(show(v));
        });
        subsections.forEach((k, v) -> {
            if (sb.length() > 1) {
                sb.append(", ");
            }
            sb.append(k).append('=').append(v);
        });
        return sb.append('}').toString();
    }

    private static String show(Object v) {
        if (v instanceof byte[] b) {
            return b.length <= 64 ? java.util.HexFormat.of().formatHex(b) : "byte[" + b.length + "]";
        }
        if (v instanceof List<?> l) {
            List<String> parts = new ArrayList<>();
            for (Object o : l) {
                parts.add(show(o));
            }
            return parts.toString();
        }
        if (v instanceof Long x) {
            return "0x" + Long.toHexString(x);
        }
        return String.valueOf(v);
    }
}
