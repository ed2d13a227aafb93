package io.jmigrate.vfio;

import java.util.Optional;
import java.util.Set;

/**
 * The device side of VFIO migration, narrowed to what QEMU's driver uses of the kernel's
 * migration uAPI v2 (PROTOCOL.md §4.8). Implemented by the emulated VF ({@link EmulatedVf});
 * a real back-end would implement it with FFM ioctls on a {@code /dev/vfio} device fd or over a
 * vfio-user socket, one method per ioctl:
 *
 * <table>
 *   <caption>Methods and the uAPI</caption>
 *   <tr><th>method</th><th>uAPI</th></tr>
 *   <tr><td>{@link #migrationFlags}</td><td>VFIO_DEVICE_FEATURE GET, feature 1 MIGRATION</td></tr>
 *   <tr><td>{@link #deviceState}</td><td>VFIO_DEVICE_FEATURE GET, feature 2 MIG_DEVICE_STATE</td></tr>
 *   <tr><td>{@link #transition}</td><td>VFIO_DEVICE_FEATURE SET, feature 2 MIG_DEVICE_STATE (data_fd out)</td></tr>
 *   <tr><td>{@link #stopCopySize}</td><td>VFIO_DEVICE_FEATURE GET, feature 9 MIG_DATA_SIZE</td></tr>
 *   <tr><td>{@link #reset}</td><td>VFIO_DEVICE_RESET</td></tr>
 *   <tr><td>{@link VfioDataFd}</td><td>read(2), write(2), VFIO_MIG_GET_PRECOPY_INFO on the data fd</td></tr>
 * </table>
 *
 * <p>Config space is not part of it: QEMU keeps a VFIO PCI device's config state in its own
 * device model ({@link PciConfigState}).
 */
public interface VfioDeviceBackend {

    /** The device's name for messages (its {@code id}). */
    String name();

    /** Which optional states it supports; always contains STOP_COPY. */
    Set<VfioMigrationFlag> migrationFlags();

    /** The current device state. */
    VfioDeviceState deviceState();

    /**
     * Requests {@code target}; the device walks the next-hop table ({@link VfioFsm}) arc by arc.
     *
     * @return the new data fd when the walk opened a data session (into the saving group from
     * outside it, or into RESUMING), else empty
     * @throws io.jmigrate.common.MigrationException (STATE) when the request is forbidden; the
     * state is then unchanged
     * @throws VfioFsm.TransitionFailed when an arc failed; its state is where the device is now
     */
    Optional<VfioDataFd> transition(VfioDeviceState target);

    /**
     * Estimated bytes a STOP_COPY session would stream from now ({@code stop_copy_length}).
     */
    long stopCopySize();

    /** {@code VFIO_DEVICE_RESET}: closes any data session and puts the device in RUNNING. */
    void reset();
}
