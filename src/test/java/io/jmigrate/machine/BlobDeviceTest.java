package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SaveVmOptions;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The blob device's handlers without sockets: packets in any order, the main-channel fallback, rejections. */
@Timeout(30)
class BlobDeviceTest {
    static final SaveVmOptions MULTIFD = new SaveVmOptions(true, true);
    static final SaveVmOptions MAIN = new SaveVmOptions(false, true);

    static SaveVmHandlers.Save save(BlobDevice d, SaveVmOptions o) {
        return d.saveHandlers(new Device.SaveContext(o, null, null, null));
    }

    static SaveVmHandlers.Load load(BlobDevice d, SaveVmOptions o) {
        return d.loadHandlers(new Device.LoadContext(o));
    }

    static List<ByteBuffer> packets(SaveVmHandlers.Save s) {
        List<ByteBuffer> out = new ArrayList<>();
        s.saveCompletePrecopyThread(data -> {
            ByteBuffer copy = ByteBuffer.allocate(data.remaining());
            copy.put(data.duplicate()).flip();
            out.add(copy);
        }, SaveVmHandlers.AbortFlag.NEVER);
        return out;
    }

    static byte[] setupSection(SaveVmHandlers.Save s) {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        QemuFileWriter w = new QemuFileWriter(bos, "test");
        s.saveSetup(w);
        s.saveComplete(w);
        w.flush();
        return bos.toByteArray();
    }

    /** Runs the load thread the device starts at switchover on this thread. */
    static void switchover(SaveVmHandlers.Load l) {
        AtomicReference<Exception> failed = new AtomicReference<>();
        l.switchoverStart((device, task) -> {
            assertThat(device).isEqualTo("b/blob");
            try {
                task.run(SaveVmHandlers.AbortFlag.NEVER);
            } catch (Exception e) {
                failed.set(e);
            }
        });
        if (failed.get() instanceof RuntimeException re) {
            throw re;
        }
    }

    @Test
    void packetsInAnyOrderReassembleToTheSourceState() {
        BlobSpec spec = BlobSpec.parse("blob,id=b,size=1M,chunk=64K,seed=7");
        BlobDevice src = new BlobDevice(spec);
        BlobDevice dst = new BlobDevice(BlobSpec.parse("blob,id=b,size=1M,chunk=64K,seed=8"));
        try {
            assertThat(dst.stateDigest()).isNotEqualTo(src.stateDigest());
            SaveVmHandlers.Save s = save(src, MULTIFD);
            assertThat(s.hasCompletePrecopyThread()).isTrue();
            byte[] main = setupSection(s);
            List<ByteBuffer> ps = packets(s);
            assertThat(ps).hasSize(16);
            Collections.shuffle(ps, new Random(1));
            SaveVmHandlers.Load l = load(dst, MULTIFD);
            QemuFileReader r = QemuFileReader.of(main, "test");
            l.loadState(r, SectionType.START, 1);
            l.loadState(r, SectionType.END, 1);
            for (ByteBuffer p : ps) {
                l.loadStateBuffer(p.asReadOnlyBuffer());
            }
            assertThat((Long) l.loadStats().get("out-of-order")).isPositive();
            switchover(l);
            l.loadComplete();
            assertThat(dst.stateDigest()).isEqualTo(src.stateDigest());
        } finally {
            src.close();
            dst.close();
        }
    }

    @Test
    void withoutMultifdTheStateTravelsInTheEndSection() {
        BlobDevice src = new BlobDevice(BlobSpec.parse("blob,id=b,size=300K,chunk=64K,seed=1"));
        BlobDevice dst = new BlobDevice(BlobSpec.parse("blob,id=b,size=300K,chunk=64K,seed=2"));
        try {
            SaveVmHandlers.Save s = save(src, new SaveVmOptions(true, false)); // jm-9.2: no SWITCHOVER_START
            assertThat(s.hasCompletePrecopyThread()).isFalse();
            byte[] main = setupSection(s);
            assertThat(main.length).isGreaterThan(300 * 1024);
            SaveVmHandlers.Load l = load(dst, MAIN);
            QemuFileReader r = QemuFileReader.of(main, "test");
            l.loadState(r, SectionType.START, 1);
            l.loadState(r, SectionType.PART, 1);
            l.loadState(r, SectionType.END, 1);
            assertThat(r.atEof()).isTrue();
            l.switchoverStart((d, t) -> {
                throw new AssertionError("no load thread without multifd transfer");
            });
            l.loadComplete();
            assertThat(dst.stateDigest()).isEqualTo(src.stateDigest());
            assertThatThrownBy(() -> l.loadStateBuffer(ByteBuffer.allocate(32)))
                    .hasMessageContaining("takes its state on the main channel");
        } finally {
            src.close();
            dst.close();
        }
    }

    static ByteBuffer packet(int version, int idx, long off, int len) {
        ByteBuffer b = ByteBuffer.allocate(16 + len);
        b.putInt(version).putInt(idx).putLong(off).position(16 + len);
        return b.flip();
    }

