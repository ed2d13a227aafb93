package io.jmigrate.stream;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.WritableByteChannel;

import static org.assertj.core.api.Assertions.assertThat;

/** queuePage: pages interleaved with puts come out in order, across buffer and iov limits. */
class QemuFileWriterQueueTest {

    private static byte[] run(WritableByteChannel ch, ByteArrayOutputStream sink, ByteArrayOutputStream expect,
                              int pages) {
        ByteBuffer ram = ByteBuffer.allocateDirect(pages * 4096);
        for (int i = 0; i < ram.capacity(); i++) {
            ram.put(i, (byte) (i * 31 + i / 4096));
        }
        QemuFileWriter w = new QemuFileWriter(ch, "test");
        for (int p = 0; p < pages; p++) {
            w.putBe64(p * 4096L | 8);
            expect.writeBytes(ByteBuffer.allocate(8).putLong(p * 4096L | 8).array());
            if (p % 7 == 0) {
                byte[] name = new byte[200];
                name[0] = (byte) p;
                w.putBytes(name); // pushes the 64 KiB buffer past its end now and then
                expect.writeBytes(name);
            }
            w.queuePage(ram, p * 4096, 4096);
            byte[] page = new byte[4096];
            ram.get(p * 4096, page);
            expect.writeBytes(page);
            assertThat(w.position()).isEqualTo(expect.size());
        }
        w.putBe64(0x10);
        expect.writeBytes(ByteBuffer.allocate(8).putLong(0x10).array());
        w.flush();
        assertThat(w.position()).isEqualTo(expect.size());
        return sink.toByteArray();
    }

    @Test
    void gatheringChannel() {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        WritableByteChannel plain = Channels.newChannel(sink);
        GatheringByteChannel g = new GatheringByteChannel() {
            @Override
            public long write(ByteBuffer[] srcs, int offset, int length) throws java.io.IOException {
                long n = 0;
                for (int i = offset; i < offset + length; i++) {
                    // write at most 1000 bytes per buffer per call: partial gathering writes
                    ByteBuffer b = srcs[i];
                    int k = Math.min(1000, b.remaining());
                    ByteBuffer part = b.duplicate();
                    part.limit(part.position() + k);
                    n += plain.write(part);
                    b.position(b.position() + k);
                    if (b.hasRemaining()) {
                        break;
                    }
                }
                return n;
            }

            @Override
            public long write(ByteBuffer[] srcs) throws java.io.IOException {
                return write(srcs, 0, srcs.length);
            }

            @Override
            public int write(ByteBuffer src) throws java.io.IOException {
                return plain.write(src);
            }

            @Override
            public boolean isOpen() {
                return true;
            }

            @Override
            public void close() {
            }
        };
        ByteArrayOutputStream expect = new ByteArrayOutputStream();
        assertThat(run(g, sink, expect, 300)).isEqualTo(expect.toByteArray());
    }

    @Test
    void plainChannel() {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        ByteArrayOutputStream expect = new ByteArrayOutputStream();
        assertThat(run(Channels.newChannel(sink), sink, expect, 130)).isEqualTo(expect.toByteArray());
    }
}
