package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.vfio.EmulatedVfConfig;
import io.jmigrate.vfio.VfioProperties;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code --device vfio-emu,id=ID[,PROP=VALUE]...}: an emulated VFIO VF ({@link EmulatedVfConfig}
 * properties) with the VFIO PCI device's migration properties ({@link VfioProperties}) and the
 * driver's test hooks {@code x-test-request-state} and {@code x-test-corrupt-packet}
 * ({@link io.jmigrate.vfio.VfioMigration#setTestRequestState}, {@code setTestCorruptPacket}).
 *
 * @param id       the device id (section idstr {@code <id>/vfio}, QOM path {@code /machine/peripheral/<id>})
 * @param backend  the emulated VF's properties
 * @param driver   VFIO property settings as given, applied over the machine type's compat values
 */
public record VfioEmuSpec(String id, EmulatedVfConfig backend, Map<String, String> driver) {
    public static final String DRIVER = "vfio-emu";
    public static final String TEST_REQUEST_STATE = "x-test-request-state";
    public static final String TEST_CORRUPT_PACKET = "x-test-corrupt-packet";

    public VfioEmuSpec {
        driver = Map.copyOf(driver);
    }

    /** Parses the option text after {@code --device}: {@code vfio-emu,id=vf0,state-size=64M,...}. */
    public static VfioEmuSpec parse(String text) {
        String[] parts = text.split(",");
        if (!parts[0].equals(DRIVER)) {
            throw new MigrationException(Category.CONFIG, "--device '" + text + "': driver must be " + DRIVER);
        }
        String id = null;
        Map<String, String> backend = new LinkedHashMap<>();
        Map<String, String> driver = new LinkedHashMap<>();
        for (int i = 1; i < parts.length; i++) {
            int eq = parts[i].indexOf('=');
            if (eq <= 0) {
                throw new MigrationException(Category.CONFIG, "--device " + DRIVER + ": '" + parts[i]
                        + "' is not PROP=VALUE");
            }
            String k = parts[i].substring(0, eq);
            String v = parts[i].substring(eq + 1);
            if (k.equals("id")) {
                id = v;
            } else if (EmulatedVfConfig.PROPERTIES.contains(k)) {
                backend.put(k, v);
            } else if (VfioProperties.NAMES.contains(k) || k.equals(TEST_REQUEST_STATE) || k.equals(TEST_CORRUPT_PACKET)) {
                driver.put(k, v);
            } else {
                throw new MigrationException(Category.CONFIG, "--device " + DRIVER + ": unknown property '" + k
                        + "', expected id, " + EmulatedVfConfig.PROPERTIES + ", " + VfioProperties.NAMES
                        + ", " + TEST_REQUEST_STATE + " or " + TEST_CORRUPT_PACKET);
            }
        }
        if (id == null || id.isEmpty() || id.contains("/")) {
            throw new MigrationException(Category.CONFIG, "--device " + DRIVER + " needs id=NAME (no '/')");
        }
        if (id.length() > 250) {
            throw new MigrationException(Category.CONFIG, "--device " + DRIVER + ": id '" + id + "' too long");
        }
        VfioProperties check = new VfioProperties();
        driver.forEach((k, v) -> {
            if (VfioProperties.NAMES.contains(k)) {
                check.set(k, v);
            }
        });
        return new VfioEmuSpec(id, EmulatedVfConfig.parse(id, backend), driver);
    }

    public String idstr() {
        return id + "/vfio";
    }
}
