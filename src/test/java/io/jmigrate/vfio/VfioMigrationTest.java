package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The VFIO driver's handlers back to back, without sockets: section bodies in order, packets shuffled. */
class VfioMigrationTest {
    private static final VfioMigration.Options MULTIFD = new VfioMigration.Options(true, true, false, null);
    private static final VfioMigration.Options MAIN = new VfioMigration.Options(false, true, false, null);
    private final ManualTicker clock = new ManualTicker();
    private final List<EmulatedVf> vfs = new ArrayList<>();
    private final List<Map<String, Object>> events = new ArrayList<>();

    @AfterEach
    void close() {
        vfs.forEach(EmulatedVf::close);
    }

    private VfioMigration device(String id, Map<String, String> props) {
        Map<String, String> p = new java.util.HashMap<>(Map.of("state-size", "3M", "read-rate", "0", "write-rate", "0",
                "dirty-rate", "200K", "config-size", "512"));
        p.putAll(props);
        EmulatedVf vf = new EmulatedVf(EmulatedVfConfig.parse(id, p), clock);
        vfs.add(vf);
        return new VfioMigration(id, vf, vf, new VfioProperties(), (e, d) -> events.add(d));
    }

    /** The source's section bodies and device-state packets of one migration. */
    private record Saved(byte[] start, List<byte[]> parts, byte[] end, byte[] full, List<byte[]> packets) {
    }

