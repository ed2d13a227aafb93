package io.jmigrate.savevm;

import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import io.jmigrate.stream.StreamException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.ByteArrayOutputStream;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class StreamFramingTest {

    private static byte[] bytes(Consumer<QemuFileWriter> body) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        QemuFileWriter w = new QemuFileWriter(out, "test");
        body.accept(w);
        w.flush();
        return out.toByteArray();
    }

    @Test
    void fileHeaderRoundTrip() {
        byte[] b = bytes(StreamFraming::writeFileHeader);
        assertThat(b).containsExactly('Q', 'E', 'V', 'M', 0, 0, 0, 3);
        StreamFraming.readFileHeader(QemuFileReader.of(b, "s"));
    }

    @Test
    void fileHeaderRejections() {
        assertThatThrownBy(() -> StreamFraming.readFileHeader(QemuFileReader.of(new byte[] {'Q', 'E', 'V', 'X', 0, 0, 0, 3}, "s")))
                .hasMessageContaining("byte offset 0").hasMessageContaining("wrong file magic 0x51455658, expected 0x5145564d");
        assertThatThrownBy(() -> StreamFraming.readFileHeader(QemuFileReader.of(new byte[] {'Q', 'E', 'V', 'M', 0, 0, 0, 2}, "s")))
                .hasMessageContaining("byte offset 4").hasMessageContaining("version 2 is obsolete");
        assertThatThrownBy(() -> StreamFraming.readFileHeader(QemuFileReader.of(new byte[] {'Q', 'E', 'V', 'M', 0, 0, 0, 9}, "s")))
                .hasMessageContaining("unsupported stream version 9, expected 3");
    }

    @ParameterizedTest
    @EnumSource(value = SectionType.class, names = {"START", "PART", "END", "FULL"})
    void sectionHeaderAndFooterRoundTrip(SectionType type) {
        SectionHeader h = type.hasFullHeader()
                ? SectionHeader.full(type, 7, "0000:00:05.0/vfio", 2, 1)
                : SectionHeader.partEnd(type, 7);
        byte[] b = bytes(w -> {
            StreamFraming.writeSectionHeader(w, h);
            StreamFraming.writeFooter(w, 7);
        });
        QemuFileReader r = QemuFileReader.of(b, "s");
        SectionType t = StreamFraming.readSectionType(r);
        SectionHeader back = StreamFraming.readSectionHeader(r, t, 0);
        assertThat(back).isEqualTo(new SectionHeader(type, 7, h.idstr(), h.instanceId(), h.versionId(), 0));
        StreamFraming.readFooter(r, 7, "vfio");
        assertThat(r.atEof()).isTrue();
    }

    @Test
    void unknownSectionType() {
        QemuFileReader r = QemuFileReader.of(new byte[] {0, 0x42}, "s");
        assertThat(StreamFraming.readSectionType(r)).isEqualTo(SectionType.EOF);
        assertThatThrownBy(() -> StreamFraming.readSectionType(r))
                .isInstanceOf(StreamException.class)
                .hasMessageContaining("byte offset 1: unknown section type 0x42");
    }

    @Test
    void footerErrors() {
        byte[] wrongId = bytes(w -> StreamFraming.writeFooter(w, 3));
        assertThatThrownBy(() -> StreamFraming.readFooter(QemuFileReader.of(wrongId, "s"), 4, "section 4 'timer'"))
                .hasMessageContaining("byte offset 0")
                .hasMessageContaining("section footer id mismatch for section 4 'timer': expected 4, got 3");
        assertThatThrownBy(() -> StreamFraming.readFooter(QemuFileReader.of(new byte[] {0, 0, 0, 0, 4}, "s"), 4, "x"))
                .hasMessageContaining("missing section footer for x: expected byte 0x7e, got 0x00");
    }

    @Test
    void everyCommandRoundTrips() {
        for (MigCommand c : MigCommand.values()) {
            int len = c.length == MigCommand.VARIABLE ? (c == MigCommand.POSTCOPY_ADVISE ? 16 : 5) : c.length;
            Command cmd = new Command(c, new byte[len]);
            byte[] b = bytes(w -> StreamFraming.writeCommand(w, cmd));
            QemuFileReader r = QemuFileReader.of(b, "s");
            assertThat(StreamFraming.readSectionType(r)).isEqualTo(SectionType.COMMAND);
            assertThat(StreamFraming.readCommand(r)).isEqualTo(cmd);
        }
        assertThat(bytes(w -> StreamFraming.writeCommand(w, Command.of(MigCommand.SWITCHOVER_START))))
                .containsExactly(0x08, 0x00, 0x0b, 0x00, 0x00);
    }

    @Test
    void commandRejections() {
        assertThatThrownBy(() -> StreamFraming.readCommand(QemuFileReader.of(new byte[] {0, 12, 0, 0}, "s")))
                .hasMessageContaining("byte offset 0").hasMessageContaining("unknown QEMU_VM_COMMAND 12, expected 1..11");
        assertThatThrownBy(() -> StreamFraming.readCommand(QemuFileReader.of(new byte[] {0, 0, 0, 0}, "s")))
                .hasMessageContaining("unknown QEMU_VM_COMMAND 0");
        assertThatThrownBy(() -> StreamFraming.readCommand(QemuFileReader.of(new byte[] {0, 11, 0, 1, 0}, "s")))
                .hasMessageContaining("MIG_CMD_SWITCHOVER_START has length 1, expected 0");
    }

    @Test
    void vmdescRoundTripAndBound() {
        byte[] b = bytes(w -> StreamFraming.writeVmdesc(w, "{\"page_size\":4096}"));
        QemuFileReader r = QemuFileReader.of(b, "s");
        assertThat(StreamFraming.readSectionType(r)).isEqualTo(SectionType.VMDESCRIPTION);
        assertThat(StreamFraming.readVmdesc(r)).isEqualTo("{\"page_size\":4096}");
        assertThatThrownBy(() -> StreamFraming.readVmdesc(QemuFileReader.of(new byte[] {(byte) 0xff, 0, 0, 0}, "s")))
                .hasMessageContaining("vmdesc JSON exceeds the maximum");
    }
}
