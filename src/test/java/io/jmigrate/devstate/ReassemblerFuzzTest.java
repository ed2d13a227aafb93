package io.jmigrate.devstate;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.jmigrate.common.MigrationException;

import java.nio.ByteBuffer;

/**
 * Hostile device-state buffers: the input is a sequence of (idx, last, length) puts with takes
 * in between, as multifd receive threads and a device's load thread would issue them, against a
 * 64 KiB queue cap. Puts must either be stored or refused with a {@link MigrationException};
 * takes must come out in index order, never past a {@code last}, queued bytes must never
 * exceed the cap nor the off-heap reserve twice the cap plus its slack, and abort frees it. Seeds: src/test/resources/io/jmigrate/devstate/ReassemblerFuzzTestInputs.
 */
class ReassemblerFuzzTest {
    static final long CAP = 64 << 10;

    @FuzzTest(maxDuration = "10m")
    void buffersComeOutInOrderWithinTheCap(FuzzedDataProvider data) {
        OrderedReassembler r = new OrderedReassembler("fuzz/0", CAP, () -> false);
        java.util.Set<Long> stored = new java.util.HashSet<>();
        long expect = 0;
        boolean lastTaken = false;
        while (data.remainingBytes() > 0) {
            if (data.consumeBoolean()) {
                long idx = data.consumeBoolean() ? data.consumeLong(0, Long.MAX_VALUE) : data.consumeLong(0, 32);
                boolean last = data.consumeProbabilityFloat() < 0.1f;
                int len = data.consumeInt(0, 80 << 10);
                try {
                    r.put(idx, ByteBuffer.allocate(len), last);
                    if (!stored.add(idx) || idx < expect) {
                        throw new AssertionError("buffer " + idx + " stored twice, or after it was taken");
                    }
                } catch (MigrationException refused) {
                    // duplicate, beyond last, over the cap: refused with a reason
                    if (refused.getMessage() == null || !refused.getMessage().contains("fuzz/0")) {
                        throw new AssertionError("a refusal that does not name the device", refused);
                    }
                }
            } else if (!lastTaken && stored.contains(expect)) {
                OrderedReassembler.Buffer b = r.take();
                if (b.idx() != expect) {
                    throw new AssertionError("took " + b.idx() + ", expected " + expect);
                }
                stored.remove(expect);
                expect++;
                lastTaken = b.last();
                r.written(b.length());
                r.release(b);
            }
            if (r.stats().peakQueuedBytes() > CAP) {
                throw new AssertionError("queued " + r.stats().peakQueuedBytes() + " bytes > cap " + CAP);
            }
            if (r.stats().peakReservedBytes() > 2 * CAP + OrderedReassembler.RESERVE_SLACK) {
                throw new AssertionError("reserved " + r.stats().peakReservedBytes() + " bytes > twice the cap " + CAP
                        + " plus the slack");
            }
        }
        r.abort("done");
        if (r.reservedBytes() != 0 || !r.closed()) {
            throw new AssertionError("the buffers' arena was not freed by abort: " + r.reservedBytes() + " bytes");
        }
    }
}