    @Test
    void badPacketsAndMismatchesAreRejectedNamingTheDevice() {
        BlobDevice dst = new BlobDevice(BlobSpec.parse("blob,id=b,size=256K,chunk=64K"));
        BlobDevice other = new BlobDevice(BlobSpec.parse("blob,id=b,size=512K,chunk=64K"));
        try {
            SaveVmHandlers.Load l = load(dst, MULTIFD);
            assertThatThrownBy(() -> l.loadStateBuffer(ByteBuffer.allocate(8)))
                    .hasMessageContaining("device b/blob").hasMessageContaining("shorter than its 16-byte header");
            assertThatThrownBy(() -> l.loadStateBuffer(packet(1, 0, 0, 64 << 10))).hasMessageContaining("version 1");
            assertThatThrownBy(() -> l.loadStateBuffer(packet(0, 4, 4L << 16, 64 << 10)))
                    .hasMessageContaining("packet index 4 out of range 0..3");
            assertThatThrownBy(() -> l.loadStateBuffer(packet(0, -1, 0, 64 << 10)))
                    .hasMessageContaining("packet index 4294967295");
            assertThatThrownBy(() -> l.loadStateBuffer(packet(0, 1, 0, 64 << 10)))
                    .hasMessageContaining("expected offset 65536");
            assertThatThrownBy(() -> l.loadStateBuffer(packet(0, 1, 1 << 16, 100)))
                    .hasMessageContaining("with 100 bytes, expected offset 65536 with 65536");
            l.loadStateBuffer(packet(0, 2, 2L << 16, 64 << 10));
            assertThatThrownBy(() -> l.loadStateBuffer(packet(0, 2, 2L << 16, 64 << 10)))
                    .hasMessageContaining("state buffer 2 already filled");
            // the source's device is twice as large
            QemuFileReader r = QemuFileReader.of(setupSection(save(other, MULTIFD)), "test");
            assertThatThrownBy(() -> l.loadState(r, SectionType.START, 1)).isInstanceOf(MigrationException.class)
                    .hasMessageContaining("the source's state is 524288 bytes in chunks of 65536, this device's is 262144");
            // the source sends on the main channel, this side expects multifd
            QemuFileReader r2 = QemuFileReader.of(setupSection(save(dst, MAIN)), "test");
            assertThatThrownBy(() -> load(dst, MULTIFD).loadState(r2, SectionType.START, 1))
                    .hasMessageContaining("sends its state on the main channel, this side expects it over multifd");
            // EOF without all chunks
            SaveVmHandlers.Load l2 = load(dst, MULTIFD);
            QemuFileReader r3 = QemuFileReader.of(setupSection(save(dst, MULTIFD)), "test");
            l2.loadState(r3, SectionType.START, 1);
            l2.loadState(r3, SectionType.END, 1);
            assertThatThrownBy(l2::loadComplete).hasMessageContaining("only 0 of 4 chunks were loaded")
                    .hasMessageContaining("no SWITCHOVER_START");
            // cleanup may run without setup, twice
            load(dst, MULTIFD).loadCleanup();
            l2.loadCleanup();
            l2.loadCleanup();
        } finally {
            dst.close();
            other.close();
        }
    }

    @Test
    void aCleanupOrAbortStopsAWaitingLoadThread() throws Exception {
        BlobDevice dst = new BlobDevice(BlobSpec.parse("blob,id=b,size=128K,chunk=64K"));
        try {
            SaveVmHandlers.Load l = load(dst, MULTIFD);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread t = Thread.ofPlatform().start(() -> l.switchoverStart((d, task) -> {
                try {
                    task.run(SaveVmHandlers.AbortFlag.NEVER);
                } catch (Throwable e) {
                    failure.set(e);
                }
            }));
            l.loadStateBuffer(packet(0, 1, 1 << 16, 64 << 10)); // chunk 0 never comes
            l.loadCleanup();
            t.join();
            assertThat(failure.get()).hasMessageContaining("b/blob load thread: operation cancelled");
        } finally {
            dst.close();
        }
    }

    @Test
    void hooksFireInTheFirstMigrationOnly() {
        BlobDevice src = new BlobDevice(BlobSpec.parse("blob,id=b,size=256K,chunk=64K,fail-at=save:2"));
        try {
            assertThatThrownBy(() -> packets(save(src, MULTIFD)))
                    .hasMessageContaining("injected save failure at chunk 2 (test hook fail-at=save:2)");
            assertThat(packets(save(src, MULTIFD))).hasSize(4);
        } finally {
            src.close();
        }
    }

    @Test
    void specParsing() {
        BlobSpec s = BlobSpec.parse("blob,id=gpu0,size=64M,chunk=512K,read-rate=256M,write-rate=1G,order=reverse");
        assertThat(s.idstr()).isEqualTo("gpu0/blob");
        assertThat(s.chunks()).isEqualTo(128);
        assertThat(s.readRate()).isEqualTo(256L << 20);
        assertThat(s.writeRate()).isEqualTo(1L << 30);
        assertThat(s.reverse()).isTrue();
        assertThatThrownBy(() -> BlobSpec.parse("disk,id=x,size=1M")).hasMessageContaining("unknown device type");
        assertThatThrownBy(() -> BlobSpec.parse("blob,id=x")).hasMessageContaining("needs id=NAME and size=SIZE");
        assertThatThrownBy(() -> BlobSpec.parse("blob,id=x,size=2G")).hasMessageContaining("must be 4 KiB .. 1 GiB");
        assertThatThrownBy(() -> BlobSpec.parse("blob,id=x,size=1M,chunk=32M")).hasMessageContaining("4 KiB .. 16 MiB");
        assertThatThrownBy(() -> BlobSpec.parse("blob,id=x,size=1M,colour=red")).hasMessageContaining("unknown option");
        assertThatThrownBy(() -> BlobSpec.parse("blob,id=a/b,size=1M")).hasMessageContaining("letters, digits");
        assertThatThrownBy(() -> BlobSpec.parse("blob,id=x,size=1M,fail-at=now")).hasMessageContaining("save:N or load:N");
    }
}
