package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.List;
import java.util.Map;

/**
 * A machine type: its name (sent in the configuration section and compared by the
 * destination), the idstr of its main RAM block, and its compat properties, as QEMU's versioned
 * machine types carry {@code hw_compat_X_Y} lists.
 *
 * <table>
 *   <caption>Machine types</caption>
 *   <tr><th>name</th><th>RAM block</th><th>send-switchover-start</th><th>notes</th></tr>
 *   <tr><td>none</td><td>ram</td><td>on</td><td>QEMU's {@code -M none -nodefaults} (PROTOCOL.md Appendix A)</td></tr>
 *   <tr><td>jm-10.1</td><td>jm.ram</td><td>on</td><td>default</td></tr>
 *   <tr><td>jm-9.2</td><td>jm.ram</td><td>off</td><td>{@code hw_compat_9_2}: no MIG_CMD_SWITCHOVER_START</td></tr>
 * </table>
 *
 * @param name                the machine type name, as in the configuration section
 * @param ramBlockName        idstr of the guest RAM block
 * @param sendSwitchoverStart compat property {@code send-switchover-start} of the migration object
 */
public record MachineType(String name, String ramBlockName, boolean sendSwitchoverStart, String description) {
    public static final MachineType NONE = new MachineType("none", "ram", true,
            "empty machine, QEMU -M none -nodefaults interop guest");
    public static final MachineType JM_10_1 = new MachineType("jm-10.1", "jm.ram", true,
            "jmigrate machine, QEMU 10.1 migration compat (default)");
    public static final MachineType JM_9_2 = new MachineType("jm-9.2", "jm.ram", false,
            "jmigrate machine, QEMU 9.2 compat: send-switchover-start=off");

    public static final MachineType DEFAULT = JM_10_1;
    public static final List<MachineType> ALL = List.of(NONE, JM_10_1, JM_9_2);

    public MachineType {
        if (name == null || name.isEmpty() || name.length() > 255) {
            throw new IllegalArgumentException("machine type name must be 1..255 characters");
        }
    }

    public static MachineType byName(String name) {
        for (MachineType t : ALL) {
            if (t.name.equals(name)) {
                return t;
            }
        }
        throw new MigrationException(Category.CONFIG, "unsupported machine type '" + name + "', expected one of "
                + ALL.stream().map(MachineType::name).toList());
    }

    /** The compat properties as QEMU's {@code -global migration.PROP=VALUE} would show them. */
    public Map<String, String> compatProperties() {
        return Map.of("send-switchover-start", sendSwitchoverStart ? "on" : "off");
    }
}
