package io.jmigrate.migration;

import io.jmigrate.channel.MigrationUri;
import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.machine.WorkloadSpec;
import io.jmigrate.multifd.MultifdInit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Bounded resources: once an incoming multifd migration has all its channels, a connection that
 * does not carry a multifd init with this migration's UUID (random bytes, another source) is
 * refused without failing the migration in progress, which completes with equal digests.
 */
@Timeout(120)
class LateConnectionTest {
    @Test
    void strangersAfterSetupAreRefusedAndTheMigrationCompletes() throws Exception {
        VmConfig c = new VmConfig("t", null, 32L << 20, null, false, MachineType.DEFAULT, false,
                new WorkloadSpec(2, "increment", 1), Map.of());
        try (Vm src = new Vm(c, false); Vm dst = new Vm(c, true)) {
            MigrationManager sm = new MigrationManager(src, (e, d) -> { });
            MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
            for (MigrationManager m : List.of(sm, dm)) {
                m.setCapabilities(List.of(Map.entry(Capability.MULTIFD, true), Map.entry(Capability.RETURN_PATH, true),
                        Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
                m.setParameters(Map.of("multifd-channels", 2L));
            }
            // The migration is held in its first pass until the strangers were refused: at 1 byte/s
            // each 100 ms window sends one rate check's worth of pages, so the 8192 pages take
            // seconds however loaded the machine is. (At 8 MiB/s a guest whose RAM is still mostly
            // zero migrated in 80 ms, and under load it completed before the strangers connected.)
            sm.setParameters(Map.of("max-bandwidth", 1L));
            IncomingMigration in = dm.startIncoming("tcp:127.0.0.1:0", false);
            MigrationUri.Tcp u = (MigrationUri.Tcp) MigrationUri.parse(in.boundUri());
            OutgoingMigration out = sm.migrate(in.boundUri());
            // setup is done once the destination reads the main stream (query-migrate shows "ram")
            while (!in.info().containsKey("ram")) {
                assertThat(in.join(10)).as("destination ended early: %s", in.error()).isFalse();
            }
            byte[] junk = new byte[4096];
            new Random(3).nextBytes(junk);
            ByteBuffer forged = new MultifdInit(new byte[]{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 1)
                    .toBuffer();
            try (SocketChannel a = SocketChannel.open(u.address()); SocketChannel b = SocketChannel.open(u.address())) {
                a.write(ByteBuffer.wrap(junk));
                b.write(forged);
                while (in.refusedConnections().size() < 2) {
                    assertThat(in.join(10)).as("destination ended: %s", in.error()).isFalse();
                }
            }
            assertThat(in.refusedConnections()).anySatisfy(r -> assertThat(r).contains("wrong multifd init magic"))
                    .anySatisfy(r -> assertThat(r).contains("carries another UUID"))
                    .allSatisfy(r -> assertThat(r).contains("the migration in progress goes on"));
            sm.setParameters(Map.of("max-bandwidth", 1L << 30));
            assertThat(out.join(90_000)).isTrue();
            assertThat(in.join(30_000)).isTrue();
            assertThat(out.error()).isNull();
            assertThat(in.error()).isNull();
            assertThat(out.digest()).isNotNull().isEqualTo(in.digest());
        }
    }
}
