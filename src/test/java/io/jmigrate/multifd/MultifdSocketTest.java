package io.jmigrate.multifd;

import io.jmigrate.channel.IncomingListener;
import io.jmigrate.channel.MigrationUri;
import io.jmigrate.channel.Transports;
import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Sender and receiver threads over real loopback TCP and UNIX sockets in one JVM. */
@Timeout(60)
class MultifdSocketTest {
    private static final int PS = 4096;
    private static final Duration T = Duration.ofSeconds(20);

    @TempDir
    Path tmp;

    /** A guest: two blocks, random pages with ~30% zero pages. */
    private static Map<String, MemorySegment> guest(Arena arena, long seed) {
        Random r = new Random(seed);
        Map<String, MemorySegment> m = new java.util.LinkedHashMap<>();
        m.put("pc.ram", arena.allocate(1024L * PS, PS));
        m.put("vga.vram", arena.allocate(200L * PS, PS));
        byte[] page = new byte[PS];
        for (MemorySegment s : m.values()) {
            for (long off = 0; off < s.byteSize(); off += PS) {
                if (r.nextInt(10) < 3) {
                    continue;
                }
                r.nextBytes(page);
                MemorySegment.copy(page, 0, s, ValueLayout.JAVA_BYTE, off, PS);
            }
        }
        return m;
    }

