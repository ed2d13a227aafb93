package io.jmigrate.stream;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.Pipe;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class QemuFileTest {

    @Test
    void primitivesRoundTripBigEndian() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        QemuFileWriter w = new QemuFileWriter(out, "w");
        w.putU8(0xab).putBe16(0x1234).putBe32(0xdeadbeef).putBe64(0x0102030405060708L).putCountedString("ram");
        w.flush();
        byte[] b = out.toByteArray();
        assertThat(b).startsWith(0xab - 256, 0x12, 0x34, 0xde - 256, 0xad - 256, 0xbe - 256, 0xef - 256, 1, 2, 3, 4, 5,
                6, 7, 8, 3, 'r', 'a', 'm');
        assertThat(w.position()).isEqualTo(b.length);

        QemuFileReader r = QemuFileReader.of(b, "r");
        assertThat(r.readU8("u8")).isEqualTo(0xab);
        assertThat(r.readBe16("be16")).isEqualTo(0x1234);
        assertThat(r.readBe32("be32")).isEqualTo(0xdeadbeef);
        assertThat(r.readBe64("be64")).isEqualTo(0x0102030405060708L);
        assertThat(r.peekU8()).isEqualTo(3);
        assertThat(r.readCountedString("name")).isEqualTo("ram");
        assertThat(r.position()).isEqualTo(b.length);
        assertThat(r.atEof()).isTrue();
    }

    @Test
    void truncatedReadNamesOffsetAndWhatWasExpectedAndIsSticky() {
        QemuFileReader r = QemuFileReader.of(new byte[] {0, 0, 0, 1, 2, 3}, "s");
        r.readBe32("first");
        assertThatThrownBy(() -> r.readBe32("section id"))
                .isInstanceOf(StreamException.class)
                .hasMessage("s at byte offset 4: truncated stream: expected 4 byte(s) of section id but only 2 remain");
        assertThatThrownBy(() -> r.readU8("anything")).hasMessageContaining("byte offset 4");
    }

    @Test
    void lengthsAreCheckedBeforeAllocation() {
        QemuFileReader r = new QemuFileReader(Channels.newChannel(new java.io.ByteArrayInputStream(new byte[8])), "s",
                new StreamLimits(16, 16, 16));
        assertThatThrownBy(() -> r.readBytes(1L << 40, "device buffer"))
                .hasMessageContaining("length 1099511627776 of device buffer exceeds the maximum of 16 bytes");
    }

    @Test
    void largeSegmentsGoThroughGatheringWritesAndReadStraightIntoSegments() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment src = arena.allocate(200_000);
            for (long i = 0; i < src.byteSize(); i++) {
                src.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 31));
            }
            Pipe pipe = Pipe.open();
            Thread writer = Thread.ofPlatform().start(() -> {
                try (QemuFileWriter w = new QemuFileWriter(pipe.sink(), "pipe")) {
                    w.putBe32(7).putSegment(src).putBe32(9);
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            QemuFileReader r = new QemuFileReader(pipe.source(), "pipe", StreamLimits.DEFAULT);
            assertThat(r.readBe32("a")).isEqualTo(7);
            MemorySegment dst = arena.allocate(200_000);
            r.readFully(dst, "pages");
            assertThat(r.readBe32("b")).isEqualTo(9);
            writer.join();
            assertThat(dst.mismatch(src)).isEqualTo(-1);
            assertThat(r.position()).isEqualTo(200_008);
        }
    }

    @Test
    void peekDoesNotConsume() {
        QemuFileReader r = QemuFileReader.of(new byte[] {5, 4, 'a', 'b', 'c', 'd'}, "s");
        assertThat(r.peek(1, 3)).containsExactly(4, 'a', 'b');
        assertThat(r.peek(4, 10)).containsExactly('c', 'd');
        assertThat(r.readU8("x")).isEqualTo(5);
        assertThat(ByteBuffer.wrap(r.readBytes(5, "rest")).get(0)).isEqualTo((byte) 4);
    }
}
