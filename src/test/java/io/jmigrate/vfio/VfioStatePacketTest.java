package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class VfioStatePacketTest {

    @Test
    void roundTripIsBigEndian() {
        ByteBuffer b = ByteBuffer.allocate(16);
        new VfioStatePacket(0x01020304L, true).encode(b, 0);
        b.put(12, (byte) 9).put(13, (byte) 8).put(14, (byte) 7).put(15, (byte) 6);
        assertThat(b.array()).startsWith(0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 1);
        VfioStatePacket p = VfioStatePacket.decode(b, "vf0/vfio");
        assertThat(p).isEqualTo(new VfioStatePacket(0x01020304L, true));
        assertThat(b.position()).isEqualTo(12);
        assertThat(b.remaining()).isEqualTo(4);

        ByteBuffer d = ByteBuffer.allocate(12);
        new VfioStatePacket(0xfffffffeL, false).encode(d, 0);
        assertThat(VfioStatePacket.decode(d, "x")).isEqualTo(new VfioStatePacket(0xfffffffeL, false));
        assertThat(d.hasRemaining()).isFalse();
    }

    @Test
    void rejections() {
        assertRejected(ByteBuffer.allocate(11), "11 bytes is shorter than the 12-byte");
        ByteBuffer v = ByteBuffer.allocate(20).putInt(0, 1).putInt(4, 5);
        assertRejected(v, "idx 5 has version 1, expected 0");
        ByteBuffer idx = ByteBuffer.allocate(12).putInt(4, -1);
        assertRejected(idx, "packet index is invalid");
        ByteBuffer flags = ByteBuffer.allocate(12).putInt(4, 3).putInt(8, 2);
        assertRejected(flags, "idx 3 has unknown flags 0x2");
        assertThatThrownBy(() -> new VfioStatePacket(-1, false)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new VfioStatePacket(VfioStatePacket.IDX_INVALID, false))
                .isInstanceOf(IllegalArgumentException.class);
    }

    private static void assertRejected(ByteBuffer b, String message) {
        assertThatThrownBy(() -> VfioStatePacket.decode(b, "0000:00:05.0/vfio"))
                .isInstanceOfSatisfying(MigrationException.class, e -> {
                    assertThat(e.category()).isEqualTo(Category.PROTOCOL);
                    assertThat(e).hasMessageContaining("VFIO device 0000:00:05.0/vfio").hasMessageContaining(message);
                });
        assertThat(b.position()).isZero();
    }
}
