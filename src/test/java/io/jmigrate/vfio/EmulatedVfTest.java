package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static io.jmigrate.vfio.VfioDeviceState.ERROR;
import static io.jmigrate.vfio.VfioDeviceState.PRE_COPY;
import static io.jmigrate.vfio.VfioDeviceState.RESUMING;
import static io.jmigrate.vfio.VfioDeviceState.RUNNING;
import static io.jmigrate.vfio.VfioDeviceState.STOP;
import static io.jmigrate.vfio.VfioDeviceState.STOP_COPY;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class EmulatedVfTest {
    private final ManualTicker clock = new ManualTicker();
    private final List<EmulatedVf> devices = new ArrayList<>();

    @AfterEach
    void close() {
        devices.forEach(EmulatedVf::close);
    }

    private EmulatedVf vf(String id, Map<String, String> props) {
        EmulatedVf d = new EmulatedVf(EmulatedVfConfig.parse(id, props), clock);
        devices.add(d);
        return d;
    }

    private static EmulatedVf unpaced(ManualTicker clock, List<EmulatedVf> devices, String id, String size) {
        EmulatedVf d = new EmulatedVf(EmulatedVfConfig.parse(id, Map.of("state-size", size, "read-rate", "0",
                "write-rate", "0", "dirty-rate", "0", "config-size", "300")), clock);
        devices.add(d);
        return d;
    }

    /** Reads the fd in chunks of {@code chunk} until it says end of stream or nothing now. */
    private static byte[] drain(VfioDataFd fd, int chunk) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer b = ByteBuffer.allocate(chunk);
        while (true) {
            b.clear();
            int n = fd.read(b);
            if (n <= 0) {
                return out.toByteArray();
            }
            assertThat(n).isEqualTo(b.position());
            out.write(b.array(), 0, n);
        }
    }

    private static void writeAll(VfioDataFd fd, byte[] data, int chunk) {
        for (int off = 0; off < data.length; off += chunk) {
            ByteBuffer b = ByteBuffer.wrap(data, off, Math.min(chunk, data.length - off));
            while (b.hasRemaining()) {
                assertThat(fd.write(b)).isPositive();
            }
        }
    }

    @Test
    void stopCopyRoundTripFromAnySegmentation() {
        EmulatedVf src = unpaced(clock, devices, "vf0", "1M");
        EmulatedVf dst = new EmulatedVf(EmulatedVfConfig.parse("vf0", Map.of("state-size", "1M", "seed", "7",
                "config-size", "300", "write-rate", "0")), clock);
        devices.add(dst);
        assertThat(dst.digest()).isNotEqualTo(src.digest());
        long estimate = src.stopCopySize();
        Optional<VfioDataFd> fd = src.transition(STOP_COPY);
        assertThat(fd).isPresent();
        assertThat(src.deviceState()).isEqualTo(STOP_COPY);
        assertThat(src.stopCopySize()).isEqualTo(estimate);
        byte[] stream = drain(fd.get(), 1000);
        assertThat(stream).hasSize((int) estimate);
        assertThat(fd.get().read(ByteBuffer.allocate(10))).isEqualTo(VfioDataFd.END_OF_STREAM);
        assertThat(src.stopCopySize()).isZero();

        VfioDataFd in = dst.transition(RESUMING).orElseThrow();
        writeAll(in, stream, 777);
        dst.loadConfig(src.saveConfig());
        assertThat(dst.transition(STOP)).isEmpty();
        assertThat(dst.digest()).isEqualTo(src.digest());
        assertThat(src.transition(STOP)).isEmpty();
        assertThatThrownBy(() -> fd.get().read(ByteBuffer.allocate(1))).hasMessageContaining("ended saving session");
        dst.transition(RUNNING);
        assertThat(dst.deviceState()).isEqualTo(RUNNING);
    }

    @Test
    void precopyThenStopCopyCarriesMutations() {
        EmulatedVf src = vf("vf1", Map.of("state-size", "1M", "precopy-size", "256K", "dirty-rate", "400K",
                "read-rate", "0", "config-size", "64"));
        EmulatedVf dst = vf("vf1", Map.of("state-size", "1M", "write-rate", "0", "config-size", "64", "seed", "1"));
        assertThat(src.migrationFlags()).contains(VfioMigrationFlag.PRE_COPY, VfioMigrationFlag.P2P);
        VfioDataFd fd = src.transition(PRE_COPY).orElseThrow();
        PrecopyInfo info = fd.precopyInfo();
        long initial = EmulatedVf.HEADER_RECORD + 256 * 1024 + EmulatedVf.DATA_RECORD;
        assertThat(info).isEqualTo(new PrecopyInfo(initial, 0));

        ByteArrayOutputStream stream = new ByteArrayOutputStream();
        ByteBuffer b = ByteBuffer.allocate(100_000);
        assertThat(fd.read(b)).isEqualTo(100_000);
        stream.write(b.array(), 0, b.position());
        assertThat(fd.precopyInfo().initialBytes()).isEqualTo(initial - 100_000);
        stream.writeBytes(drain(fd, 65536));
        assertThat(fd.precopyInfo().initialBytes()).isZero();
        b.clear();
        assertThat(fd.read(b)).isEqualTo(VfioDataFd.NOTHING_NOW);

        // one second of running: 100 page rewrites, some of them in the part already sent
        clock.advance(1_000_000_000L);
        assertThat(src.mutations()).isEqualTo(100);
        PrecopyInfo dirty = fd.precopyInfo();
        assertThat(dirty.initialBytes()).isZero();
        assertThat(dirty.dirtyBytes()).isPositive();
        stream.writeBytes(drain(fd, 5000));
        assertThat(fd.precopyInfo().dirtyBytes()).isZero();

        clock.advance(500_000_000L);
        assertThat(src.transition(STOP_COPY)).isEmpty(); // the precopy session goes on
        long mutationsAtStop = src.mutations();
        assertThat(mutationsAtStop).isEqualTo(150);
        String atStop = src.digest();
        stream.writeBytes(drain(fd, 1 << 20));
        clock.advance(5_000_000_000L);
        assertThat(src.mutations()).as("a stopped device does not change").isEqualTo(mutationsAtStop);
        assertThatThrownBy(fd::precopyInfo).hasMessageContaining("only valid in PRE_COPY");

        VfioDataFd in = dst.transition(RESUMING).orElseThrow();
        writeAll(in, stream.toByteArray(), 4096 * 3 + 5);
        dst.loadConfig(src.saveConfig());
        dst.transition(STOP);
        assertThat(dst.digest()).isEqualTo(atStop);
        assertThat(src.digest()).isEqualTo(atStop);
    }

    @Test
    void readAndWriteArePacedByRateOverElapsedTime() {
        EmulatedVf src = vf("vf2", Map.of("state-size", "2M", "read-rate", "1M", "dirty-rate", "0"));
        EmulatedVf dst = vf("vf2", Map.of("state-size", "2M", "write-rate", "4M"));
        VfioDataFd fd = src.transition(STOP_COPY).orElseThrow();
        long t0 = clock.nanoTime();
        ByteBuffer chunk = ByteBuffer.allocate(1 << 20);
        List<Integer> sizes = new ArrayList<>();
        ByteArrayOutputStream stream = new ByteArrayOutputStream();
        int n;
        while ((n = fd.read(chunk.clear())) > 0) {
            sizes.add(n);
            stream.write(chunk.array(), 0, n);
        }
        long total = src.config().stateSize() + EmulatedVf.HEADER_RECORD + 2 * EmulatedVf.DATA_RECORD;
        assertThat(sizes).containsExactly(1 << 20, 1 << 20, (int) (total - (2 << 20)));
        // 2 MiB and a bit at 1 MiB/s: two seconds and a bit, whatever the real machine does
        long elapsed = clock.nanoTime() - t0;
        assertThat(elapsed).isBetween(total * 1_000_000_000L / (1 << 20) - 3, total * 1_000_000_000L / (1 << 20));

        VfioDataFd in = dst.transition(RESUMING).orElseThrow();
        long w0 = clock.nanoTime();
        writeAll(in, stream.toByteArray(), 1 << 20);
        assertThat(clock.nanoTime() - w0).isBetween(total * 1_000_000_000L / (4 << 20) - 3,
                total * 1_000_000_000L / (4 << 20));
    }

    @Test
    void idleTimeEarnsOnlyABurstOfCredit() {
        RatePacer p = new RatePacer(1 << 20, clock);
        p.account(1 << 20);
        long t = clock.nanoTime();
        clock.advance(60_000_000_000L);
        p.account(1 << 20);
        assertThat(clock.nanoTime() - t - 60_000_000_000L).isEqualTo(1_000_000_000L - RatePacer.BURST_NANOS);
        new RatePacer(0, clock).account(1L << 40);
    }

    @Test
    void injectedReadErrorInStopCopyIsOneShot() {
        EmulatedVf src = vf("vf3", Map.of("state-size", "256K", "read-rate", "0", "x-test-read-error-at", "70000"));
        VfioDataFd fd = src.transition(STOP_COPY).orElseThrow();
        ByteBuffer b = ByteBuffer.allocate(65536);
        assertThat(fd.read(b)).isEqualTo(65536);
        assertThatThrownBy(() -> fd.read(b.clear())).isInstanceOfSatisfying(MigrationException.class, e -> {
            assertThat(e.category()).isEqualTo(Category.IO);
            assertThat(e).hasMessageContaining("vfio-emu 'vf3'").hasMessageContaining("EIO")
                    .hasMessageContaining("stop-copy stream byte 70000");
        });
        assertThat(src.config().testReadErrorAt()).isEqualTo(-1);
        assertThat(src.deviceState()).isEqualTo(STOP_COPY);
        src.transition(RUNNING);
        VfioDataFd again = src.transition(STOP_COPY).orElseThrow();
        assertThat(drain(again, 65536)).hasSize((int) (256 * 1024 + EmulatedVf.HEADER_RECORD + EmulatedVf.DATA_RECORD));
    }

    @Test
    void failedArcRestoresOrLeavesError() {
        EmulatedVf d = vf("vf4", Map.of("state-size", "64K", "x-test-fail-arc", "STOP_COPY"));
        assertThatThrownBy(() -> d.transition(STOP_COPY)).isInstanceOfSatisfying(VfioFsm.TransitionFailed.class,
                e -> assertThat(e.state()).isEqualTo(STOP));
        assertThat(d.deviceState()).isEqualTo(STOP);
        assertThat(d.transition(STOP_COPY)).isPresent();
        d.transition(RUNNING);

        d.setProperty("x-test-fail-arc", "stop:error");
        assertThatThrownBy(() -> d.transition(STOP_COPY)).isInstanceOfSatisfying(VfioFsm.TransitionFailed.class,
                e -> {
                    assertThat(e.state()).isEqualTo(ERROR);
                    assertThat(e).hasMessageContaining("arc RUNNING_P2P -> STOP failed");
                });
        assertThat(d.deviceState()).isEqualTo(ERROR);
        assertThatThrownBy(() -> d.transition(RUNNING)).hasMessageContaining("only VFIO_DEVICE_RESET leaves it");
        d.reset();
        assertThat(d.deviceState()).isEqualTo(RUNNING);
        assertThatThrownBy(() -> d.setProperty("state-size", "1M")).hasMessageContaining("cannot be changed");
    }

    @Test
    void forbiddenRequestsLeaveTheStateAlone() {
        EmulatedVf d = vf("vf5", Map.of("state-size", "64K", "precopy-size", "16K"));
        d.transition(STOP_COPY);
        assertThatThrownBy(() -> d.transition(PRE_COPY)).isInstanceOfSatisfying(MigrationException.class, e -> {
            assertThat(e.category()).isEqualTo(Category.STATE);
            assertThat(e).hasMessageContaining("vf5").hasMessageContaining("forbids STOP_COPY -> PRE_COPY");
        });
        assertThat(d.deviceState()).isEqualTo(STOP_COPY);
        assertThatThrownBy(() -> d.transition(ERROR)).hasMessageContaining("ERROR cannot be requested");
        EmulatedVf noPre = vf("vf6", Map.of("state-size", "64K", "p2p", "off"));
        assertThat(noPre.migrationFlags()).containsExactly(VfioMigrationFlag.STOP_COPY);
        assertThatThrownBy(() -> noPre.transition(PRE_COPY)).hasMessageContaining("does not support PRE_COPY");
        assertThatThrownBy(() -> noPre.transition(VfioDeviceState.RUNNING_P2P)).hasMessageContaining("does not support");
    }

    @Test
    void resumingRejectsBadOrIncompleteStreams() {
        EmulatedVf src = unpaced(clock, devices, "vf7", "64K");
        byte[] stream = drain(src.transition(STOP_COPY).orElseThrow(), 1 << 20);

        EmulatedVf big = unpaced(clock, devices, "vf7", "128K");
        VfioDataFd in = big.transition(RESUMING).orElseThrow();
        assertThatThrownBy(() -> in.write(ByteBuffer.wrap(stream))).isInstanceOfSatisfying(MigrationException.class,
                e -> {
                    assertThat(e.category()).isEqualTo(Category.MISMATCH);
                    assertThat(e).hasMessageContaining("source state-size 65536")
                            .hasMessageContaining("this device has state-size 131072");
                });
        assertThatThrownBy(() -> big.transition(STOP)).isInstanceOf(VfioFsm.TransitionFailed.class)
                .hasMessageContaining("the stream was rejected");
        assertThat(big.deviceState()).isEqualTo(RESUMING);

        EmulatedVf same = unpaced(clock, devices, "vf7", "64K");
        VfioDataFd part = same.transition(RESUMING).orElseThrow();
        part.write(ByteBuffer.wrap(stream, 0, stream.length - 100));
        assertThatThrownBy(() -> same.transition(RUNNING)).hasMessageContaining("ended inside a record");
        assertThat(same.deviceState()).isEqualTo(RESUMING);

        byte[] garbage = stream.clone();
        garbage[EmulatedVf.HEADER_RECORD] = 0x13;
        EmulatedVf g = unpaced(clock, devices, "vf7", "64K");
        VfioDataFd gin = g.transition(RESUMING).orElseThrow();
        assertThatThrownBy(() -> gin.write(ByteBuffer.wrap(garbage))).hasMessageContaining("RESUMING stream byte 24")
                .hasMessageContaining("unknown record magic");

        EmulatedVf empty = unpaced(clock, devices, "vf7", "64K");
        empty.transition(RESUMING);
        assertThatThrownBy(() -> empty.transition(STOP)).hasMessageContaining("no stream header");
        assertThatThrownBy(() -> empty.loadConfig(new byte[3])).hasMessageContaining("config-size is 300");
    }

    /** Every (from, to) request on a real device: allowed ones land on {@code to}, forbidden ones stay put. */
    @Test
    void everyRequestOnTheDevice() {
        byte[] stream = drain(unpaced(clock, devices, "vf8", "16K").transition(STOP_COPY).orElseThrow(), 1 << 16);
        EmulatedVf d = vf("vf8", Map.of("state-size", "16K", "precopy-size", "8K", "read-rate", "0",
                "write-rate", "0"));
        for (VfioDeviceState from : VfioDeviceState.values()) {
            for (VfioDeviceState to : VfioDeviceState.values()) {
                goTo(d, from, stream);
                assertThat(d.deviceState()).isEqualTo(from);
                if (VfioFsm.forbidden(from, to, d.migrationFlags()) != null) {
                    assertThatThrownBy(() -> d.transition(to)).isInstanceOf(MigrationException.class);
                    assertThat(d.deviceState()).as(from + " -> " + to).isEqualTo(from);
                    continue;
                }
                Optional<VfioDataFd> fd = d.transition(to);
                assertThat(d.deviceState()).isEqualTo(to);
                boolean opens = from != to && VfioFsm.opensDataSession(VfioFsm.path(from, to, d.migrationFlags())
                        .size() == 1 ? from : VfioFsm.path(from, to, d.migrationFlags()).reversed().get(1), to);
                assertThat(fd.isPresent()).as("data fd for " + from + " -> " + to).isEqualTo(opens);
            }
        }
    }

    private void goTo(EmulatedVf d, VfioDeviceState s, byte[] stream) {
        if (d.deviceState() == RESUMING) {
            d.reset();
        }
        d.reset();
        switch (s) {
            case ERROR -> {
                d.setProperty("x-test-fail-arc", "RUNNING_P2P:error");
                assertThatThrownBy(() -> d.transition(STOP)).isInstanceOf(VfioFsm.TransitionFailed.class);
            }
            case RESUMING -> writeAll(d.transition(RESUMING).orElseThrow(), stream, 1 << 16);
            default -> d.transition(s);
        }
    }

    @Test
    void configParsing() {
        EmulatedVfConfig c = EmulatedVfConfig.defaults("vf0");
        assertThat(c.stateSize()).isEqualTo(100L << 20);
        assertThat(c.readRate()).isEqualTo(220L << 20);
        assertThat(c.precopySize()).isZero();
        assertThat(EmulatedVfConfig.parse("x", Map.of("state-size", "64M", "read-rate", "512M")).get("read-rate"))
                .isEqualTo(Long.toString(512L << 20));
        assertThatThrownBy(() -> EmulatedVfConfig.parse("x", Map.of("state-size", "1000")))
                .hasMessageContaining("multiple of 4 KiB");
        assertThatThrownBy(() -> EmulatedVfConfig.parse("x", Map.of("precopy-size", "200M")))
                .hasMessageContaining("precopy-size");
        assertThatThrownBy(() -> EmulatedVfConfig.parse("x", Map.of("bogus", "1"))).hasMessageContaining("unknown property 'bogus'");
        assertThatThrownBy(() -> EmulatedVfConfig.parse("x", Map.of("x-test-fail-arc", "NOWHERE")))
                .hasMessageContaining("unknown state 'NOWHERE'");
        assertThat(EnumSet.copyOf(new EmulatedVf(EmulatedVfConfig.parse("y", Map.of("state-size", "4K",
                "p2p", "off")), clock).migrationFlags())).containsExactly(VfioMigrationFlag.STOP_COPY);
    }
}
