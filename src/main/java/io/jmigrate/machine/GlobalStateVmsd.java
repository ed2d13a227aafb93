package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.vmstate.VmStateDescription;
import io.jmigrate.vmstate.VmStateValues;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Set;
import java.util.TreeSet;

import static io.jmigrate.vmstate.VmStateField.buffer;
import static io.jmigrate.vmstate.VmStateField.uint32;
import static io.jmigrate.vmstate.VmStateField.uint8;

/**
 * QEMU's "globalstate" device ({@code migration/global_state.c}): the source's run state, which
 * the destination follows after migration (PROTOCOL.md Appendix A). FULL section, idstr
 * "globalstate", instance 0, version 1. Two layouts exist; both are 104 bytes on the wire, so
 * either side can read the other's bytes:
 *
 * <pre>
 * QEMU 10.0 (and 11.1)                       QEMU 7.2
 * be32 size                  uint32          be32 size             uint32
 * 32 bytes runstate          buffer          100 bytes runstate    buffer
 * u8 has_vm_was_suspended    uint8
 * u8 vm_was_suspended        uint8
 * 66 bytes unused            buffer (zeros)
 * </pre>
 *
 * <p>{@code runstate} is the run-state name NUL-padded, {@code size} = its length + 1. A guest
 * paused from start sends "prelaunch"; a running one "running". (QEMU leaves the section out
 * for "running"/"paused" only when the migration property store-global-state is off.)
 */
public final class GlobalStateVmsd {
    public static final String IDSTR = "globalstate";
    public static final int INSTANCE_ID = 0;

    /** QEMU's RunState names (qapi/run-state.json). */
    public static final Set<String> RUN_STATES = Set.copyOf(new TreeSet<>(Set.of(
            "debug", "inmigrate", "internal-error", "io-error", "paused", "postmigrate", "prelaunch",
            "finish-migrate", "restore-vm", "running", "save-vm", "shutdown", "suspended", "watchdog",
            "guest-panicked", "colo")));

    /** The two wire layouts, named by the QEMU release they were observed in. */
    public enum Layout {
        /** size, runstate[100]. */
        QEMU_7_2(VmStateDescription.builder("globalstate", 1)
                .field(uint32("size"))
                .field(buffer("runstate", 100))
                .build(), 100),
        /** size, runstate[32], has_vm_was_suspended, vm_was_suspended, unused[66]. */
        QEMU_10_0(VmStateDescription.builder("globalstate", 1)
                .field(uint32("size"))
                .field(buffer("runstate", 32))
                .field(uint8("has_vm_was_suspended"))
                .field(uint8("vm_was_suspended"))
                .field(buffer("unused", 66))
                .build(), 32);

        private final VmStateDescription vmsd;
        private final int runstateSize;

        Layout(VmStateDescription vmsd, int runstateSize) {
            this.vmsd = vmsd;
            this.runstateSize = runstateSize;
        }

        public VmStateDescription vmsd() {
            return vmsd;
        }
    }

    private GlobalStateVmsd() {
    }

    /** Values for {@code runState} with vm_was_suspended false. */
    public static VmStateValues values(Layout layout, String runState) {
        return values(layout, runState, false);
    }

    /**
     * Values as QEMU's pre_save fills them: the NUL-padded name, size = length + 1, and for the
     * 10.0 layout has_vm_was_suspended = 1 and the given vm_was_suspended.
     */
    public static VmStateValues values(Layout layout, String runState, boolean vmWasSuspended) {
        if (!RUN_STATES.contains(runState)) {
            throw new IllegalArgumentException("unknown run state '" + runState + "', expected one of "
                    + new TreeSet<>(RUN_STATES));
        }
        byte[] name = runState.getBytes(StandardCharsets.US_ASCII);
        VmStateValues v = new VmStateValues()
                .put("size", (long) name.length + 1)
                .put("runstate", Arrays.copyOf(name, layout.runstateSize));
        if (layout == Layout.QEMU_10_0) {
            v.put("has_vm_was_suspended", 1L).put("vm_was_suspended", vmWasSuspended ? 1L : 0L)
                    .put("unused", new byte[66]);
        }
        return v;
    }

    /**
     * The run state carried by loaded values, checked as QEMU's post_load does: the name must be
     * NUL-terminated inside the buffer and a known run state.
     *
     * @throws MigrationException PROTOCOL, naming the bad value
     */
    public static String runState(VmStateValues v) {
        byte[] rs = v.getBytes("runstate");
        int len = 0;
        while (len < rs.length && rs[len] != 0) {
            len++;
        }
        if (len == rs.length) {
            throw new MigrationException(Category.PROTOCOL, "globalstate: runstate is not NUL-terminated within its "
                    + rs.length + " bytes");
        }
        String s = new String(rs, 0, len, StandardCharsets.ISO_8859_1);
        if (!RUN_STATES.contains(s)) {
            throw new MigrationException(Category.PROTOCOL, "globalstate: unknown run state '" + s
                    + "', expected one of " + new TreeSet<>(RUN_STATES));
        }
        return s;
    }

    /** True only if the values say the source VM was suspended (always false for the 7.2 layout). */
    public static boolean vmWasSuspended(VmStateValues v) {
        return v.has("has_vm_was_suspended") && v.getLong("has_vm_was_suspended") != 0
                && v.getLong("vm_was_suspended") != 0;
    }
}
