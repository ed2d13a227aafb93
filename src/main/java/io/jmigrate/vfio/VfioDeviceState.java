package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

/**
 * {@code enum vfio_device_mig_state} of the VFIO migration uAPI v2 (PROTOCOL.md §4.8), with the
 * kernel's numeric values. 0 is ERROR, which a user can never request: a device gets there only
 * when an arc failed and the driver could not restore any valid state, and only
 * {@code VFIO_DEVICE_RESET} leaves it (to RUNNING).
 *
 * <table>
 *   <caption>States</caption>
 *   <tr><th>state</th><th>value</th><th>device</th><th>needs</th></tr>
 *   <tr><td>ERROR</td><td>0</td><td>unusable until reset</td><td>-</td></tr>
 *   <tr><td>STOP</td><td>1</td><td>stopped, no DMA, no data session</td><td>STOP_COPY</td></tr>
 *   <tr><td>RUNNING</td><td>2</td><td>running normally</td><td>STOP_COPY</td></tr>
 *   <tr><td>STOP_COPY</td><td>3</td><td>stopped, its state is read from the data fd</td><td>STOP_COPY</td></tr>
 *   <tr><td>RESUMING</td><td>4</td><td>stopped, state is written into the data fd</td><td>STOP_COPY</td></tr>
 *   <tr><td>RUNNING_P2P</td><td>5</td><td>running, but no new peer-to-peer DMA</td><td>STOP_COPY, P2P</td></tr>
 *   <tr><td>PRE_COPY</td><td>6</td><td>running, precopy data readable</td><td>STOP_COPY, PRE_COPY</td></tr>
 *   <tr><td>PRE_COPY_P2P</td><td>7</td><td>P2P-quiesced, precopy data readable</td><td>STOP_COPY, P2P, PRE_COPY</td></tr>
 * </table>
 */
public enum VfioDeviceState {
    ERROR(0),
    STOP(1),
    RUNNING(2),
    STOP_COPY(3),
    RESUMING(4),
    RUNNING_P2P(5),
    PRE_COPY(6),
    PRE_COPY_P2P(7);

    private static final VfioDeviceState[] BY_VALUE = new VfioDeviceState[8];

    static {
        for (VfioDeviceState s : values()) {
            BY_VALUE[s.value] = s;
        }
    }

    private final int value;

    VfioDeviceState(int value) {
        this.value = value;
    }

    /** The uAPI's numeric value. */
    public int value() {
        return value;
    }

    /** The state with the uAPI value {@code v}; an unknown value is rejected. */
    public static VfioDeviceState of(int v) {
        if (v < 0 || v >= BY_VALUE.length) {
            throw new MigrationException(Category.PROTOCOL, "unknown VFIO device state " + v
                    + " (the uAPI v2 defines 0..7)");
        }
        return BY_VALUE[v];
    }

    /** The name QEMU uses in its QAPI events and traces (lower case, e.g. {@code stop-copy}). */
    public String qapiName() {
        return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
    }

    /** PRE_COPY or PRE_COPY_P2P: precopy data may be read and GET_PRECOPY_INFO is valid. */
    public boolean isPrecopy() {
        return this == PRE_COPY || this == PRE_COPY_P2P;
    }

    /** The "saving group" (PRE_COPY, PRE_COPY_P2P, STOP_COPY) that shares one data session. */
    public boolean isSaving() {
        return isPrecopy() || this == STOP_COPY;
    }

    /** The device runs its workload (and may change its state) in this state. */
    public boolean isRunning() {
        return this == RUNNING || this == RUNNING_P2P || isPrecopy();
    }
}
