package io.jmigrate.multifd;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ScatteringByteChannel;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

class ReadAheadTest {
    /**
     * A channel that, like a socket, has {@code available} bytes queued per call and fills the
     * buffers of a scattering read in order; it counts its calls.
     */
    private static final class Source implements ScatteringByteChannel {
        final byte[] data;
        final int chunk;
        int at;
        int calls;

        Source(byte[] data, int chunk) {
            this.data = data;
            this.chunk = chunk;
        }

        @Override
        public long read(ByteBuffer[] dsts, int offset, int length) {
            calls++;
            if (at == data.length) {
                return -1;
            }
            int budget = Math.min(chunk, data.length - at);
            long n = 0;
            for (int i = offset; i < offset + length && budget > 0; i++) {
                int k = Math.min(budget, dsts[i].remaining());
                dsts[i].put(data, at, k);
                at += k;
                budget -= k;
                n += k;
            }
            return n;
        }

        @Override
        public long read(ByteBuffer[] dsts) {
            return read(dsts, 0, dsts.length);
        }

        @Override
        public int read(ByteBuffer dst) {
            return (int) read(new ByteBuffer[] {dst}, 0, 1);
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
        }
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void mixedReadsReturnTheStreamInOrderWhateverTheChunking() throws IOException {
        byte[] data = random(200_000, 1);
        for (int chunk : new int[] {1, 7, 100, 1344, 5000, 1 << 20}) {
            Source src = new Source(data, chunk);
            ReadAhead in = new ReadAhead(src, 1344, 8);
            ByteBuffer out = ByteBuffer.allocate(data.length);
            Random r = new Random(chunk);
            while (out.hasRemaining()) {
                int want = Math.min(out.remaining(), 1 + r.nextInt(9000));
                if (r.nextBoolean()) {
                    ByteBuffer one = ByteBuffer.allocateDirect(want);
                    ChannelIo.readExactly(in, one);
                    out.put(one.flip());
                } else {
                    int parts = 1 + r.nextInt(8);
                    ByteBuffer[] bufs = new ByteBuffer[parts];
                    int left = want;
                    for (int i = 0; i < parts; i++) {
                        int k = i == parts - 1 ? left : r.nextInt(left + 1);
                        bufs[i] = ByteBuffer.allocateDirect(k);
                        left -= k;
                    }
                    assertThat(ChannelIo.readFully(in, bufs, parts)).isEqualTo(want);
                    for (ByteBuffer b : bufs) {
                        out.put(b.flip());
                    }
                }
                assertThat(in.buffered()).isLessThanOrEqualTo(1344);
            }
            assertThat(out.array()).as("chunk %d", chunk).isEqualTo(data);
            assertThat(in.read(ByteBuffer.allocate(1))).isEqualTo(-1);
        }
    }

    @Test
    void aRamPacketTakesOneReadOnceTheNextHeaderCameWithThePayload() throws IOException {
        int packets = 20;
        int header = RamPacket.length(4096);
        int payload = 128 * 4096;
        byte[] data = random(packets * (header + payload), 2);
        Source src = new Source(data, Integer.MAX_VALUE);
        ReadAhead in = new ReadAhead(src, header, 128);
        ByteBuffer h = ByteBuffer.allocateDirect(header);
        ByteBuffer[] pages = new ByteBuffer[128];
        for (int i = 0; i < 128; i++) {
            pages[i] = ByteBuffer.allocateDirect(4096);
        }
        for (int p = 0; p < packets; p++) {
            h.clear().limit(PacketHeader.SIZE);
            assertThat(ChannelIo.readOrEof(in, h)).isTrue();
            h.limit(header);
            ChannelIo.readExactly(in, h);
            for (ByteBuffer b : pages) {
                b.clear();
            }
            assertThat(ChannelIo.readFully(in, pages, 128)).isEqualTo(payload);
            int base = p * (header + payload);
            for (int i = 0; i < header; i++) {
                assertThat(h.get(i)).isEqualTo(data[base + i]);
            }
            assertThat(pages[127].get(4095)).isEqualTo(data[base + header + payload - 1]);
        }
        // the first packet's header costs one read and every payload one (with the next header)
        assertThat(src.calls).isEqualTo(packets + 1);
        h.clear();
        assertThat(ChannelIo.readOrEof(in, h)).isFalse();
    }

    @Test
    void aReadNeverWaitsForMoreThanTheCallerAsked() throws IOException {
        // the channel has exactly the caller's bytes: one call, nothing read ahead, no second call
        byte[] data = random(100, 3);
        Source src = new Source(data, 60);
        ReadAhead in = new ReadAhead(src, 64, 1);
        ByteBuffer b = ByteBuffer.allocate(50);
        assertThat(in.read(b)).isEqualTo(50);
        assertThat(in.buffered()).isEqualTo(10);
        assertThat(src.calls).isEqualTo(1);
        ByteBuffer rest = ByteBuffer.allocate(50);
        assertThat(in.read(rest)).isEqualTo(10);
        assertThat(src.calls).isEqualTo(1);
    }
}
