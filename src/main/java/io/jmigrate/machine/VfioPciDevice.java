package io.jmigrate.machine;

import io.jmigrate.common.EventSink;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.vfio.EmulatedVf;
import io.jmigrate.vfio.EmulatedVfConfig;
import io.jmigrate.vfio.VfioMigration;
import io.jmigrate.vfio.VfioProperties;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A VFIO PCI device backed by an emulated VF ({@code --device vfio-emu}): the machine's view of
 * {@link VfioMigration} (section {@code <id>/vfio}) plus its QOM properties at
 * {@code /machine/peripheral/<id>}. The machine type's compat values apply first (jm-9.2:
 * {@code x-migration-multifd-transfer=off}, {@code x-migration-load-config-after-iter=off}), then
 * what {@code --device} sets, then {@code qom-set} at run time.
 */
public final class VfioPciDevice implements Device, AutoCloseable {
    private final VfioEmuSpec spec;
    private final EmulatedVf vf;
    private final VfioMigration migration;

    public VfioPciDevice(VfioEmuSpec spec, MachineType machine, EventSink events) {
        this.spec = spec;
        this.vf = new EmulatedVf(spec.backend());
        VfioProperties props = new VfioProperties();
        if (!machine.sendSwitchoverStart()) {
            props.set(VfioProperties.MULTIFD_TRANSFER, "off");
            props.set(VfioProperties.LOAD_CONFIG_AFTER_ITER, "off");
        }
        this.migration = new VfioMigration(spec.id(), vf, vf, props, events);
        spec.driver().forEach(this::qomSet);
    }

    public VfioMigration migration() {
        return migration;
    }

    public EmulatedVf vf() {
        return vf;
    }

    public String id() {
        return spec.id();
    }

    @Override
    public String idstr() {
        return migration.idstr();
    }

    @Override
    public int instanceId() {
        return 0;
    }

    @Override
    public int versionId() {
        return VfioMigration.VERSION;
    }

    @Override
    public SaveVmHandlers.Save saveHandlers(SaveContext ctx) {
        return migration.saveHandlers(new VfioMigration.Options(ctx.options().multifdDeviceState(),
                ctx.options().switchoverStart(), ctx.options().switchoverAck(), null));
    }

    @Override
    public SaveVmHandlers.Load loadHandlers(LoadContext ctx) {
        return migration.loadHandlers(new VfioMigration.Options(ctx.options().multifdDeviceState(),
                ctx.options().switchoverStart(), ctx.options().switchoverAck(), ctx.options().approveSwitchover()));
    }

    @Override
    public String stateDigest() {
        return vf.digest();
    }

    @Override
    public void runStateChanged(boolean running) {
        migration.vmStateChanged(running);
    }

    @Override
    public void close() {
        vf.close();
    }

    /** qom-set on {@code /machine/peripheral/<id>}. */
    public void qomSet(String property, String value) {
        if (VfioProperties.NAMES.contains(property)) {
            migration.properties().set(property, value);
        } else if (property.equals(VfioEmuSpec.TEST_REQUEST_STATE)) {
            migration.setTestRequestState(value);
        } else if (property.equals(VfioEmuSpec.TEST_CORRUPT_PACKET)) {
            migration.setTestCorruptPacket(value);
        } else if (EmulatedVfConfig.PROPERTIES.contains(property)) {
            vf.setProperty(property, value);
        } else if (property.equals("x-device-state")) {
            throw new MigrationException(Category.CONFIG, "Property '" + VfioEmuSpec.DRIVER + ".x-device-state' is "
                    + "read-only (it follows the VM and the migration)");
        } else {
            throw new MigrationException(Category.CONFIG, "Property '" + VfioEmuSpec.DRIVER + "." + property
                    + "' not found");
        }
    }

    /** qom-get on {@code /machine/peripheral/<id>}; {@code x-device-state} is the VFIO device state (read-only). */
    public Object qomGet(String property) {
        if (VfioProperties.NAMES.contains(property)) {
            return migration.properties().get(property);
        } else if (property.equals(VfioEmuSpec.TEST_REQUEST_STATE)) {
            return migration.testRequestState();
        } else if (property.equals(VfioEmuSpec.TEST_CORRUPT_PACKET)) {
            return migration.testCorruptPacket();
        } else if (property.equals("x-device-state")) {
            return vf.deviceState().qapiName();
        } else if (EmulatedVfConfig.PROPERTIES.contains(property)) {
            String v = vf.config().get(property);
            return v.matches("-?\\d+") ? (Object) Long.parseLong(v) : v;
        }
        throw new MigrationException(Category.CONFIG, "Property '" + VfioEmuSpec.DRIVER + "." + property
                + "' not found");
    }

    /** Every readable property (for qom-list style dumps and tests). */
    public Map<String, Object> properties() {
        Map<String, Object> m = new LinkedHashMap<>(migration.properties().all());
        m.put("x-device-state", vf.deviceState().qapiName());
        return m;
    }
}
