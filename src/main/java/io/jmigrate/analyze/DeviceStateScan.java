package io.jmigrate.analyze;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.multifd.DeviceStatePacket;
import io.jmigrate.multifd.MultifdConfig;
import io.jmigrate.multifd.MultifdInit;
import io.jmigrate.multifd.PacketHeader;
import io.jmigrate.multifd.RamPacket;
import io.jmigrate.ram.MultifdCapture;
import io.jmigrate.vfio.VfioSectionDecoder;
import io.jmigrate.vfio.VfioStatePacket;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The device-state packets of a recorded multifd migration, per device ({@code jmigrate analyze
 * --multifd}): how many, how many bytes, on which channels, and how far out of order a receiver
 * would see them. Packets of one device go out on any channel; each channel file holds its own
 * packets in send order, so arrival order across channels is not recorded. The analyzer replays
 * the channels in lockstep (packet 0 of every channel in channel-id order, then packet 1, ...),
 * as receive threads of equal speed would, and counts, for the packets of VFIO devices (which
 * carry an idx, {@link VfioStatePacket}), the late arrivals (an idx below one already seen) and
 * the largest displacement, as the destination's reassembler does.
 */
public final class DeviceStateScan {

    /**
     * One device's packets.
     *
     * @param idstr           section idstr
     * @param instanceId      instance id
     * @param packets         device-state packets
     * @param bytes           their payload bytes (next_packet_size)
     * @param perChannel      packets per channel id
     * @param lateArrivals    VFIO: packets replayed after one with a higher idx; -1 when not VFIO
     * @param maxDisplacement VFIO: largest (highest idx seen - idx) at a replayed arrival; -1 when not VFIO
     * @param configIdx       VFIO: idx of the CONFIG_STATE packet, -1 if none
     */
    public record DeviceReport(String idstr, long instanceId, long packets, long bytes, Map<Integer, Long> perChannel,
                               long lateArrivals, long maxDisplacement, long configIdx) {
    }

    private record Pkt(String idstr, long instance, long size, long idx, boolean config) {
    }

    private DeviceStateScan() {
    }

    public static List<DeviceReport> scan(List<Path> channelFiles, int pageSize) {
        Map<Integer, List<Pkt>> byChannel = new TreeMap<>();
        for (Path p : channelFiles) {
            scanFile(p, pageSize, byChannel);
        }
        Map<String, long[]> acc = new LinkedHashMap<>(); // packets, bytes, late, maxDisp, maxIdx, config
        Map<String, Map<Integer, Long>> channels = new HashMap<>();
        Map<String, Pkt> first = new HashMap<>();
        int rounds = byChannel.values().stream().mapToInt(List::size).max().orElse(0);
        for (int i = 0; i < rounds; i++) {
            for (Map.Entry<Integer, List<Pkt>> ch : byChannel.entrySet()) {
                if (i >= ch.getValue().size()) {
                    continue;
                }
                Pkt k = ch.getValue().get(i);
                String key = k.idstr() + "#" + k.instance();
                first.putIfAbsent(key, k);
                long[] a = acc.computeIfAbsent(key, x -> new long[]{0, 0, 0, 0, -1, -1});
                a[0]++;
                a[1] += k.size();
                if (k.idx() >= 0) {
                    if (k.idx() < a[4]) {
                        a[2]++;
                        a[3] = Math.max(a[3], a[4] - k.idx());
                    }
                    a[4] = Math.max(a[4], k.idx());
                    if (k.config()) {
                        a[5] = k.idx();
                    }
                }
                channels.computeIfAbsent(key, x -> new TreeMap<>()).merge(ch.getKey(), 1L, Long::sum);
            }
        }
        List<DeviceReport> out = new ArrayList<>();
        acc.forEach((key, a) -> {
            Pkt f = first.get(key);
            boolean vfio = f.idx() >= 0;
            out.add(new DeviceReport(f.idstr(), f.instance(), a[0], a[1], channels.get(key), vfio ? a[2] : -1,
                    vfio ? a[3] : -1, vfio ? a[5] : -1));
        });
        return out;
    }

