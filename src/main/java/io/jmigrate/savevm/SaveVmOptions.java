package io.jmigrate.savevm;

/**
 * What a device learns about a migration when its handlers are created (one direction).
 *
 * @param multifdDeviceState device state goes over multifd: multifd on, compression none, no
 *                           mapped-ram ({@code multifd_device_state_supported}). Without it a
 *                           device sends its switchover state in its END section
 * @param switchoverStart    the machine's compat property {@code send-switchover-start}
 * @param switchoverAck      the {@code switchover-ack} capability is on (it needs return-path): a
 *                           device whose {@code switchoverAckNeeded} says yes must approve before the
 *                           source may switch over (PROTOCOL.md §4.9)
 * @param approveSwitchover  destination with switchover-ack: a device calls it once its initial
 *                           precopy data is loaded ({@code qemu_loadvm_approve_switchover}); null
 *                           on the source and without the capability
 */
public record SaveVmOptions(boolean multifdDeviceState, boolean switchoverStart, boolean switchoverAck,
                            Runnable approveSwitchover) {
    public static final SaveVmOptions MAIN_CHANNEL = new SaveVmOptions(false, true, false, null);

    public SaveVmOptions(boolean multifdDeviceState, boolean switchoverStart) {
        this(multifdDeviceState, switchoverStart, false, null);
    }
}
