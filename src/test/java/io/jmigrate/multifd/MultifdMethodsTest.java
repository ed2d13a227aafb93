package io.jmigrate.multifd;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;
import java.util.zip.Inflater;

import static org.assertj.core.api.Assertions.assertThat;

/** QEMU's compression framing: one stream per channel, flushed at the end of every packet. */
class MultifdMethodsTest {
    private static final int PS = 4096;

    private static ByteBuffer[] pages(long seed, int n) {
        Random r = new Random(seed);
        ByteBuffer[] out = new ByteBuffer[n];
        for (int i = 0; i < n; i++) {
            byte[] b = new byte[PS];
            for (int j = 0; j < PS; j += 64) {
                b[j] = (byte) r.nextInt(4);
            }
            out[i] = ByteBuffer.allocateDirect(PS).put(b).flip();
        }
        return out;
    }

    private static byte[] prepare(MultifdMethods.SendCodec c, ByteBuffer[] pages) {
        ByteBuffer[] iov = new ByteBuffer[pages.length + 1];
        int k = c.prepare(pages, pages.length, iov, 0);
        assertThat(k).isEqualTo(1);
        byte[] out = new byte[iov[0].remaining()];
        iov[0].duplicate().get(out);
        assertThat(out.length).isEqualTo(c.nextPacketSize());
        return out;
    }

    @Test
    void zlibIsOneZlibStreamSyncFlushedPerPacket() throws Exception {
        try (MultifdMethods.SendCodec c = MultifdMethods.newSend(MultifdCompression.ZLIB, PS, 1)) {
            byte[] p1 = prepare(c, pages(1, 3));
            byte[] p2 = prepare(c, pages(2, 2));
            // zlib header only in the first packet; every packet ends on a sync-flush marker
            assertThat(p1[0]).isEqualTo((byte) 0x78);
            assertThat(Arrays.copyOfRange(p1, p1.length - 4, p1.length)).containsExactly(0, 0, 0xff, 0xff);
            assertThat(Arrays.copyOfRange(p2, p2.length - 4, p2.length)).containsExactly(0, 0, 0xff, 0xff);
            // an independent inflater over the concatenation yields the five pages
            Inflater inf = new Inflater();
            byte[] all = new byte[p1.length + p2.length];
            System.arraycopy(p1, 0, all, 0, p1.length);
            System.arraycopy(p2, 0, all, p1.length, p2.length);
            inf.setInput(all);
            byte[] out = new byte[5 * PS + 1];
            int n = 0;
            while (!inf.needsInput()) {
                n += inf.inflate(out, n, out.length - n);
            }
            assertThat(n).isEqualTo(5 * PS);
            ByteBuffer[] a = pages(1, 3);
            ByteBuffer[] b = pages(2, 2);
            for (int i = 0; i < 5; i++) {
                ByteBuffer want = i < 3 ? a[i] : b[i - 3];
                byte[] w = new byte[PS];
                want.get(w);
                assertThat(Arrays.copyOfRange(out, i * PS, (i + 1) * PS)).isEqualTo(w);
            }
        }
    }

    @Test
    void everyMethodRoundTripsAcrossPacketsThroughItsReceiver() throws Exception {
        for (MultifdCompression m : MultifdCompression.values()) {
            try (MultifdMethods.SendCodec tx = MultifdMethods.newSend(m, PS, 3);
                 MultifdMethods.RecvCodec rx = MultifdMethods.newRecv(m, PS)) {
                for (int packet = 0; packet < 4; packet++) {
                    ByteBuffer[] src = pages(10 + packet, 1 + packet * 5);
                    ByteBuffer[] iov = new ByteBuffer[src.length + 1];
                    int k = tx.prepare(src, src.length, iov, 0);
                    java.io.ByteArrayOutputStream wire = new java.io.ByteArrayOutputStream();
                    for (int i = 0; i < k; i++) {
                        byte[] b = new byte[iov[i].remaining()];
                        iov[i].duplicate().get(b);
                        wire.writeBytes(b);
                    }
                    assertThat(wire.size()).isEqualTo(tx.nextPacketSize());
                    ByteBuffer[] dst = new ByteBuffer[src.length];
                    for (int i = 0; i < dst.length; i++) {
                        dst[i] = ByteBuffer.allocateDirect(PS);
                    }
                    rx.receive(java.nio.channels.Channels.newChannel(new java.io.ByteArrayInputStream(wire.toByteArray())),
                            wire.size(), dst, dst.length, "ch", 0);
                    for (int i = 0; i < dst.length; i++) {
                        assertThat(dst[i].flip()).as(m + " packet " + packet + " page " + i).isEqualTo(src[i].rewind());
                    }
                }
            }
        }
    }
}