    private static void scanFile(Path p, int pageSize, Map<Integer, List<Pkt>> byChannel) {
        int ramLen = RamPacket.length(pageSize);
        byte[] buf = new byte[Math.max(ramLen, DeviceStatePacket.SIZE)];
        ByteBuffer b = ByteBuffer.wrap(buf);
        String name = p.getFileName().toString();
        long at = 0;
        try (InputStream in = MultifdCapture.open(p)) {
            if (in.readNBytes(buf, 0, MultifdInit.SIZE) < MultifdInit.SIZE) {
                return;
            }
            if (b.getInt(0) == 0x5145564d) {
                return; // the main channel ("QEVM"), which may be among the files given
            }
            int id = MultifdInit.decode(ByteBuffer.wrap(buf, 0, MultifdInit.SIZE), name).id();
            List<Pkt> list = byChannel.computeIfAbsent(id, x -> new ArrayList<>());
            at = MultifdInit.SIZE;
            while (true) {
                int n = in.readNBytes(buf, 0, PacketHeader.SIZE);
                if (n == 0) {
                    return;
                }
                if (n < PacketHeader.SIZE) {
                    throw new EOFException();
                }
                int flags = PacketHeader.decodeFlags(b, 0, name, at);
                if ((flags & PacketHeader.FLAG_DEVICE_STATE) != 0) {
                    readRest(in, buf, DeviceStatePacket.SIZE);
                    DeviceStatePacket h = DeviceStatePacket.decode(b, 0, MultifdConfig.DEFAULT_MAX_DEVICE_STATE_PACKET,
                            name, at);
                    long idx = -1;
                    boolean config = false;
                    long skip = h.nextPacketSize();
                    if (VfioSectionDecoder.isVfio(h.idstr()) && h.nextPacketSize() >= VfioStatePacket.HEADER_SIZE) {
                        byte[] vh = in.readNBytes(VfioStatePacket.HEADER_SIZE);
                        if (vh.length < VfioStatePacket.HEADER_SIZE) {
                            throw new EOFException();
                        }
                        try {
                            VfioStatePacket v = VfioStatePacket.decode(ByteBuffer.wrap(vh), h.idstr());
                            idx = v.idx();
                            config = v.config();
                        } catch (MigrationException e) {
                            throw new MigrationException(e.category(), "multifd channel " + id + " (" + name
                                    + ") at byte offset " + (at + DeviceStatePacket.SIZE) + ": " + e.getMessage());
                        }
                        skip -= VfioStatePacket.HEADER_SIZE;
                    }
                    in.skipNBytes(skip);
                    list.add(new Pkt(h.idstr(), Integer.toUnsignedLong(h.instanceId()), h.nextPacketSize(), idx, config));
                    at += DeviceStatePacket.SIZE + (long) h.nextPacketSize();
                    continue;
                }
                readRest(in, buf, ramLen);
                long normal = Integer.toUnsignedLong(b.getInt(16));
                long zero = Integer.toUnsignedLong(b.getInt(32));
                long payload = normal + zero == 0 ? 0
                        : (flags & PacketHeader.FLAG_COMPRESSION_MASK) == PacketHeader.FLAG_NOCOMP ? normal * pageSize
                        : Integer.toUnsignedLong(b.getInt(20));
                in.skipNBytes(payload);
                at += ramLen + payload;
            }
        } catch (EOFException e) {
            throw new MigrationException(Category.PROTOCOL, "multifd channel file " + name + " ends inside a packet at "
                    + "byte offset " + at);
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "reading multifd channel file " + name + ": " + e.getMessage(), e);
        }
    }

    private static void readRest(InputStream in, byte[] buf, int len) throws IOException {
        if (in.readNBytes(buf, PacketHeader.SIZE, len - PacketHeader.SIZE) < len - PacketHeader.SIZE) {
            throw new EOFException();
        }
    }
}
