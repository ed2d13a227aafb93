package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.StreamException;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class MultifdWireTest {
    private static final byte[] UUID = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    private static final int PS = 4096;
    private final MultifdBlock ram = new MultifdBlock("pc.ram", Arena.ofAuto().allocate(64 * PS), PS);
    private final PageSink sink = Map.of("pc.ram", ram)::get;

    // ---- init ---------------------------------------------------------------------------------

    @Test
    void initRoundTripIsQemuLayout() {
        ByteBuffer b = new MultifdInit(UUID, 3).toBuffer();
        assertThat(b.remaining()).isEqualTo(64);
        assertThat(b.getInt(0)).isEqualTo(0x11223344);
        assertThat(b.getInt(4)).isEqualTo(1);
        assertThat(b.get(8)).isEqualTo((byte) 1);
        assertThat(b.get(24)).isEqualTo((byte) 3);
        for (int i = 25; i < 64; i++) {
            assertThat(b.get(i)).isZero();
        }
        MultifdInit back = MultifdInit.decode(b, "ch").validate(UUID, 4, "ch");
        assertThat(back).isEqualTo(new MultifdInit(UUID, 3));
    }

    @Test
    void initRejectsWrongMagic() {
        ByteBuffer b = new MultifdInit(UUID, 0).toBuffer();
        b.putInt(0, 0x11223345);
        assertThatThrownBy(() -> MultifdInit.decode(b, "ch")).isInstanceOf(StreamException.class)
                .hasMessageContaining("ch at byte offset 0").hasMessageContaining("magic 0x11223345, expected 0x11223344");
    }

    @Test
    void initRejectsWrongVersion() {
        ByteBuffer b = new MultifdInit(UUID, 0).toBuffer();
        b.putInt(4, 2);
        assertThatThrownBy(() -> MultifdInit.decode(b, "ch")).hasMessageContaining("version 2, expected 1");
    }

    @Test
    void initRejectsUuidMismatch() {
        MultifdInit i = MultifdInit.decode(new MultifdInit(UUID, 0).toBuffer(), "ch");
        assertThatThrownBy(() -> i.validate(new byte[16], 2, "ch")).isInstanceOf(MigrationException.class)
                .hasMessageContaining("UUID 0102030405060708090a0b0c0d0e0f10 does not match")
                .extracting(e -> ((MigrationException) e).category()).isEqualTo(Category.MISMATCH);
    }

    @Test
    void initRejectsIdNotBelowChannelCount() {
        MultifdInit i = MultifdInit.decode(new MultifdInit(UUID, 2).toBuffer(), "ch");
        assertThatThrownBy(() -> i.validate(UUID, 2, "ch")).hasMessageContaining("channel id 2 is out of range")
                .hasMessageContaining("ids 0..1");
    }

    @Test
    void initRejectsTruncated() {
        assertThatThrownBy(() -> MultifdInit.decode(ByteBuffer.allocate(10), "ch"))
                .hasMessageContaining("expected 64 bytes, got 10");
    }

    // ---- header -------------------------------------------------------------------------------

    @Test
    void headerRoundTrip() {
        ByteBuffer b = ByteBuffer.allocate(12);
        PacketHeader.encode(b, 0, PacketHeader.FLAG_SYNC | PacketHeader.FLAG_ZSTD);
        PacketHeader h = PacketHeader.decode(b, 0, "ch", 64);
        assertThat(h.isSync()).isTrue();
        assertThat(h.isDeviceState()).isFalse();
        assertThat(h.compression()).isEqualTo(PacketHeader.FLAG_ZSTD);
    }

    @Test
    void headerRejectsWrongMagicVersionUnknownFlagsAndSyncOnDeviceState() {
        ByteBuffer b = ByteBuffer.allocate(12);
        PacketHeader.encode(b, 0, 0);
        b.putInt(0, 0xdeadbeef);
        assertThatThrownBy(() -> PacketHeader.decodeFlags(b, 0, "ch", 1408))
                .hasMessageContaining("ch at byte offset 1408").hasMessageContaining("magic 0xdeadbeef");
        PacketHeader.encode(b, 0, 0);
        b.putInt(4, 7);
        assertThatThrownBy(() -> PacketHeader.decodeFlags(b, 0, "ch", 0)).hasMessageContaining("version 7, expected 1");
        PacketHeader.encode(b, 0, 0x80);
        assertThatThrownBy(() -> PacketHeader.decodeFlags(b, 0, "ch", 0)).hasMessageContaining("unknown multifd packet flags 0x00000080");
        PacketHeader.encode(b, 0, 0x41);
        assertThatThrownBy(() -> PacketHeader.decodeFlags(b, 0, "ch", 0)).hasMessageContaining("SYNC flag set");
    }

    // ---- RAM packet ---------------------------------------------------------------------------

    private RamPacket filled() {
        RamPacket p = new RamPacket(PS);
        p.reset(0).pagesAlloc(128).normalPages(2).zeroPages(1).nextPacketSize(2 * PS).packetNum(42).blockName("pc.ram")
                .offset(0, 0).offset(1, 5 * PS).offset(2, 63 * PS);
        return p;
    }

    @Test
    void ramPacketRoundTrip() {
        RamPacket p = filled();
        assertThat(p.length()).isEqualTo(1344);
        assertThat(RamPacket.length(65536)).isEqualTo(320 + 8 * 8);
        ByteBuffer wire = ByteBuffer.allocate(p.length()).put(p.buffer()).flip();
        RamPacket q = new RamPacket(PS);
        q.buffer().put(wire);
        assertThat(q.validate(sink, 0, "ch", 64)).isSameAs(ram);
        assertThat(q.packetNum()).isEqualTo(42);
        assertThat(q.normalPages()).isEqualTo(2);
        assertThat(q.zeroPages()).isEqualTo(1);
        assertThat(q.offset(1)).isEqualTo(5 * PS);
        assertThat(q.blockName()).isEqualTo("pc.ram");
        assertThat(q.payloadLength(0)).isEqualTo(2 * PS);
    }

    @Test
    void ramPacketRejectsPagesAllocAboveCapacity() {
        RamPacket p = filled().pagesAlloc(129);
        assertThatThrownBy(() -> p.validate(sink, 0, "ch", 64)).hasMessageContaining("ch at byte offset 76")
                .hasMessageContaining("pages_alloc 129 exceeds this destination's capacity of 128");
    }

    @Test
    void ramPacketRejectsNormalAbovePagesAlloc() {
        RamPacket p = filled().pagesAlloc(4).normalPages(5);
        assertThatThrownBy(() -> p.validate(sink, 0, "ch", 0)).hasMessageContaining("normal_pages 5 exceeds pages_alloc 4");
    }

    @Test
    void ramPacketRejectsZeroAboveRemainder() {
        RamPacket p = filled().pagesAlloc(4).normalPages(2).zeroPages(3);
        assertThatThrownBy(() -> p.validate(sink, 0, "ch", 0))
                .hasMessageContaining("zero_pages 3 exceeds pages_alloc - normal_pages = 2");
    }

    @Test
    void ramPacketRejectsUnterminatedName() {
        RamPacket p = filled();
        for (int i = 0; i < 256; i++) {
            p.buffer().put(64 + i, (byte) 'a');
        }
        assertThatThrownBy(() -> p.validate(sink, 0, "ch", 0)).hasMessageContaining("not NUL-terminated");
    }

    @Test
    void ramPacketRejectsUnknownBlock() {
        RamPacket p = filled().blockName("pc.rom");
        assertThatThrownBy(() -> p.validate(sink, 0, "ch", 0)).hasMessageContaining("unknown RAMBlock \"pc.rom\"");
    }

    @Test
    void ramPacketRejectsOffsetOutsideBlock() {
        RamPacket p = filled().offset(2, 64 * PS);
        assertThatThrownBy(() -> p.validate(sink, 0, "ch", 0))
                .hasMessageContaining("at byte offset " + (320 + 16))
                .hasMessageContaining("offset[2] 0x40000 is outside RAMBlock pc.ram");
        RamPacket q = filled().offset(0, 17);
        assertThatThrownBy(() -> q.validate(sink, 0, "ch", 0)).hasMessageContaining("offset[0] 0x11");
    }

    @Test
    void ramPacketRejectsPayloadLengthMismatch() {
        RamPacket p = filled().nextPacketSize(PS);
        assertThatThrownBy(() -> p.validate(sink, 0, "ch", 0))
                .hasMessageContaining("next_packet_size 4096 does not match normal_pages 2 x page size 4096");
        RamPacket z = filled().reset(PacketHeader.FLAG_ZLIB).pagesAlloc(128).normalPages(1).blockName("pc.ram")
                .nextPacketSize(RamPacket.MAX_COMPRESSED + 1);
        assertThatThrownBy(() -> z.validate(sink, PacketHeader.FLAG_ZLIB, "ch", 0))
                .hasMessageContaining("compressed next_packet_size 1048577");
    }

    @Test
    void ramPacketRejectsWrongCompression() {
        RamPacket p = filled();
        assertThatThrownBy(() -> p.validate(sink, PacketHeader.FLAG_ZSTD, "ch", 0))
                .hasMessageContaining("compression flags 0x00, expected 0x04 (zstd)");
    }

    @Test
    void emptyPacketWithStaleSizeIsValidAndCarriesNoPayload() {
        // QEMU < 9.0 repeats the previous next_packet_size in packets without pages
        RamPacket p = new RamPacket(PS).reset(PacketHeader.FLAG_SYNC).pagesAlloc(128).nextPacketSize(3 * PS);
        assertThat(p.validate(sink, 0, "ch", 0)).isNull();
        assertThat(p.payloadLength(0)).isZero();
    }

    // ---- device state -------------------------------------------------------------------------

    @Test
    void deviceStateRoundTrip() {
        ByteBuffer b = ByteBuffer.allocate(276);
        new DeviceStatePacket("0000:00:05.0/vfio", 7, 1000).encode(b, 0);
        assertThat(b.getInt(8)).isEqualTo(0x40);
        DeviceStatePacket d = DeviceStatePacket.decode(b, 0, 4096, "ch", 64);
        assertThat(d).isEqualTo(new DeviceStatePacket("0000:00:05.0/vfio", 7, 1000));
    }

    @Test
    void deviceStateRejectsUnterminatedIdstrEmptyAndOversize() {
        ByteBuffer b = ByteBuffer.allocate(276);
        new DeviceStatePacket("dev", 0, 10).encode(b, 0);
        b.put(12 + 255, (byte) 'x');
        assertThatThrownBy(() -> DeviceStatePacket.decode(b, 0, 4096, "ch", 64))
                .hasMessageContaining("unterminated multifd device state idstr");
        new DeviceStatePacket("dev", 0, 10).encode(b, 0);
        b.putInt(272, 0);
        assertThatThrownBy(() -> DeviceStatePacket.decode(b, 0, 4096, "ch", 64))
                .hasMessageContaining("received empty device state packet");
        b.putInt(272, 4097);
        assertThatThrownBy(() -> DeviceStatePacket.decode(b, 0, 4096, "ch", 64))
                .hasMessageContaining("ch at byte offset 336").hasMessageContaining("4097 exceeds the maximum of 4096");
    }
}
