package io.jmigrate.analyze;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Iterator;
import java.util.Map;

/**
 * Writes a JSON tree in the exact text form of Python's
 * {@code json.JSONEncoder(indent=4, separators=(',', ': '))} with its default
 * {@code ensure_ascii=True}, which is what analyze-migration.py prints: four-space indents,
 * {@code "key": value}, empty containers as {@code {}} / {@code []}, non-ASCII characters as
 * {@code \\uXXXX}. Key order is the tree's insertion order.
 */
public final class PyJson {
    private PyJson() {
    }

    public static String toString(JsonNode n) {
        StringBuilder sb = new StringBuilder();
        write(n, sb);
        return sb.toString();
    }

    public static void write(JsonNode n, Appendable out) {
        try {
            value(n, out, 0);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void value(JsonNode n, Appendable out, int depth) throws IOException {
        if (n == null || n.isNull() || n.isMissingNode()) {
            out.append("null");
        } else if (n.isObject()) {
            if (n.isEmpty()) {
                out.append("{}");
                return;
            }
            out.append('{');
            Iterator<Map.Entry<String, JsonNode>> it = n.properties().iterator();
            boolean first = true;
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                out.append(first ? "\n" : ",\n");
                first = false;
                indent(out, depth + 1);
                string(e.getKey(), out);
                out.append(": ");
                value(e.getValue(), out, depth + 1);
            }
            out.append('\n');
            indent(out, depth);
            out.append('}');
        } else if (n.isArray()) {
            if (n.isEmpty()) {
                out.append("[]");
                return;
            }
            out.append('[');
            for (int i = 0; i < n.size(); i++) {
                out.append(i == 0 ? "\n" : ",\n");
                indent(out, depth + 1);
                value(n.get(i), out, depth + 1);
            }
            out.append('\n');
            indent(out, depth);
            out.append(']');
        } else if (n.isTextual()) {
            string(n.asText(), out);
        } else if (n.isBoolean()) {
            out.append(n.asBoolean() ? "true" : "false");
        } else if (n.isIntegralNumber()) {
            out.append(n.bigIntegerValue().toString());
        } else if (n.isNumber()) {
            out.append(pyFloat(n.doubleValue()));
        } else {
            string(n.asText(), out);
        }
    }

    private static String pyFloat(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        return Double.toString(d);
    }

    private static void indent(Appendable out, int depth) throws IOException {
        for (int i = 0; i < depth; i++) {
            out.append("    ");
        }
    }

    private static void string(String s, Appendable out) throws IOException {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7e) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
