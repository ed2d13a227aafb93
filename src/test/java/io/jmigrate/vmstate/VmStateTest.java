package io.jmigrate.vmstate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import io.jmigrate.stream.StreamException;
import io.jmigrate.stream.StreamLimits;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.util.HexFormat;
import java.util.List;
import java.util.function.Consumer;

import static io.jmigrate.vmstate.VmStateField.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class VmStateTest {

    static byte[] bytes(Consumer<QemuFileWriter> body) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        QemuFileWriter w = new QemuFileWriter(out, "test");
        body.accept(w);
        w.flush();
        return out.toByteArray();
    }

    static byte[] save(VmStateDescription d, VmStateValues v) {
        return bytes(w -> VmState.save(w, d, v));
    }

    static VmStateValues load(byte[] b, VmStateDescription d, int version) {
        QemuFileReader r = QemuFileReader.of(b, "test");
        VmStateValues v = VmState.load(r, d, version);
        assertThat(r.atEof()).as("load consumed every byte").isTrue();
        return v;
    }

    static byte[] hex(String s) {
        return HexFormat.of().parseHex(s.replace(" ", ""));
    }

    // ---- round trips --------------------------------------------------------------------------

    @Test
    void integersRoundTripBigEndianWithSignAndZeroExtension() {
        VmStateDescription d = VmStateDescription.builder("ints", 1)
                .field(int8("a")).field(uint8("b")).field(int16("c")).field(uint16("d"))
                .field(int32("e")).field(uint32("f")).field(int64("g")).field(uint64("h"))
                .field(new VmStateField("le", new FieldKind.Int(4, false, true, "uint32 le")))
                .build();
        VmStateValues v = new VmStateValues().put("a", -2L).put("b", 0xfeL).put("c", -3L).put("d", 0xfffdL)
                .put("e", -4L).put("f", 0xfffffffcL).put("g", Long.MIN_VALUE).put("h", -1L).put("le", 0x01020304L);
        byte[] b = save(d, v);
        assertThat(HexFormat.of().formatHex(b)).isEqualTo(
                "fe" + "fe" + "fffd" + "fffd" + "fffffffc" + "fffffffc" + "8000000000000000" + "ffffffffffffffff"
                        + "04030201");
        assertThat(load(b, d, 1)).isEqualTo(v);
    }

    @Test
    void boolBufferUnusedCountedStringAndVBufferRoundTrip() {
        VmStateDescription d = VmStateDescription.builder("misc", 1)
                .field(bool("t")).field(bool("f")).field(buffer("buf", 3)).field(unused(2))
                .field(new VmStateField("cap", new FieldKind.CountedString("capability")))
                .field(uint32("len")).field(vbuffer("name", "len", 255))
                .build();
        VmStateValues v = new VmStateValues().put("t", true).put("f", false).put("buf", hex("010203"))
                .put("cap", "x-ignore-shared").put("len", 4L).put("name", "none".getBytes());
        byte[] b = save(d, v);
        assertThat(HexFormat.of().formatHex(b)).isEqualTo("01" + "00" + "010203" + "0000" + "0f"
                + HexFormat.of().formatHex("x-ignore-shared".getBytes()) + "00000004" + "6e6f6e65");
        VmStateValues back = load(b, d, 1);
        assertThat(back).isEqualTo(v);
        assertThat(back.has("unused")).as("unused fields carry no value").isFalse();
    }

    @Test
    void unusedBytesAreIgnoredOnLoad() {
        VmStateDescription d = VmStateDescription.builder("u", 1).field(uint8("a")).field(unused(3)).field(uint8("b"))
                .build();
        assertThat(load(hex("01 aabbcc 02"), d, 1)).isEqualTo(new VmStateValues().put("a", 1L).put("b", 2L));
    }

    static final VmStateDescription SEGMENT = VmStateDescription.builder("segment", 1)
            .field(uint32("selector")).field(uint64("base")).build();

    @Test
    void arraysVArraysAndNestedStructsRoundTrip() {
        VmStateDescription d = VmStateDescription.builder("cpu", 3)
                .field(array("regs", FieldKind.UINT16, 3))
                .field(structArray("segs", SEGMENT, 2))
                .field(struct("ldt", SEGMENT))
                .field(uint32("n"))
                .field(varray("caps", new FieldKind.CountedString("capability"), "n", 8))
                .build();
        VmStateValues v = new VmStateValues()
                .put("regs", List.of(1L, 2L, 0xffffL))
                .put("segs", List.of(seg(1, 0x1000), seg(2, 0x2000)))
                .put("ldt", seg(3, -1))
                .put("n", 2L)
                .put("caps", List.of("mapped-ram", "x-ignore-shared"));
        byte[] b = save(d, v);
        assertThat(b).hasSize(6 + 2 * 12 + 12 + 4 + 11 + 16);
        assertThat(load(b, d, 3)).isEqualTo(v);
    }

    static VmStateValues seg(long sel, long base) {
        return new VmStateValues().put("selector", sel).put("base", base);
    }

    @Test
    void versionGatingLeavesOutFieldsNewerThanTheStream() {
        VmStateDescription d = VmStateDescription.builder("timer", 2).minimumVersion(1)
                .field(int64("a")).field(unused(8)).field(int64("b").since(2)).build();
        VmStateValues v2 = new VmStateValues().put("a", 5L).put("b", 7L);
        byte[] at2 = save(d, v2);
        assertThat(at2).hasSize(24);
        byte[] at1 = bytes(w -> VmState.save(w, d, v2, 1, null));
        assertThat(at1).hasSize(16);
        VmStateValues back1 = load(at1, d, 1);
        assertThat(back1.has("b")).isFalse();
        assertThat(back1).isEqualTo(new VmStateValues().put("a", 5L));
        assertThat(load(at2, d, 2)).isEqualTo(v2);
    }

    @Test
    void existsTestDecidesPresenceOnSaveAndLoad() {
        VmStateDescription d = VmStateDescription.builder("t", 1)
                .field(uint8("flag"))
                .field(uint32("opt").when((vals, ver) -> vals.getLong("flag") != 0))
                .build();
        VmStateValues with = new VmStateValues().put("flag", 1L).put("opt", 9L);
        VmStateValues without = new VmStateValues().put("flag", 0L);
        assertThat(save(d, with)).hasSize(5);
        assertThat(save(d, without)).hasSize(1);
        assertThat(load(save(d, with), d, 1)).isEqualTo(with);
        assertThat(load(save(d, without), d, 1)).isEqualTo(without);
    }

    static final VmStateDescription SUB_A = VmStateDescription.builder("dev/a", 1).field(uint32("x")).build();
    static final VmStateDescription SUB_B = VmStateDescription.builder("dev/b", 2).minimumVersion(1)
            .field(uint8("y")).build();
    static final VmStateDescription DEV = VmStateDescription.builder("dev", 1)
            .field(uint16("f")).subsection(SUB_A).subsection(SUB_B).build();

    @Test
    void subsectionsAreWrittenOnlyWhenNeededAndRoundTrip() {
        VmStateValues none = new VmStateValues().put("f", 1L);
        assertThat(save(DEV, none)).containsExactly(0, 1);
        assertThat(load(save(DEV, none), DEV, 1)).isEqualTo(none);

        VmStateValues onlyB = new VmStateValues().put("f", 1L).putSubsection("dev/b", new VmStateValues().put("y", 7L));
        byte[] b = save(DEV, onlyB);
        assertThat(HexFormat.of().formatHex(b)).isEqualTo("0001" + "05" + "05" + HexFormat.of().formatHex(
                "dev/b".getBytes()) + "00000002" + "07");
        assertThat(load(b, DEV, 1)).isEqualTo(onlyB);

        VmStateValues both = new VmStateValues().put("f", 2L)
                .putSubsection("dev/a", new VmStateValues().put("x", 3L))
                .putSubsection("dev/b", new VmStateValues().put("y", 4L));
        assertThat(load(save(DEV, both), DEV, 1)).isEqualTo(both);
    }

    @Test
    void subsectionsMayArriveInAnyOrder() {
        byte[] b = hex("0001" + "05 05" + HexFormat.of().formatHex("dev/b".getBytes()) + "00000001 09"
                + "05 05" + HexFormat.of().formatHex("dev/a".getBytes()) + "00000001 0000000a");
        VmStateValues v = load(b, DEV, 1);
        assertThat(v.subsection("dev/a").getLong("x")).isEqualTo(10);
        assertThat(v.subsection("dev/b").getLong("y")).isEqualTo(9);
    }

    @Test
    void aSubsectionOfAnotherDeviceEndsTheSubsectionList() {
        byte[] b = hex("0001" + "05 05" + HexFormat.of().formatHex("cpu/x".getBytes()) + "00000001");
        QemuFileReader r = QemuFileReader.of(b, "test");
        assertThat(VmState.load(r, DEV, 1)).isEqualTo(new VmStateValues().put("f", 1L));
        assertThat(r.position()).as("the foreign subsection is left unread").isEqualTo(2);
        assertThat(r.peekU8()).isEqualTo(0x05);
    }

    @Test
    void subsectionsInsideNestedStructsRoundTrip() {
        VmStateDescription inner = VmStateDescription.builder("in", 1).field(uint8("a"))
                .subsection(VmStateDescription.builder("in/extra", 1).field(uint8("b")).build()).build();
        VmStateDescription outer = VmStateDescription.builder("out", 1).field(struct("s", inner)).field(uint8("z"))
                .build();
        VmStateValues v = new VmStateValues()
                .put("s", new VmStateValues().put("a", 1L).putSubsection("in/extra", new VmStateValues().put("b", 2L)))
                .put("z", 3L);
        byte[] b = save(outer, v);
        assertThat(b).hasSize(1 + 1 + 9 + 4 + 1 + 1);
        assertThat(load(b, outer, 1)).isEqualTo(v);
    }

    // ---- rejection ----------------------------------------------------------------------------

    @Test
    void rejectsVersionNewerThanLocal() {
        assertThatThrownBy(() -> load(hex("0001"), DEV, 2))
                .isInstanceOf(StreamException.class)
                .hasMessageContaining("vmsd 'dev'").hasMessageContaining("incoming version_id 2 is too new for local version_id 1")
                .extracting(e -> ((MigrationException) e).category()).isEqualTo(Category.MISMATCH);
    }

    @Test
    void rejectsVersionBelowMinimum() {
        VmStateDescription d = VmStateDescription.builder("timer", 2).minimumVersion(1).field(int64("a")).build();
        assertThatThrownBy(() -> load(new byte[8], d, 0))
                .isInstanceOf(StreamException.class)
                .hasMessageContaining("vmsd 'timer'").hasMessageContaining("is too old for local minimum version_id 1");
    }

    @Test
    void rejectsSubsectionVersionTooNewWithOffset() {
        byte[] b = hex("0001" + "05 05" + HexFormat.of().formatHex("dev/b".getBytes()) + "00000003 09");
        assertThatThrownBy(() -> load(b, DEV, 1))
                .hasMessageContaining("at byte offset 9")
                .hasMessageContaining("subsection 'dev/b': incoming version_id 3 is too new for local version_id 2");
    }

    @Test
    void rejectsUnknownPrefixedSubsectionNamingIt() {
        byte[] b = hex("0001" + "05 07" + HexFormat.of().formatHex("dev/zzz".getBytes()) + "00000001");
        assertThatThrownBy(() -> load(b, DEV, 1))
                .isInstanceOf(StreamException.class)
                .hasMessageContaining("at byte offset 2")
                .hasMessageContaining("unknown subsection 'dev/zzz' of vmsd 'dev'")
                .hasMessageContaining("dev/a, dev/b");
    }

    @Test
    void truncatedDataNamesFieldAndOffset() {
        VmStateDescription d = VmStateDescription.builder("timer", 2).field(int64("cpu_ticks_offset")).field(unused(8))
                .field(int64("cpu_clock_offset")).build();
        assertThatThrownBy(() -> load(new byte[20], d, 2))
                .isInstanceOf(StreamException.class)
                .hasMessageContaining("at byte offset 16")
                .hasMessageContaining("field 'cpu_clock_offset' of vmsd 'timer'");
        assertThatThrownBy(() -> load(new byte[12], d, 2))
                .hasMessageContaining("at byte offset 8")
                .hasMessageContaining("field 'unused' of vmsd 'timer'");
    }

    @Test
    void truncatedNestedStructNamesTheElement() {
        VmStateDescription d = VmStateDescription.builder("cpu", 1).field(structArray("segs", SEGMENT, 2)).build();
        assertThatThrownBy(() -> load(new byte[12 + 6], d, 1))
                .hasMessageContaining("at byte offset 16")
                .hasMessageContaining("field 'base' of vmsd 'cpu > segs[1]'");
    }

    @Test
    void rejectsVBufferLengthBeyondStreamLimitsBeforeAllocating() {
        VmStateDescription d = VmStateDescription.builder("configuration", 1)
                .field(uint32("len")).field(vbuffer("name", "len", Integer.MAX_VALUE)).build();
        byte[] b = hex("7fffffff 6e6f6e65");
        QemuFileReader r = new QemuFileReader(new ByteArrayInputStream(b), "test", new StreamLimits(1024, 1024, 1024));
        assertThatThrownBy(() -> VmState.load(r, d, 1))
                .isInstanceOf(StreamException.class)
                .hasMessageContaining("at byte offset 4")
                .hasMessageContaining("length 2147483647 of field 'name' of vmsd 'configuration'")
                .hasMessageContaining("maximum of 1024 bytes")
                .extracting(e -> ((MigrationException) e).category()).isEqualTo(Category.LIMIT);
    }

    @Test
    void rejectsVBufferLengthBeyondTheFieldMaximum() {
        VmStateDescription d = VmStateDescription.builder("configuration", 1)
                .field(uint32("len")).field(vbuffer("name", "len", 255)).build();
        assertThatThrownBy(() -> load(hex("00000100" + "00".repeat(256)), d, 1))
                .hasMessageContaining("length 256 of field 'name'").hasMessageContaining("maximum of 255 bytes");
    }

    @Test
    void rejectsVArrayCountBeyondMaximum() {
        VmStateDescription d = VmStateDescription.builder("c", 1)
                .field(uint32("n")).field(varray("caps", new FieldKind.CountedString("capability"), "n", 64)).build();
        assertThatThrownBy(() -> load(hex("ffffffff"), d, 1))
                .hasMessageContaining("element count 4294967295 of field 'caps'")
                .hasMessageContaining("maximum of 64");
    }

    @Test
    void saveRejectsMissingOrMistypedValues() {
        VmStateDescription d = VmStateDescription.builder("d", 1).field(uint8("a")).field(buffer("b", 2)).build();
        assertThatThrownBy(() -> save(d, new VmStateValues().put("b", new byte[2])))
                .hasMessageContaining("field 'a' of vmsd 'd'").hasMessageContaining("no value");
        assertThatThrownBy(() -> save(d, new VmStateValues().put("a", 256L).put("b", new byte[2])))
                .hasMessageContaining("does not fit uint8");
        assertThatThrownBy(() -> save(d, new VmStateValues().put("a", 1L).put("b", new byte[3])))
                .hasMessageContaining("expected exactly 2");
    }

    @Test
    void descriptionValidation() {
        assertThatThrownBy(() -> VmStateDescription.builder("d", 1).field(vbuffer("name", "len", 4)).build())
                .hasMessageContaining("not an earlier integer field");
        assertThatThrownBy(() -> VmStateDescription.builder("d", 1).subsection(
                VmStateDescription.builder("other/x", 1).build()).build())
                .hasMessageContaining("prefix");
        assertThatThrownBy(() -> VmStateDescription.builder("d", 1).minimumVersion(2).build())
                .hasMessageContaining("minimum version");
        assertThatThrownBy(() -> VmStateDescription.builder("d", 1).field(uint8("a").since(2)).build())
                .hasMessageContaining("newer than the description");
    }

    // ---- vmdesc -------------------------------------------------------------------------------

    static JsonNode desc(VmStateDescription d, VmStateValues v) {
        ObjectNode node = JsonNodeFactory.instance.objectNode();
        bytes(w -> VmState.save(w, d, v, node));
        return node;
    }

    @Test
    void vmdescDescribesArraysStructsSubsectionsAndDuplicateNames() {
        VmStateDescription d = VmStateDescription.builder("dev", 1)
                .field(uint16("cur_offset").when((v, ver) -> ver == 0))
                .field(uint32("cur_offset"))
                .field(array("regs", FieldKind.UINT64, 2))
                .field(structArray("segs", SEGMENT, 2))
                .field(new VmStateField("st", new FieldKind.Array(new FieldKind.Struct(SEGMENT), 2))
                        .when((v, ver) -> true))
                .field(array("one", FieldKind.UINT8, 1))
                .subsection(SUB_A).subsection(SUB_B)
                .build();
        VmStateValues v = new VmStateValues().put("cur_offset", 5L).put("regs", List.of(1L, 2L))
                .put("segs", List.of(seg(1, 2), seg(3, 4))).put("st", List.of(seg(5, 6), seg(7, 8)))
                .put("one", List.of(9L))
                .putSubsection("dev/b", new VmStateValues().put("y", 1L));
        String json = Vmdesc.toQemuJson(desc(d, v));
        String segDesc = "{\"vmsd_name\": \"segment\", \"version\": 1, \"fields\": [{\"name\": \"selector\", "
                + "\"type\": \"uint32\", \"size\": 4}, {\"name\": \"base\", \"type\": \"uint64\", \"size\": 8}]}";
        assertThat(json).isEqualTo("{\"vmsd_name\": \"dev\", \"version\": 1, \"fields\": ["
                + "{\"name\": \"cur_offset[1]\", \"type\": \"uint32\", \"size\": 4}, "
                + "{\"name\": \"regs\", \"array_len\": 2, \"type\": \"uint64\", \"size\": 8}, "
                + "{\"name\": \"segs\", \"array_len\": 2, \"type\": \"struct\", \"struct\": " + segDesc + ", \"size\": 12}, "
                + "{\"name\": \"st\", \"index\": 0, \"type\": \"struct\", \"struct\": " + segDesc + ", \"size\": 12}, "
                + "{\"name\": \"st\", \"type\": \"struct\", \"struct\": " + segDesc + ", \"size\": 12}, "
                + "{\"name\": \"one\", \"type\": \"uint8\", \"size\": 1}], "
                + "\"subsections\": [{\"vmsd_name\": \"dev/b\", \"version\": 2, \"fields\": "
                + "[{\"name\": \"y\", \"type\": \"uint8\", \"size\": 1}]}]}");
    }

    @Test
    void vmdescTopLevelAndOldStyleDevice() {
        Vmdesc vd = new Vmdesc(4096);
        bytes(w -> VmState.save(w, SUB_A, new VmStateValues().put("x", 1L), vd.addDevice("a", 0)));
        vd.addOldStyleDevice("slirp", 0, 131);
        assertThat(vd.toJson()).isEqualTo("{\"page_size\": 4096, \"devices\": [{\"name\": \"a\", \"instance_id\": 0, "
                + "\"vmsd_name\": \"dev/a\", \"version\": 1, \"fields\": [{\"name\": \"x\", \"type\": \"uint32\", "
                + "\"size\": 4}]}, {\"name\": \"slirp\", \"instance_id\": 0, \"size\": 131, \"fields\": "
                + "[{\"name\": \"data\", \"size\": 131, \"type\": \"buffer\"}]}]}");
        assertThat(Vmdesc.parse(vd.toJson())).isEqualTo(vd.toTree());
    }
}
