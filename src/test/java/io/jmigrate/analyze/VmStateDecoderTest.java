package io.jmigrate.analyze;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.stream.QemuFileReader;
import org.junit.jupiter.api.Test;

import java.util.HexFormat;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The analyze-migration.py rendering rules on hand-made descriptions and bytes. */
class VmStateDecoderTest {

    private static VmDesc desc(String devices) {
        return VmDesc.parse("{\"page_size\": 4096, \"devices\": [" + devices + "]}", 0);
    }

    private static ObjectNode decode(VmDesc d, String hex) {
        byte[] b = HexFormat.of().parseHex(hex.replace(" ", ""));
        QemuFileReader r = QemuFileReader.of(b, "t");
        ObjectNode n = new VmStateDecoder(r, b.length).decode(d.devices().values().iterator().next(), "dev");
        assertThat(r.atEof()).as("all bytes consumed").isTrue();
        return n;
    }

    @Test
    void integersBoolsBuffersNullptr() {
        VmDesc d = desc("""
                {"name": "d", "instance_id": 0, "vmsd_name": "d", "version": 1, "fields": [
                  {"name": "a", "type": "int32", "size": 4},
                  {"name": "b", "type": "uint8 equal", "size": 1},
                  {"name": "c", "type": "uint64", "size": 8},
                  {"name": "e", "type": "bool", "size": 1},
                  {"name": "f", "type": "buffer", "size": 3},
                  {"name": "g", "type": "nullptr", "size": 1},
                  {"name": "h", "type": "int32 le", "size": 4},
                  {"name": "i", "type": "pci config", "size": 0}]}""");
        ObjectNode n = decode(d, "ffffffff ff ffffffffffffffff 01 0001ff 30 00000002");
        assertThat(PyJson.toString(n)).isEqualTo("""
                {
                    "a": "0xffffffff (-1)",
                    "b": "0xff (-1)",
                    "c": "0xffffffffffffffff",
                    "e": true,
                    "f": "00 01 ff",
                    "g": "nullptr",
                    "h": "0x00000002",
                    "i": ""
                }""");
    }

    @Test
    void arrayLenAndRepeatedNamesBecomeLists() {
        VmDesc d = desc("""
                {"name": "d", "instance_id": 0, "vmsd_name": "d", "version": 1, "fields": [
                  {"name": "one", "array_len": 1, "type": "uint16", "size": 2},
                  {"name": "arr", "array_len": 2, "type": "uint16", "size": 2},
                  {"name": "arr", "type": "nullptr", "size": 1},
                  {"name": "s", "type": "struct", "struct": {"vmsd_name": "s", "version": 0, "fields": [
                      {"name": "x", "type": "uint8", "size": 1}]}, "size": 1}],
                 "subsections": [{"vmsd_name": "d/sub", "version": 1, "fields": [
                      {"name": "y", "type": "int8", "size": 1}]}]}""");
        ObjectNode n = decode(d, "0001 0002 0003 30 07 05 05 642f737562 00000001 80");
        assertThat(PyJson.toString(n)).isEqualTo("""
                {
                    "one": "0x0001",
                    "arr": [
                        "0x0002",
                        "0x0003",
                        "nullptr"
                    ],
                    "s": {
                        "x": "0x07"
                    },
                    "d/sub": {
                        "y": "0x80 (-128)"
                    }
                }""");
    }

    @Test
    void missingOrWrongSubsectionIsAnErrorWithOffset() {
        VmDesc d = desc("""
                {"name": "d", "instance_id": 0, "vmsd_name": "d", "version": 1, "fields": [
                  {"name": "x", "type": "uint8", "size": 1}],
                 "subsections": [{"vmsd_name": "d/sub", "version": 1, "fields": []}]}""");
        assertThatThrownBy(() -> decode(d, "01 00"))
                .isInstanceOf(MigrationException.class)
                .hasMessageContaining("t at byte offset 1: dev: expected subsection 'd/sub' (byte 0x05)")
                .hasMessageContaining("got byte 0x00");
        assertThatThrownBy(() -> decode(d, "01 05 05 642f787878 00000001"))
                .hasMessageContaining("at byte offset 2: dev: subsection 'd/xxx' found where the vmdesc lists 'd/sub'");
    }

    @Test
    void bufferLongerThanTheStreamIsRejectedBeforeAllocation() {
        VmDesc d = desc("""
                {"name": "d", "instance_id": 0, "fields": [{"name": "data", "type": "buffer", "size": 50000000}],
                 "size": 50000000}""");
        assertThatThrownBy(() -> decode(d, "0102"))
                .hasMessageContaining("t at byte offset 0: dev field data: the vmdesc gives a size of 50000000 byte(s) "
                        + "but only 2 remain");
    }

    @Test
    void pyJsonEscapesLikePython() {
        ObjectNode n = com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
        n.put("k\u00e9y", "a\"b\\c\n\u0001\u007f");
        n.putObject("empty");
        n.putArray("none");
        assertThat(PyJson.toString(n)).isEqualTo("""
                {
                    "k\\u00e9y": "a\\"b\\\\c\\n\\u0001\\u007f",
                    "empty": {},
                    "none": []
                }""");
    }
}