    private static String digest(MemorySegment s) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        md.update(s.asByteBuffer());
        return HexFormat.of().formatHex(md.digest());
    }

    private static Map<String, MultifdBlock> blocks(Map<String, MemorySegment> m) {
        Map<String, MultifdBlock> out = new java.util.LinkedHashMap<>();
        m.forEach((k, v) -> out.put(k, new MultifdBlock(k, v, PS)));
        return out;
    }

    private record Pair(MultifdSender tx, MultifdReceiver rx, FirstError srcErr, FirstError dstErr, IncomingListener l) {
    }

    private Pair connect(MigrationUri uri, MultifdConfig cfg, PageSink sink, DeviceStateSink dev) {
        IncomingListener l = IncomingListener.bind(uri);
        FirstError dstErr = new FirstError();
        MultifdReceiver rx = new MultifdReceiver(cfg, sink, dev, dstErr);
        List<SocketChannel> chans = new ArrayList<>();
        for (int i = 0; i < cfg.channels(); i++) {
            chans.add(Transports.connect(l.address(), T));
        }
        FirstError srcErr = new FirstError();
        MultifdSender tx = new MultifdSender(cfg, chans, srcErr);
        tx.start();
        for (int i = 0; i < cfg.channels(); i++) {
            IncomingListener.Incoming in = l.accept(T);
            assertThat(in.main()).isFalse();
            rx.addChannel(in.channel(), in.description());
        }
        rx.awaitChannels();
        return new Pair(tx, rx, srcErr, dstErr, l);
    }

    private void migrate(MigrationUri uri, MultifdConfig cfg) throws Exception {
        try (Arena arena = Arena.ofShared()) {
            Map<String, MemorySegment> src = guest(arena, 7);
            Map<String, MemorySegment> dst = new java.util.LinkedHashMap<>();
            src.forEach((k, v) -> dst.put(k, arena.allocate(v.byteSize(), PS)));
            // stale destination contents: zero pages must clear pages received before
            dst.get("pc.ram").fill((byte) 0x55);
            Map<String, MultifdBlock> sb = blocks(src);
            Map<String, MultifdBlock> db = blocks(dst);
            for (long off = 0; off < dst.get("pc.ram").byteSize(); off += PS) {
                db.get("pc.ram").markReceived(off);
            }
            Map<String, List<byte[]>> devState = new ConcurrentHashMap<>();
            DeviceStateSink dev = (id, inst, data) -> {
                byte[] b = new byte[data.remaining()];
                data.get(b);
                devState.computeIfAbsent(id + "#" + inst, k -> java.util.Collections.synchronizedList(new ArrayList<>()))
                        .add(b);
            };
            Pair p = connect(uri, cfg, db::get, dev);
            // main loader: pairs every SYNC round with a flush
            ExecutorService mainLoader = Executors.newSingleThreadExecutor();
            int rounds = 2;
            Future<?> loader = mainLoader.submit(() -> {
                for (int i = 0; i < rounds + 1; i++) {
                    p.rx().recvSyncMain();
                }
                return null;
            });
            for (int round = 0; round < rounds; round++) {
                for (MultifdBlock b : sb.values()) {
                    for (long off = 0; off < b.usedLength(); off += PS) {
                        p.tx().queuePage(b, off);
                    }
                }
                p.tx().flushAndSync();
            }
            // device state from two threads while RAM is idle: dev0 queues copies, dev1 hands its
            // direct buffers over and refills the spares it gets back
            ExecutorService savers = Executors.newFixedThreadPool(2);
            List<Future<?>> fs = new ArrayList<>();
            for (int t = 0; t < 2; t++) {
                int dev0 = t;
                fs.add(savers.submit(() -> {
                    ByteBuffer spare = null;
                    for (int i = 0; i < 20; i++) {
                        int len = 12 + 1000 * (i + 1);
                        if (dev0 == 0) {
                            ByteBuffer buf = ByteBuffer.allocate(len).order(ByteOrder.BIG_ENDIAN);
                            buf.putInt(0, i);
                            p.tx().queueDeviceState("dev" + dev0 + "/vfio", dev0, buf);
                            continue;
                        }
                        ByteBuffer buf = spare != null && spare.capacity() >= len ? spare : ByteBuffer.allocateDirect(len);
                        buf.clear().limit(len);
                        for (int j = 0; j < len; j++) {
                            buf.put(j, (byte) i);
                        }
                        spare = p.tx().queueDeviceStateOwned("dev" + dev0 + "/vfio", dev0, buf);
                    }
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get(30, TimeUnit.SECONDS);
            }
            savers.shutdown();
            p.tx().flushAndSync();
            loader.get(30, TimeUnit.SECONDS);
            mainLoader.shutdown();
            p.tx().close();
            assertThat(p.rx().awaitEnd(T)).isTrue();
            p.rx().close();
            p.l().close();
            assertThat(p.srcErr().get()).isNull();
            assertThat(p.dstErr().get()).isNull();
            for (String k : src.keySet()) {
                assertThat(digest(dst.get(k))).as(k).isEqualTo(digest(src.get(k)));
            }
            assertThat(devState).containsOnlyKeys("dev0/vfio#0", "dev1/vfio#1");
            assertThat(devState.get("dev0/vfio#0")).hasSize(20);
            assertThat(devState.get("dev1/vfio#1")).extracting(b -> b.length).containsExactlyInAnyOrderElementsOf(
                    java.util.stream.IntStream.range(0, 20).map(i -> 12 + 1000 * (i + 1)).boxed().toList());
            for (byte[] b : devState.get("dev1/vfio#1")) {
                int i = (b.length - 12) / 1000 - 1;
                assertThat(b).as("handed-over packet %d arrives as it was filled", i).containsOnly((byte) i);
            }
            List<ChannelStats> tx = p.tx().stats();
            List<ChannelStats> rx = p.rx().stats();
            long pages = (1024 + 200) * rounds;
            assertThat(tx.stream().mapToLong(s -> s.normalPages() + s.zeroPages()).sum()).isEqualTo(pages);
            assertThat(rx.stream().mapToLong(s -> s.normalPages() + s.zeroPages()).sum()).isEqualTo(pages);
            assertThat(rx.stream().mapToLong(ChannelStats::syncPackets).sum()).isEqualTo(3L * cfg.channels());
            assertThat(rx.stream().mapToLong(ChannelStats::deviceStatePackets).sum()).isEqualTo(40);
            if (cfg.zeroPageDetection() == ZeroPageDetection.MULTIFD) {
                assertThat(rx.stream().mapToLong(ChannelStats::zeroPages).sum()).isGreaterThan(0);
            }
            for (int i = 0; i < tx.size(); i++) {
                ChannelStats s = tx.get(i);
                ChannelStats d = rx.stream().filter(x -> x.id() == s.id()).findFirst().orElseThrow();
                assertThat(d.bytes()).isEqualTo(s.bytes());
                assertThat(d.packets()).isEqualTo(s.packets());
            }
            assertThat(p.rx().maxPacketNum()).isEqualTo(p.tx().packetsNumbered() - 1);
        }
    }

    /**
     * Zero-copy send: a block with a shared file behind it goes out with sendfile after each
     * packet header, in runs of contiguous pages (here every page of a first pass, then every
     * other page, so runs of one), and arrives as the copying path's would.
     */
    @Test
    void sendfileFromASharedFileArrivesIntact() throws Exception {
        long pages = 1000;
        Path img = tmp.resolve("ram.img");
        byte[] all = new byte[(int) (pages * PS)];
        new Random(3).nextBytes(all);
        for (int p = 0; p < pages; p += 7) {
            java.util.Arrays.fill(all, p * PS, (p + 1) * PS, (byte) 0); // some zero pages
        }
        java.nio.file.Files.write(img, all);
        try (Arena arena = Arena.ofShared();
             java.nio.channels.FileChannel fc = java.nio.channels.FileChannel.open(img,
                     java.nio.file.StandardOpenOption.READ, java.nio.file.StandardOpenOption.WRITE)) {
            MemorySegment srcMem = fc.map(java.nio.channels.FileChannel.MapMode.READ_WRITE, 0, pages * PS, arena);
            MultifdBlock sb = new MultifdBlock("pc.ram", srcMem, PS, fc);
            MemorySegment dstMem = arena.allocate(pages * PS, PS);
            dstMem.fill((byte) 0x55);
            MultifdBlock db = new MultifdBlock("pc.ram", dstMem, PS);
            for (long off = 0; off < pages * PS; off += PS) {
                db.markReceived(off); // stale contents: zero pages must be cleared
            }
            MultifdConfig cfg = MultifdConfig.defaults(2);
            Pair p = connect(new MigrationUri.Tcp("127.0.0.1", 0), cfg, n -> n.equals("pc.ram") ? db : null,
                    (id, inst, data) -> { });
            ExecutorService mainLoader = Executors.newSingleThreadExecutor();
            Future<?> loader = mainLoader.submit(() -> {
                p.rx().recvSyncMain();
                p.rx().recvSyncMain();
                return null;
            });
            for (long off = 0; off < pages * PS; off += PS) {
                p.tx().queuePage(sb, off);
            }
            p.tx().flushAndSync();
            for (int parity = 0; parity < 2; parity++) {
                for (long off = (long) parity * PS; off < pages * PS; off += 2L * PS) {
                    p.tx().queuePage(sb, off);
                }
            }
            p.tx().flushAndSync();
            loader.get(30, TimeUnit.SECONDS);
            mainLoader.shutdown();
            p.tx().close();
            assertThat(p.rx().awaitEnd(T)).isTrue();
            p.rx().close();
            p.l().close();
            assertThat(p.srcErr().get()).isNull();
            assertThat(p.dstErr().get()).isNull();
            assertThat(digest(dstMem)).isEqualTo(digest(srcMem));
            long txBytes = p.tx().stats().stream().mapToLong(ChannelStats::bytes).sum();
            long rxBytes = p.rx().stats().stream().mapToLong(ChannelStats::bytes).sum();
            assertThat(rxBytes).isEqualTo(txBytes);
        }
    }

    @ParameterizedTest
    @EnumSource(MultifdCompression.class)
    void tcpMigrationEachCompression(MultifdCompression c) throws Exception {
        migrate(new MigrationUri.Tcp("127.0.0.1", 0), MultifdConfig.defaults(3).withCompression(c, 1));
    }

    @ParameterizedTest
    @EnumSource(MultifdCompression.class)
    void unixMigrationEachCompression(MultifdCompression c) throws Exception {
        migrate(new MigrationUri.Unix(tmp.resolve("mig.sock")), MultifdConfig.defaults(2).withCompression(c, 3));
    }

    @Test
    void noZeroPageDetectionSendsEveryPageWithData() throws Exception {
        migrate(new MigrationUri.Tcp("127.0.0.1", 0),
                MultifdConfig.defaults(4).withZeroPageDetection(ZeroPageDetection.NONE));
    }

    // ---- bad input ----------------------------------------------------------------------------

    private static final byte[] UUID0 = new byte[16];

    /** A receiver with one block "ram" of 16 pages, fed raw bytes over one TCP connection per element. */
    private MigrationException receiveRaw(int channels, List<byte[]> conns, boolean dropAfter) throws Exception {
        MultifdConfig cfg = MultifdConfig.defaults(channels).withTimeout(Duration.ofSeconds(2));
        try (Arena arena = Arena.ofShared(); IncomingListener l = IncomingListener.bind(new MigrationUri.Tcp("127.0.0.1", 0))) {
            MultifdBlock b = new MultifdBlock("ram", arena.allocate(16L * PS), PS);
            FirstError err = new FirstError();
            MultifdReceiver rx = new MultifdReceiver(cfg, Map.of("ram", b)::get, DeviceStateSink.NONE, err);
            List<SocketChannel> senders = new ArrayList<>();
            try {
                for (byte[] bytes : conns) {
                    SocketChannel s = Transports.connect(l.address(), T);
                    senders.add(s);
                    ByteBuffer bb = ByteBuffer.wrap(bytes);
                    while (bb.hasRemaining()) {
                        s.write(bb);
                    }
                    if (dropAfter) {
                        s.close();
                    }
                    IncomingListener.Incoming in = l.accept(T);
                    try {
                        rx.addChannel(in.channel(), in.description());
                    } catch (MigrationException e) {
                        return e;
                    }
                }
                try {
                    rx.awaitChannels();
                    rx.recvSyncMain();
                } catch (MigrationException e) {
                    return e;
                }
                return null;
            } finally {
                rx.close();
                for (SocketChannel s : senders) {
                    s.close();
                }
            }
        }
    }

    private static byte[] init(int id) {
        return new MultifdInit(UUID0, id).toBuffer().array();
    }

    private static byte[] concat(byte[]... parts) {
        java.io.ByteArrayOutputStream o = new java.io.ByteArrayOutputStream();
        for (byte[] p : parts) {
            o.writeBytes(p);
        }
        return o.toByteArray();
    }

    private static RamPacket packet(int normal, int zero, long... offsets) {
        RamPacket p = new RamPacket(PS).reset(0).pagesAlloc(128).normalPages(normal).zeroPages(zero)
                .nextPacketSize(normal * PS).blockName("ram");
        for (int i = 0; i < offsets.length; i++) {
            p.offset(i, offsets[i]);
        }
        return p;
    }

    private static byte[] bytes(RamPacket p) {
        ByteBuffer b = p.buffer();
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    @Test
    void rejectsWrongInitMagic() throws Exception {
        byte[] bad = init(0);
        bad[3] = 0x45;
        assertThat(receiveRaw(1, List.of(bad), false)).hasMessageContaining("wrong multifd init magic 0x11223345");
    }

    @Test
    void rejectsWrongInitVersion() throws Exception {
        byte[] bad = init(0);
        bad[7] = 2;
        assertThat(receiveRaw(1, List.of(bad), false)).hasMessageContaining("unsupported multifd init version 2");
    }

    @Test
    void rejectsUuidMismatch() throws Exception {
        byte[] bad = init(0);
        bad[8] = 1;
        assertThat(receiveRaw(1, List.of(bad), false)).hasMessageContaining("does not match the destination's UUID")
                .extracting(MigrationException::category).isEqualTo(Category.MISMATCH);
    }

    @Test
    void rejectsChannelIdAtCount() throws Exception {
        assertThat(receiveRaw(2, List.of(init(2)), false)).hasMessageContaining("channel id 2 is out of range");
    }

    @Test
    void rejectsDuplicateId() throws Exception {
        assertThat(receiveRaw(2, List.of(init(1), init(1)), false)).hasMessageContaining("duplicate multifd channel id 1");
    }

    @Test
    void rejectsWrongPacketMagicAndVersion() throws Exception {
        RamPacket p = packet(0, 0);
        p.buffer().putInt(0, 0x01020304);
        assertThat(receiveRaw(1, List.of(concat(init(0), bytes(p))), false))
                .hasMessageContaining("at byte offset 64").hasMessageContaining("wrong multifd packet magic 0x01020304");
        RamPacket q = packet(0, 0);
        q.buffer().putInt(4, 9);
        assertThat(receiveRaw(1, List.of(concat(init(0), bytes(q))), false))
                .hasMessageContaining("unsupported multifd packet version 9");
    }

    @Test
    void rejectsSyncOnADeviceStatePacketNamingTheDevice() throws Exception {
        java.nio.ByteBuffer h = java.nio.ByteBuffer.allocate(DeviceStatePacket.SIZE + 4);
        new DeviceStatePacket("gpu0/blob", 3, 4).encode(h, 0);
        h.putInt(8, PacketHeader.FLAG_DEVICE_STATE | PacketHeader.FLAG_SYNC);
        assertThat(receiveRaw(1, List.of(concat(init(0), h.array())), false))
                .hasMessageContaining("at byte offset 72")
                .hasMessageContaining("device-state packet for \"gpu0/blob\" instance 3 has the SYNC flag set");
    }

    @Test
    void rejectsCountsAboveCapacity() throws Exception {
        assertThat(receiveRaw(1, List.of(concat(init(0), bytes(packet(0, 0).pagesAlloc(1000)))), false))
                .hasMessageContaining("pages_alloc 1000 exceeds");
    }

    @Test
    void rejectsOffsetOutsideBlock() throws Exception {
        assertThat(receiveRaw(1, List.of(concat(init(0), bytes(packet(0, 1, 16L * PS)))), false))
                .hasMessageContaining("offset[0] 0x10000 is outside RAMBlock ram");
    }

    @Test
    void rejectsUnknownBlock() throws Exception {
        assertThat(receiveRaw(1, List.of(concat(init(0), bytes(packet(0, 1, 0).blockName("rom")))), false))
                .hasMessageContaining("unknown RAMBlock \"rom\"");
    }

    @Test
    void rejectsTruncatedPayload() throws Exception {
        byte[] half = new byte[PS + 100];
        assertThat(receiveRaw(1, List.of(concat(init(0), bytes(packet(2, 0, 0, PS)), half)), true))
                .hasMessageContaining("truncated RAM payload: expected 8192 bytes");
    }

    @Test
    void rejectsChannelDroppedMidPacket() throws Exception {
        byte[] p = bytes(packet(1, 0, 0));
        assertThat(receiveRaw(1, List.of(concat(init(0), java.util.Arrays.copyOf(p, 500))), true))
                .hasMessageContaining("channel dropped in the middle of a packet");
    }

    @Test
    void rejectsChannelEndingBeforeSync() throws Exception {
        assertThat(receiveRaw(1, List.of(init(0)), true))
                .hasMessageContaining("ended before reaching the SYNC");
    }

    @Test
    void rejectsDeviceStateWithoutConsumer() throws Exception {
        ByteBuffer b = ByteBuffer.allocate(276 + 4);
        new DeviceStatePacket("dev/vfio", 0, 4).encode(b, 0);
        assertThat(receiveRaw(1, List.of(concat(init(0), b.array())), false))
                .hasMessageContaining("no device accepts state over multifd");
    }

    @Test
    void channelThatNeverConnectsTimesOut() throws Exception {
        MigrationException e = receiveRaw(3, List.of(init(0), init(2)), false);
        assertThat(e).hasMessageContaining("multifd channel(s) 1 did not connect within 2 s");
        assertThat(e.category()).isEqualTo(Category.TIMEOUT);
    }

    @Test
    void senderFailsWhenPeerGoesAway() throws Exception {
        MultifdConfig cfg = MultifdConfig.defaults(2).withTimeout(Duration.ofSeconds(5));
        try (Arena arena = Arena.ofShared(); IncomingListener l = IncomingListener.bind(new MigrationUri.Tcp("127.0.0.1", 0))) {
            MultifdBlock b = new MultifdBlock("ram", arena.allocate(4096L * PS), PS);
            b.memory().fill((byte) 1);
            List<SocketChannel> chans = List.of(Transports.connect(l.address(), T), Transports.connect(l.address(), T));
            FirstError err = new FirstError();
            MultifdSender tx = new MultifdSender(cfg, chans, err);
            tx.start();
            l.accept(T).channel().close();
            l.accept(T).channel().close();
            assertThatThrownBy(() -> {
                for (int round = 0; round < 100; round++) {
                    for (long off = 0; off < b.usedLength(); off += PS) {
                        tx.queuePage(b, off);
                    }
                }
                tx.flushAndSync();
            }).isInstanceOf(MigrationException.class).hasMessageMatching("the destination closed multifd channel [01] \\(write failed at byte offset \\d+: .*\\)");
            tx.close();
            assertThat(err.get()).isNotNull();
        }
    }
}
