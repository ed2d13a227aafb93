package io.jmigrate.savevm;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

/**
 * The QEMU_VM_CONFIGURATION body (PROTOCOL.md §1.5) that follows the file header: written by the
 * source, checked by the destination (machine type, page bits, validated capabilities, UUID).
 */
public interface StreamConfiguration {
    /** Writes the configuration VMState body (after the 0x07 byte, which the driver writes). */
    void save(QemuFileWriter w);

    /** Reads and checks the configuration body; a mismatch throws with both sides' values. */
    void load(QemuFileReader r);

    /** The {@code configuration} member of the vmdesc JSON. */
    ObjectNode vmdesc();
}
