package io.jmigrate.machine;

import io.jmigrate.vmstate.VmStateDescription;
import io.jmigrate.vmstate.VmStateValues;

import static io.jmigrate.vmstate.VmStateField.int64;
import static io.jmigrate.vmstate.VmStateField.unused;

/**
 * QEMU's "timer" device (the CPU timers state of {@code system/cpu-timers.c}), sent by every
 * guest including {@code -M none} (PROTOCOL.md Appendix A) as a FULL section, idstr "timer",
 * instance 0, version 2.
 *
 * <pre>
 * be64 cpu_ticks_offset   int64
 * 8 bytes unused          (zeros; ignored on load)
 * be64 cpu_clock_offset   int64, since version 2
 * </pre>
 *
 * <p>QEMU also defines a "timer/icount" subsection, sent only with {@code -icount}; it is not
 * described here, so such a stream fails to load with "unknown subsection 'timer/icount'".
 */
public final class TimerVmsd {
    public static final String IDSTR = "timer";
    public static final int INSTANCE_ID = 0;

    public static final VmStateDescription VMSD = VmStateDescription.builder("timer", 2)
            .minimumVersion(1)
            .field(int64("cpu_ticks_offset"))
            .field(unused(8))
            .field(int64("cpu_clock_offset").since(2))
            .build();

    private TimerVmsd() {
    }

    public static VmStateValues values(long cpuTicksOffset, long cpuClockOffset) {
        return new VmStateValues().put("cpu_ticks_offset", cpuTicksOffset).put("cpu_clock_offset", cpuClockOffset);
    }

    public static long cpuTicksOffset(VmStateValues v) {
        return v.getLong("cpu_ticks_offset");
    }

    /** The clock offset, or 0 when loaded from a version 1 stream (which does not carry it). */
    public static long cpuClockOffset(VmStateValues v) {
        return v.has("cpu_clock_offset") ? v.getLong("cpu_clock_offset") : 0;
    }
}
