package io.jmigrate.vmstate;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.GZIPInputStream;

/**
 * Test access to the real QEMU streams in {@code jmigrate.testdata}: the vmdesc trailer and the
 * bodies of FULL sections, found with a small scan (header 0x04, be32 id, counted idstr, be32
 * instance, be32 version; the body runs to the 0x7e footer carrying the same id).
 */
public final class QemuTestStreams {
    private QemuTestStreams() {
    }

    public static Path testdata() {
        String dir = System.getProperty("jmigrate.testdata");
        if (dir == null) {
            throw new IllegalStateException("system property jmigrate.testdata is not set (surefire sets it)");
        }
        return Path.of(dir);
    }

    /** The gunzipped bytes of {@code qemu-VERSION/FILE}. */
    public static byte[] stream(String version, String file) {
        Path p = testdata().resolve("qemu-" + version).resolve(file);
        try (InputStream in = new GZIPInputStream(Files.newInputStream(p))) {
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + p, e);
        }
    }

    /** Offset of the 0x06 byte of the vmdesc trailer (the JSON runs to the end of the stream). */
    public static int vmdescOffset(byte[] s) {
        for (int off = s.length - 5; off >= 0; off--) {
            if (s[off] == 0x06 && off + 5 + (long) ByteBuffer.wrap(s, off + 1, 4).getInt() == s.length) {
                return off;
            }
        }
        throw new IllegalStateException("no vmdesc trailer found");
    }

    public static String vmdescJson(byte[] s) {
        int off = vmdescOffset(s);
        return new String(s, off + 5, s.length - off - 5, StandardCharsets.UTF_8);
    }

    /** The vmdesc entry of device (idstr, instance). */
    public static JsonNode device(JsonNode vmdesc, String idstr, int instance) {
        for (JsonNode d : vmdesc.get("devices")) {
            if (d.get("name").asText().equals(idstr) && d.get("instance_id").asInt() == instance) {
                return d;
            }
        }
        throw new IllegalArgumentException("no device " + idstr + " instance " + instance + " in vmdesc");
    }

    /** A FULL section located in a stream: header fields and the body's extent. */
    public record FullSection(int sectionId, String idstr, int instance, int version, int bodyStart, int bodyEnd) {
        public byte[] body(byte[] s) {
            return Arrays.copyOfRange(s, bodyStart, bodyEnd);
        }
    }

    /** Finds the last FULL section of (idstr, instance, version) before the vmdesc trailer. */
    public static FullSection fullSection(byte[] s, String idstr, int instance, int version) {
        byte[] name = idstr.getBytes(StandardCharsets.ISO_8859_1);
        byte[] pattern = ByteBuffer.allocate(1 + name.length + 8).put((byte) name.length).put(name)
                .putInt(instance).putInt(version).array();
        int limit = vmdescOffset(s);
        for (int i = limit - pattern.length; i >= 5; i--) {
            if (s[i - 5] != 0x04 || !Arrays.equals(s, i, i + pattern.length, pattern, 0, pattern.length)) {
                continue;
            }
            int id = ByteBuffer.wrap(s, i - 4, 4).getInt();
            int bodyStart = i + pattern.length;
            byte[] footer = ByteBuffer.allocate(5).put((byte) 0x7e).putInt(id).array();
            for (int j = bodyStart; j + 5 <= limit; j++) {
                if (Arrays.equals(s, j, j + 5, footer, 0, 5)) {
                    return new FullSection(id, idstr, instance, version, bodyStart, j);
                }
            }
        }
        throw new IllegalArgumentException("no FULL section " + idstr + " instance " + instance + " version " + version);
    }

    /** All FULL sections' candidate (idstr, instance, version) triples named in the vmdesc with a VMSD. */
    public static List<JsonNode> vmsdDevices(JsonNode vmdesc) {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode d : vmdesc.get("devices")) {
            if (d.has("vmsd_name")) {
                out.add(d);
            }
        }
        return out;
    }
}
