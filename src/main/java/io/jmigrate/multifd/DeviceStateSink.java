package io.jmigrate.multifd;

import java.nio.ByteBuffer;

/**
 * The upward call for device-state packets (QEMU's {@code qemu_loadvm_load_state_buffer}):
 * the receive thread hands each payload to the handler registered under (idstr, instance id).
 * Called from {@code mig/dst/recv_N} threads without any global lock; packets of one device
 * can arrive on different channels in any order. Throwing fails the migration (first error
 * wins). {@code data} is only valid during the call (copy what you keep).
 */
@FunctionalInterface
public interface DeviceStateSink {
    void loadStateBuffer(String idstr, int instanceId, ByteBuffer data);

    /** The same call with the id of the channel the packet arrived on (what the receive threads call). */
    default void loadStateBuffer(int channel, String idstr, int instanceId, ByteBuffer data) {
        loadStateBuffer(idstr, instanceId, data);
    }

    /** A sink that rejects every packet (no device takes state over multifd). */
    DeviceStateSink NONE = (idstr, instanceId, data) -> {
        throw new io.jmigrate.common.MigrationException(io.jmigrate.common.MigrationException.Category.PROTOCOL,
                "device-state packet for \"" + idstr + "\" instance " + instanceId
                        + " but no device accepts state over multifd");
    };
}
