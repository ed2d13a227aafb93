package io.jmigrate.migration;

import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.RunState;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.memory.RamBlock;
import io.jmigrate.migration.MultifdFaultProxy.Fault;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.net.InetSocketAddress;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 4 acceptance 3 at the migration level: a real jmigrate source and destination (in one
 * JVM, over TCP) with {@link MultifdFaultProxy} spoiling one multifd channel on the way. The
 * destination must fail with an error naming what was wrong and never run the guest; the source
 * must fail (its channels break), resume with its RAM unchanged, and then migrate again cleanly.
 *
 * <p>Issue 8: each side reports the cause, never a consequence. The destination names what it
 * refused (in {@code error()} and in query-migrate's {@code error-desc}); the source, which only
 * sees the destination hang up, names that: the destination closed multifd channel k or the main
 * channel, or said SHUT(1) on the return path. Which of these the source notices first depends
 * on which of its threads runs first, so that assertion accepts exactly those causes and no
 * write or read failure of its own.
 */
@Timeout(60)
class MultifdFaultTest {
    static final int CHANNELS = 2;
    /** What the source may see when the destination refuses: the destination hanging up, named. */
    static final String SOURCE_CAUSE = "^the destination (closed multifd channel \\d+ \\(write failed"
            + "|closed the main channel \\(|failed to load the stream \\(return path SHUT 1\\)).*";

    static VmConfig cfg(boolean paused, UUID uuid) {
        return new VmConfig("t", uuid, 16 << 20, null, false, MachineType.DEFAULT, paused, null);
    }

    static void multifd(MigrationManager m) {
        multifd(m, CHANNELS);
    }

    static void multifd(MigrationManager m, int channels) {
        multifd(m, channels, 10_000);
    }

    /**
     * {@code timeoutMs} is short (1.5 s) only where the test waits for it to expire; elsewhere a
     * loaded machine must not turn a slow channel connection into a different error.
     */
    static void multifd(MigrationManager m, int channels, long timeoutMs) {
        m.setCapabilities(List.of(Map.entry(Capability.MULTIFD, true), Map.entry(Capability.RETURN_PATH, true),
                Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
        m.setParameters(Map.of("multifd-channels", (long) channels, "x-multifd-timeout", timeoutMs,
                "max-bandwidth", 1L << 30));
    }

    /** Every third page zero, the others with distinct bytes. */
    static void fill(RamBlock b) {
        for (long p = 0; p < b.pages(); p++) {
            if (p % 3 != 2) {
                b.writeByte(p * 4096 + (p % 4000), (byte) (p | 1));
                b.writeByte(p * 4096 + 4095, (byte) (p >> 8));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "INIT_MAGIC              | wrong multifd init magic 0xdeadbeef",
            "INIT_VERSION            | unsupported multifd init version 2",
            "CHANNEL_ID_OUT_OF_RANGE | multifd channel id 2 is out of range",
            "DUPLICATE_ID            | duplicate multifd channel id 0",
            "HEADER_MAGIC            | wrong multifd packet magic 0x11223345",
            "HEADER_VERSION          | unsupported multifd packet version 7",
            "COUNT_ABOVE_CAPACITY    | normal_pages 129 exceeds pages_alloc 128",
            "OFFSET_OUTSIDE_BLOCK    | offset[0] 0x10000000000 is outside",
            "UNKNOWN_BLOCK           | unknown RAMBlock",
            "TRUNCATED_PAYLOAD       | does not match normal_pages",
            "DROPPED_MID_PACKET      | truncated RAM payload: expected 348160 bytes of page data, the channel ended after",
            "NEVER_CONNECTS          | multifd channel(s) 1 did not connect within",
    })
    void badChannelFailsDestinationCleanlyAndSourceResumes(Fault fault, String expected) throws Exception {
        run(fault, null, expected);
    }

    @Test
    void uuidMismatch() throws Exception {
        run(Fault.NONE, UUID.fromString("6b0e1c8a-3f2d-4c1e-9a7b-5d4c3b2a1f00"),
                "does not match the destination's UUID 6b0e1c8a3f2d4c1e9a7b5d4c3b2a1f00");
    }

    @Test
    void cleanPassThroughTheProxyCompletes() throws Exception {
        run(Fault.NONE, null, null);
    }

    @Test
    void sourceWithMoreChannelsThanTheDestination() throws Exception {
        // the proxy hands all 4 channels to the destination before the main stream: channels 2
        // and 3 are both refused, whichever comes first, and the main stream cannot end first
        run(Fault.NONE, null, 4, true, 4, "is out of range: the destination expects 2 channel(s), ids 0..1");
    }

    @Test
    void sourceWithFewerChannelsThanTheDestination() throws Exception {
        run(Fault.NONE, null, 1, "multifd channel(s) 1 did not connect within 1.5 s (expected 2 channel(s))");
    }

    @Test
    void multifdChannelAtADestinationWithoutMultifd() throws Exception {
        // the destination's first connection is a multifd channel (the proxy holds the main back)
        run(Fault.NONE, null, CHANNELS, false, CHANNELS, "(multifd) is a multifd channel, but this destination "
                + "expects only the main channel (is the multifd capability on at the source only?)");
    }

    @Test
    void multifdSourceDirectlyToADestinationWithoutMultifd() throws Exception {
        // no proxy: the main channel comes first; then either the multifd connections are refused
        // (the listener stays open during the load) or the ram section's MULTIFD_FLUSH is: both
        // name the same cause
        try (Vm src = new Vm(cfg(true, null), false);
             Vm dst = new Vm(cfg(false, null), true)) {
            fill(src.ramBlocks().getFirst());
            String before = src.ramDigest();
            MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
            MigrationManager sm = new MigrationManager(src, (e, d) -> { });
            dm.setCapabilities(List.of(Map.entry(Capability.RETURN_PATH, true)));
            multifd(sm);
            IncomingMigration in = dm.startIncoming("tcp:127.0.0.1:0", false);
            OutgoingMigration out = sm.migrate(in.boundUri());
            assertThat(in.join(20_000)).as("destination ended").isTrue();
            assertThat(out.join(20_000)).as("source ended").isTrue();
            assertCauses(in, out, "but this destination expects only the main channel (is the multifd capability "
                    + "on at the source only?)");
            assertThat(dst.runState()).isEqualTo(RunState.INMIGRATE);
            assertThat(src.ramDigest()).isEqualTo(before);
        }
    }

    /** Both sides failed, each with the cause it can see (see the class comment). */
    static void assertCauses(IncomingMigration in, OutgoingMigration out, String destinationCause) {
        assertThat(in.state().get()).as("destination: %s", in.error()).isEqualTo(MigrationStatus.FAILED);
        assertThat(in.error()).as("destination error").isNotNull();
        assertThat(in.error().getMessage()).contains(destinationCause);
        assertThat(in.info().get("error-desc")).as("destination query-migrate error-desc")
                .isEqualTo(in.error().getMessage());
        assertThat(out.state().get()).as("source: %s", out.error()).isEqualTo(MigrationStatus.FAILED);
        assertThat(out.error()).as("source error").isNotNull();
        assertThat(out.error().getMessage()).as("source error").matches(SOURCE_CAUSE);
        assertThat(out.info().get("error-desc")).as("source query-migrate error-desc")
                .isEqualTo(out.error().getMessage());
    }

    private void run(Fault fault, UUID dstUuid, String expected) throws Exception {
        run(fault, dstUuid, CHANNELS, expected);
    }

    /**
     * The proxy holds the main channel back until every multifd channel that will reach the
     * destination has: the destination then meets them in one order whatever the load, and the
     * short 1.5 s timeout of the "did not connect" cases measures only the channel that never
     * comes, not how late the main channel or channel 0 was scheduled.
     */
    private void run(Fault fault, UUID dstUuid, int srcChannels, String expected) throws Exception {
        run(fault, dstUuid, srcChannels, true, fault == Fault.NEVER_CONNECTS ? srcChannels - 1 : srcChannels,
                expected);
    }

    /** {@code gate}: see {@link MultifdFaultProxy}; 0 lets the main channel through at once. */
    private void run(Fault fault, UUID dstUuid, int srcChannels, boolean dstMultifd, int gate, String expected)
            throws Exception {
        try (Vm src = new Vm(cfg(true, null), false);
             Vm dst = new Vm(cfg(false, dstUuid), true)) {
            fill(src.ramBlocks().getFirst());
            String before = src.ramDigest();
            RunState srcState = src.runState();
            MigrationManager dm = new MigrationManager(dst, (e, d) -> { });
            MigrationManager sm = new MigrationManager(src, (e, d) -> { });
            long timeoutMs = expected != null && expected.contains("did not connect within") ? 1500 : 10_000;
            if (dstMultifd) {
                multifd(dm, CHANNELS, timeoutMs);
            } else {
                dm.setCapabilities(List.of(Map.entry(Capability.RETURN_PATH, true), Map.entry(Capability.X_JMIGRATE_DIGEST, true)));
            }
            multifd(sm, srcChannels, timeoutMs);
            IncomingMigration in = dm.startIncoming("tcp:127.0.0.1:0", false);
            int port = Integer.parseInt(in.boundUri().substring(in.boundUri().lastIndexOf(':') + 1));
            try (MultifdFaultProxy proxy = new MultifdFaultProxy(new InetSocketAddress("127.0.0.1", port), fault, 1,
                    CHANNELS, gate)) {
                OutgoingMigration out = sm.migrate(proxy.uri());
                assertThat(in.join(20_000)).as("destination ended").isTrue();
                assertThat(out.join(20_000)).as("source ended").isTrue();
                if (expected == null) {
                    assertThat(in.error()).isNull();
                    assertThat(out.state().get()).isEqualTo(MigrationStatus.COMPLETED);
                    assertThat(in.digest()).isEqualTo(before);
                    return;
                }
                assertCauses(in, out, expected);
                assertThat(dst.runState()).as("the destination never runs a half-loaded VM")
                        .isEqualTo(RunState.INMIGRATE);
                assertThat(src.runState()).isEqualTo(srcState);
                assertThat(src.ramDigest()).as("source RAM after the failure").isEqualTo(before);
            }
            // nothing lost: the source migrates again, directly, to a fresh destination
            try (Vm dst2 = new Vm(cfg(false, null), true)) {
                MigrationManager dm2 = new MigrationManager(dst2, (e, d) -> { });
                multifd(dm2, srcChannels);
                IncomingMigration in2 = dm2.startIncoming("tcp:127.0.0.1:0", false);
                OutgoingMigration out2 = sm.migrate(in2.boundUri());
                assertThat(out2.join(20_000)).isTrue();
                assertThat(in2.join(20_000)).isTrue();
                assertThat(out2.error()).isNull();
                assertThat(in2.digest()).isEqualTo(before);
            }
        }
    }
}