    private static byte[] body(java.util.function.Consumer<QemuFileWriter> f) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        QemuFileWriter w = new QemuFileWriter(out, "main");
        f.accept(w);
        w.flush();
        return out.toByteArray();
    }

    private Saved save(VfioMigration src, VfioMigration.Options o, int iterations) {
        SaveVmHandlers.Save s = src.saveHandlers(o);
        byte[] start = body(s::saveSetup);
        List<byte[]> parts = new ArrayList<>();
        for (int i = 0; i < iterations; i++) {
            clock.advance(100_000_000L);
            parts.add(body(w -> s.saveIterate(w, SaveVmHandlers.RateLimit.NONE)));
        }
        src.vmStateChanged(false);
        List<byte[]> packets = Collections.synchronizedList(new ArrayList<>());
        if (s.hasCompletePrecopyThread()) {
            s.saveCompletePrecopyThread(b -> {
                byte[] copy = new byte[b.remaining()];
                b.get(b.position(), copy);
                packets.add(copy);
            }, SaveVmHandlers.AbortFlag.NEVER);
        }
        byte[] end = body(s::saveComplete);
        assertThat(s.hasSaveState()).isTrue();
        byte[] full = body(s::saveState);
        s.saveCleanup();
        return new Saved(start, parts, end, full, packets);
    }

    private static QemuFileReader reader(byte[] b) {
        return QemuFileReader.of(b, "main");
    }

    /** Loads {@code saved} into {@code dst}; packets in {@code order}; returns the load thread's error. */
    private Throwable load(VfioMigration dst, VfioMigration.Options o, Saved saved, List<byte[]> packets) throws Exception {
        SaveVmHandlers.Load l = dst.loadHandlers(o);
        for (byte[] p : packets) {
            l.loadStateBuffer(ByteBuffer.wrap(p));
        }
        l.loadSetup();
        l.loadState(reader(saved.start()), SectionType.START, 1);
        for (byte[] p : saved.parts()) {
            l.loadState(reader(p), SectionType.PART, 1);
        }
        CompletableFuture<Throwable> thread = new CompletableFuture<>();
        l.switchoverStart((name, task) -> Thread.ofPlatform().name("mig/dst/load_" + name).start(() -> {
            try {
                task.run(SaveVmHandlers.AbortFlag.NEVER);
                thread.complete(null);
            } catch (Throwable t) {
                thread.complete(t);
            }
        }));
        l.loadState(reader(saved.end()), SectionType.END, 1);
        l.loadState(reader(saved.full()), SectionType.FULL, 1);
        Throwable err = o.multifdSupported() && dst.properties().multifdTransfer() != OnOffAuto.OFF
                ? thread.get(60, TimeUnit.SECONDS) : null;
        if (err == null) {
            l.loadComplete();
        }
        l.loadCleanup();
        return err;
    }

    @Test
    void legacyPathCarriesStopCopyInEndAndConfigInFull() throws Exception {
        VfioMigration src = device("vf0", Map.of("precopy-size", "1M"));
        VfioMigration dst = device("vf0", Map.of("seed", "3"));
        Saved saved = save(src, MAIN, 4);
        String atStop = ((EmulatedVf) src.backend()).digest();
        assertThat(saved.packets()).isEmpty();
        assertThat(ByteBuffer.wrap(saved.start()).getLong()).isEqualTo(VfioMigration.DEV_SETUP_STATE);
        assertThat(ByteBuffer.wrap(saved.parts().get(0)).getLong()).isEqualTo(VfioMigration.DEV_DATA_STATE);
        assertThat(ByteBuffer.wrap(saved.end()).getLong()).isEqualTo(VfioMigration.DEV_DATA_STATE);
        assertThat(ByteBuffer.wrap(saved.full()).getLong()).isEqualTo(VfioMigration.DEV_CONFIG_STATE);
        assertThat(src.backend().deviceState()).isEqualTo(VfioDeviceState.STOP);
        assertThat(src.stats()).containsEntry("transfer", "main");
        assertThat(load(dst, MAIN, saved, List.of())).isNull();
        assertThat(((EmulatedVf) dst.backend()).digest()).isEqualTo(atStop);
        assertThat(dst.backend().deviceState()).isEqualTo(VfioDeviceState.STOP);
        dst.vmStateChanged(true);
        assertThat(dst.backend().deviceState()).isEqualTo(VfioDeviceState.RUNNING);
        assertThat(dst.transferred()).isEqualTo(src.transferred());
    }

    @Test
    void multifdPathReassemblesShuffledPackets() throws Exception {
        VfioMigration src = device("vf1", Map.of("precopy-size", "512K"));
        VfioMigration dst = device("vf1", Map.of("seed", "4"));
        dst.properties().set(VfioProperties.MIGRATION_EVENTS, "on");
        Saved saved = save(src, MULTIFD, 3);
        String atStop = ((EmulatedVf) src.backend()).digest();
        assertThat(saved.end()).hasSize(8);
        assertThat(ByteBuffer.wrap(saved.end()).getLong()).isEqualTo(VfioMigration.END_OF_STATE);
        assertThat(ByteBuffer.wrap(saved.full()).getLong()).isEqualTo(VfioMigration.END_OF_STATE);
        List<byte[]> packets = new ArrayList<>(saved.packets());
        assertThat(packets.size()).isGreaterThan(2);
        ByteBuffer last = ByteBuffer.wrap(packets.getLast());
        assertThat(last.getInt(8)).isEqualTo(VfioStatePacket.FLAG_CONFIG_STATE);
        assertThat(last.getInt(4)).isEqualTo(packets.size() - 1);
        assertThat(ByteBuffer.wrap(packets.getFirst()).remaining()).isLessThanOrEqualTo(12 + (1 << 20));
        Collections.shuffle(packets, new Random(1));
        assertThat(load(dst, MULTIFD, saved, packets)).isNull();
        assertThat(((EmulatedVf) dst.backend()).digest()).isEqualTo(atStop);
        assertThat((long) dst.stats().get("late-arrivals")).isPositive();
        assertThat(src.stats()).containsEntry("transfer", "multifd");
        assertThat(events).extracting(e -> e.get("device-state")).contains("resuming", "stop");
        assertThat(events.getFirst()).containsEntry("device-id", "vf1").containsEntry("qom-path", "/machine/peripheral/vf1");
    }

    @Test
    void badPacketsNameTheDeviceAndIdx() throws Exception {
        VfioMigration src = device("vf2", Map.of());
        Saved saved = save(src, MULTIFD, 0);
        List<byte[]> p = saved.packets();

        List<byte[]> dup = new ArrayList<>(p);
        dup.add(1, p.get(0));
        assertThatThrownBy(() -> load(device("vf2", Map.of()), MULTIFD, saved, dup))
                .hasMessageContaining("device vf2/vfio: state buffer 0 already filled");

        byte[] extra = p.get(0).clone();
        ByteBuffer.wrap(extra).putInt(4, p.size());
        List<byte[]> afterConfig = new ArrayList<>(p);
        afterConfig.add(extra);
        assertThatThrownBy(() -> load(device("vf2", Map.of()), MULTIFD, saved, afterConfig))
                .hasMessageContaining("device vf2/vfio: state buffer " + p.size()
                        + " comes after the config packet idx " + (p.size() - 1));

        byte[] config1 = p.getLast().clone();
        ByteBuffer.wrap(config1).putInt(4, 1);
        assertThatThrownBy(() -> load(device("vf2", Map.of()), MULTIFD, saved, List.of(p.get(0), p.get(2), config1)))
                .hasMessageContaining("device vf2/vfio: config packet idx 1 is not last: state buffer 2 was already received");

        byte[] v1 = p.get(1).clone();
        ByteBuffer.wrap(v1).putInt(0, 1);
        assertThatThrownBy(() -> load(device("vf2", Map.of()), MULTIFD, saved, List.of(p.get(0), v1)))
                .hasMessageContaining("VFIO device vf2/vfio: device-state packet idx 1 has version 1, expected 0");

        VfioMigration capped = device("vf2", Map.of());
        capped.properties().set(VfioProperties.MAX_QUEUED_BUFFERS_SIZE, "1M");
        assertThatThrownBy(() -> load(capped, MULTIFD, saved, p)).isInstanceOfSatisfying(MigrationException.class,
                e -> {
                    assertThat(e.category()).isEqualTo(Category.LIMIT);
                    assertThat(e).hasMessageContaining("device vf2/vfio: queuing state buffer 1")
                            .hasMessageContaining("would exceed the size max of 1048576");
                });
    }

    @Test
    void bothEndsMustAgreeOnTheTransfer() throws Exception {
        VfioMigration src = device("vf3", Map.of());
        Saved legacy = save(src, MAIN, 0);
        src.vmStateChanged(true);
        assertThatThrownBy(() -> load(device("vf3", Map.of()), MULTIFD, legacy, List.of()))
                .hasMessageContaining("VFIO device vf3/vfio: got DEV_CONFIG_STATE in main migration channel but doing "
                        + "multifd transfer");
        Saved multifd = save(src, MULTIFD, 0);
        VfioMigration off = device("vf3", Map.of());
        off.properties().set(VfioProperties.MULTIFD_TRANSFER, "off");
        assertThatThrownBy(() -> load(off, MULTIFD, multifd, multifd.packets()))
                .hasMessageContaining("got device state packet but not doing multifd transfer");

        VfioMigration on = device("vf4", Map.of());
        on.properties().set(VfioProperties.MULTIFD_TRANSFER, "on");
        assertThatThrownBy(() -> on.saveHandlers(MAIN).saveSetup(new QemuFileWriter(new ByteArrayOutputStream(), "m")))
                .hasMessageContaining("Multifd device transfer requested but unsupported in the current config");
    }

    @Test
    void switchoverAckAfterInitialData() throws Exception {
        VfioMigration src = device("vf5", Map.of("precopy-size", "256K"));
        VfioMigration.Options ack = new VfioMigration.Options(false, true, true, null);
        SaveVmHandlers.Save s = src.saveHandlers(ack);
        byte[] start = body(s::saveSetup);
        List<byte[]> parts = new ArrayList<>();
        int initSent = 0;
        for (int i = 0; i < 4; i++) {
            byte[] b = body(w -> s.saveIterate(w, SaveVmHandlers.RateLimit.NONE));
            parts.add(b);
            if (ByteBuffer.wrap(b, b.length - 8, 8).getLong() == VfioMigration.DEV_INIT_DATA_SENT) {
                initSent++;
            }
        }
        assertThat(initSent).isEqualTo(1);
        src.vmStateChanged(false);
        byte[] end = body(s::saveComplete);
        byte[] full = body(s::saveState);
        s.saveCleanup();
        AtomicInteger approved = new AtomicInteger();
        VfioMigration dst = device("vf5", Map.of("precopy-size", "256K"));
        SaveVmHandlers.Load l = dst.loadHandlers(new VfioMigration.Options(false, true, true, approved::incrementAndGet));
        assertThat(l.switchoverAckNeeded()).isTrue();
        assertThat(load(dst, new VfioMigration.Options(false, true, true, approved::incrementAndGet),
                new Saved(start, parts, end, full, List.of()), List.of())).isNull();
        assertThat(approved.get()).isEqualTo(1);
        assertThat(((EmulatedVf) dst.backend()).digest()).isEqualTo(((EmulatedVf) src.backend()).digest());
        assertThatThrownBy(() -> load(device("vf5", Map.of("precopy-size", "256K")), MAIN,
                new Saved(start, parts, end, full, List.of()), List.of())).hasMessageContaining("got INIT_DATA_SENT but switchover-ack is off");
    }

    @Test
    void failuresGoBackToRunning() {
        VfioMigration src = device("vf6", Map.of("x-test-read-error-at", "100000"));
        SaveVmHandlers.Save s = src.saveHandlers(MULTIFD);
        body(s::saveSetup);
        src.vmStateChanged(false);
        assertThat(src.backend().deviceState()).isEqualTo(VfioDeviceState.STOP);
        assertThatThrownBy(() -> s.saveCompletePrecopyThread(b -> { }, SaveVmHandlers.AbortFlag.NEVER))
                .hasMessageContaining("vf6").hasMessageContaining("EIO");
        s.saveCleanup();
        src.vmStateChanged(true);
        assertThat(src.backend().deviceState()).isEqualTo(VfioDeviceState.RUNNING);

        src.setTestRequestState("pre-copy");
        SaveVmHandlers.Save s2 = src.saveHandlers(MAIN);
        body(s2::saveSetup);
        src.vmStateChanged(false);
        assertThatThrownBy(() -> body(s2::saveComplete)).hasMessageContaining("VFIO device vf6/vfio: failed to change state")
                .hasMessageContaining("does not support PRE_COPY");
        s2.saveCleanup();
        src.vmStateChanged(true);
        assertThat(src.backend().deviceState()).isEqualTo(VfioDeviceState.RUNNING);
    }
}
