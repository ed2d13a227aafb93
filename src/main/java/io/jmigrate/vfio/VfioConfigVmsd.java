package io.jmigrate.vfio;

import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import io.jmigrate.vmstate.VmState;
import io.jmigrate.vmstate.VmStateDescription;
import io.jmigrate.vmstate.VmStateField;
import io.jmigrate.vmstate.VmStateValues;

/**
 * The config VMState of a VFIO PCI device, VMSD "VFIOPCIDevice" version 1 (PROTOCOL.md §4.1).
 * QEMU's holds the PCI device state and MSI-X; the emulated VF's config is one byte image:
 *
 * <pre>
 * be32 config_size | config_size bytes (1..64 KiB)
 * </pre>
 */
public final class VfioConfigVmsd {
    public static final String NAME = "VFIOPCIDevice";
    public static final int VERSION = 1;
    public static final VmStateDescription VMSD = VmStateDescription.builder(NAME, VERSION)
            .field(VmStateField.uint32("config_size"))
            .field(VmStateField.vbuffer("config", "config_size", EmulatedVfConfig.MAX_CONFIG_SIZE))
            .build();

    private VfioConfigVmsd() {
    }

    public static void save(QemuFileWriter w, byte[] config) {
        VmState.save(w, VMSD, new VmStateValues().put("config_size", (long) config.length).put("config", config));
    }

    public static byte[] load(QemuFileReader r) {
        return VmState.load(r, VMSD, VERSION).getBytes("config");
    }
}
