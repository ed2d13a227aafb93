package io.jmigrate.vfio;

/**
 * The config state QEMU keeps for a VFIO PCI device in its own model (config space, MSI-X),
 * saved as the VMSD "VFIOPCIDevice" after the device data (PROTOCOL.md §4.1). For the emulated
 * VF it is a byte image.
 */
public interface PciConfigState {

    /** A snapshot of the config bytes, taken with the device stopped. */
    byte[] saveConfig();

    /**
     * Loads config bytes saved by the source.
     *
     * @throws io.jmigrate.common.MigrationException (PROTOCOL or MISMATCH) when they do not fit
     */
    void loadConfig(byte[] config);
}
