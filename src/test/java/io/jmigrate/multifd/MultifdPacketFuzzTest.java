package io.jmigrate.multifd;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;

import java.io.ByteArrayInputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.time.Duration;

/**
 * Hostile multifd channels: after a valid 64-byte init, the input is the channel's packet stream
 * (headers, RAM packets with their offsets and pages, compressed bodies, device-state packets,
 * SYNCs), read by a real {@link MultifdReceiver} receive thread into a 64-page block. The first
 * input byte picks the compression. Every outcome must be a {@link MigrationException} (or a
 * clean end); anything else, a hang or an out-of-memory on the capped heap is a finding. Seeds:
 * src/test/resources/io/jmigrate/multifd/MultifdPacketFuzzTestInputs.
 */
class MultifdPacketFuzzTest {
    static final int PAGES = 64;
    static final Arena ARENA = Arena.ofShared();
    static final MemorySegment RAM = ARENA.allocate(PAGES * 4096L, 4096);

    @FuzzTest(maxDuration = "10m")
    void packetsAreValidatedBeforeTouchingMemory(byte[] input) {
        if (input.length == 0) {
            return;
        }
        MultifdCompression comp = MultifdCompression.values()[(input[0] & 0xff) % MultifdCompression.values().length];
        MultifdConfig cfg = MultifdConfig.defaults(1).withCompression(comp, 1).withTimeout(Duration.ofSeconds(5));
        ByteBuffer stream = ByteBuffer.allocate(MultifdInit.SIZE + input.length - 1);
        new MultifdInit(cfg.uuid(), 0).encode(stream);
        stream.put(input, 1, input.length - 1).flip();
        MultifdBlock block = new MultifdBlock("pc.ram", RAM, 4096);
        FirstError errors = new FirstError();
        MultifdReceiver rx = new MultifdReceiver(cfg, name -> name.isEmpty() ? null : block,
                DeviceStateSink.NONE, errors);
        try {
            rx.addChannel(Channels.newChannel(new ByteArrayInputStream(stream.array(), 0, stream.limit())), "fuzz");
            // each SYNC the channel reaches is released; the channel's end (clean or not) ends this
            for (int i = 0; i < 100_000; i++) {
                rx.recvSyncMain();
            }
            throw new AssertionError("100000 SYNCs from one input");
        } catch (MigrationException expected) {
            // malformed input, or the end of the channel before a SYNC
        } finally {
            try {
                rx.close();
            } catch (MigrationException alsoExpected) {
                // close reports the first error again
            }
        }
        try {
            if (!rx.awaitEnd(Duration.ofSeconds(30))) {
                throw new AssertionError("the receive thread did not end");
            }
        } catch (MigrationException firstErrorAgain) {
            // the thread ended; awaitEnd reports the first error once more
        }
    }
}
