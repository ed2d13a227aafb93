package io.jmigrate.machine;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.savevm.StreamConfiguration;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import io.jmigrate.vmstate.ConfigurationSection;
import io.jmigrate.vmstate.VmState;
import io.jmigrate.vmstate.VmStateDescription;
import io.jmigrate.vmstate.VmStateValues;

import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * Adapts the declarative sections of the vmstate layer to the device contract: the
 * configuration section ({@link ConfigurationSection}), and VMSD devices such as
 * {@link TimerVmsd} and {@link GlobalStateVmsd} as non-iterable {@link SaveVmHandlers} whose
 * vmdesc entry is filled while they save.
 */
final class InteropSections {
    private InteropSections() {
    }

    /** The configuration section: the machine type name, checked by the destination. */
    static StreamConfiguration configuration(String machine) {
        ConfigurationSection local = ConfigurationSection.of(machine);
        return new StreamConfiguration() {
            private ObjectNode desc;

            @Override
            public void save(QemuFileWriter w) {
                desc = JsonNodeFactory.instance.objectNode();
                VmState.save(w, ConfigurationSection.VMSD, local.toValues(), desc);
            }

            @Override
            public void load(QemuFileReader r) {
                long at = r.position();
                ConfigurationSection received = ConfigurationSection.read(r);
                try {
                    local.checkReceived(received);
                } catch (MigrationException e) {
                    throw r.fail(e.category(), at, e.getMessage());
                }
            }

            @Override
            public ObjectNode vmdesc() {
                return desc;
            }
        };
    }

    /** A non-iterable VMSD device: values from {@code save} at switchover, loaded values to {@code load}. */
    static VmsdDevice vmsdDevice(VmStateDescription vmsd, Supplier<VmStateValues> save,
                                 Consumer<VmStateValues> load) {
        return new VmsdDevice() {
            private ObjectNode desc;

            @Override
            public boolean isIterable() {
                return false;
            }

            @Override
            public void saveState(QemuFileWriter w) {
                desc = JsonNodeFactory.instance.objectNode();
                VmState.save(w, vmsd, save.get(), desc);
            }

            @Override
            public ObjectNode vmdesc() {
                return desc;
            }

            @Override
            public void loadState(QemuFileReader r, SectionType type, int versionId) {
                if (type != SectionType.FULL) {
                    throw r.fail(MigrationException.Category.PROTOCOL, "device '" + vmsd.name()
                            + "' is not iterable but arrived in a " + type + " section");
                }
                load.accept(VmState.load(r, vmsd, versionId));
            }
        };
    }

    /** A VMSD device: the same object serves as source and destination handlers. */
    interface VmsdDevice extends SaveVmHandlers.Save, SaveVmHandlers.Load {
    }
}
