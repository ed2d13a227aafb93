package io.jmigrate.savevm;

import io.jmigrate.common.MigrationException;
import io.jmigrate.stream.QemuFileReader;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.HexFormat;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ReturnPathMessageTest {

    private static byte[] bytes(ReturnPathMessage m) {
        ByteBuffer b = m.encode();
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    private static ReturnPathMessage decode(String hex) {
        return ReturnPathMessage.read(QemuFileReader.of(HexFormat.of().parseHex(hex), "rp"));
    }

    @Test
    void everyTypeRoundTripsWithQemuBytes() {
        assertThat(HexFormat.of().formatHex(bytes(new ReturnPathMessage.Shut(0)))).isEqualTo("0001000400000000");
        assertThat(HexFormat.of().formatHex(bytes(new ReturnPathMessage.Pong(1)))).isEqualTo("0002000400000001");
        assertThat(HexFormat.of().formatHex(bytes(new ReturnPathMessage.SwitchoverAck()))).isEqualTo("00070000");
        assertThat(HexFormat.of().formatHex(bytes(new ReturnPathMessage.ReqPages(0x1000, 4096))))
                .isEqualTo("0004000c000000000000100000001000");
        assertThat(HexFormat.of().formatHex(bytes(new ReturnPathMessage.ReqPagesId(0x2000, 4096, "ram"))))
                .isEqualTo("00030010" + "0000000000002000" + "00001000" + "03" + "72616d");
        assertThat(HexFormat.of().formatHex(bytes(new ReturnPathMessage.RecvBitmap("ram")))).isEqualTo("000500040372616d");
        List<ReturnPathMessage> all = List.of(new ReturnPathMessage.Shut(1), new ReturnPathMessage.Pong(-7),
                new ReturnPathMessage.ReqPagesId(1L << 40, 12, "pc.ram"), new ReturnPathMessage.ReqPages(8192, 1),
                new ReturnPathMessage.RecvBitmap("jm.ram"), new ReturnPathMessage.ResumeAck(3),
                new ReturnPathMessage.SwitchoverAck());
        for (ReturnPathMessage m : all) {
            assertThat(ReturnPathMessage.read(QemuFileReader.of(bytes(m), "rp"))).isEqualTo(m);
        }
    }

    @Test
    void rejectsInvalidUnknownAndBadLengths() {
        assertThatThrownBy(() -> decode("00000000")).isInstanceOf(MigrationException.class)
                .hasMessageContaining("unknown return-path message type 0");
        assertThatThrownBy(() -> decode("00080000")).hasMessageContaining("unknown return-path message type 8");
        assertThatThrownBy(() -> decode("000100020000")).hasMessageContaining("type 1 has length 2, expected 4");
        assertThatThrownBy(() -> decode("00070001ff")).hasMessageContaining("type 7 has length 1, expected 0");
        assertThatThrownBy(() -> decode("00050001")).hasMessageContaining("expected 2..");
        assertThatThrownBy(() -> decode("0005000405726100")).hasMessageContaining("name length 5 but 3 bytes follow");
        assertThatThrownBy(() -> decode("00020004000000")).isInstanceOf(MigrationException.class);
        assertThatThrownBy(() -> new ReturnPathMessage.RecvBitmap("")).isInstanceOf(IllegalArgumentException.class);
    }
}
