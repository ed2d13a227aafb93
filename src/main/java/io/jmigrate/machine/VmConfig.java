package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.MemoryBackend;

import java.nio.file.Path;
import java.util.Map;
import java.util.UUID;

/**
 * What {@code jmigrate vm} was started with.
 *
 * @param name         {@code --name}
 * @param uuid         {@code --uuid}, or null
 * @param memoryBytes  {@code -m/--memory}
 * @param backendFile  {@code --memory-backend file=PATH}, or null for anonymous memory
 * @param shared       {@code share=on}
 * @param machine      {@code --machine}
 * @param startPaused  {@code -S}
 * @param workload     {@code --workload}, or null
 * @param globals      {@code --global migration.PROP=VALUE} overrides of the machine's compat properties
 * @param memoryBackend {@code --memory-backend}; null derives it from {@code backendFile} and {@code shared}
 * @param blobs        {@code --device blob,...} devices, in command-line (= registration) order
 * @param vfios        {@code --device vfio-emu,...} devices, in command-line order, registered after the blobs
 */
public record VmConfig(String name, UUID uuid, long memoryBytes, Path backendFile, boolean shared,
                       MachineType machine, boolean startPaused, WorkloadSpec workload, Map<String, String> globals,
                       MemoryBackend memoryBackend, java.util.List<BlobSpec> blobs, java.util.List<VfioEmuSpec> vfios) {
    public VmConfig(String name, UUID uuid, long memoryBytes, Path backendFile, boolean shared, MachineType machine,
                    boolean startPaused, WorkloadSpec workload, Map<String, String> globals,
                    MemoryBackend memoryBackend, java.util.List<BlobSpec> blobs) {
        this(name, uuid, memoryBytes, backendFile, shared, machine, startPaused, workload, globals, memoryBackend,
                blobs, java.util.List.of());
    }

    public VmConfig(String name, UUID uuid, long memoryBytes, Path backendFile, boolean shared, MachineType machine,
                    boolean startPaused, WorkloadSpec workload, Map<String, String> globals,
                    MemoryBackend memoryBackend) {
        this(name, uuid, memoryBytes, backendFile, shared, machine, startPaused, workload, globals, memoryBackend,
                java.util.List.of());
    }

    public VmConfig(String name, UUID uuid, long memoryBytes, Path backendFile, boolean shared, MachineType machine,
                    boolean startPaused, WorkloadSpec workload) {
        this(name, uuid, memoryBytes, backendFile, shared, machine, startPaused, workload, Map.of());
    }

    public VmConfig(String name, UUID uuid, long memoryBytes, Path backendFile, boolean shared, MachineType machine,
                    boolean startPaused, WorkloadSpec workload, Map<String, String> globals) {
        this(name, uuid, memoryBytes, backendFile, shared, machine, startPaused, workload, globals, null,
                java.util.List.of());
    }

    public VmConfig {
        if (memoryBackend == null) {
            memoryBackend = backendFile == null ? MemoryBackend.RAM : MemoryBackend.file(backendFile, shared);
        } else {
            backendFile = memoryBackend.path();
            shared = memoryBackend.share();
        }
        globals = globals == null ? Map.of() : Map.copyOf(globals);
        blobs = blobs == null ? java.util.List.of() : java.util.List.copyOf(blobs);
        vfios = vfios == null ? java.util.List.of() : java.util.List.copyOf(vfios);
        java.util.Set<String> ids = new java.util.HashSet<>();
        for (BlobSpec b : blobs) {
            if (!ids.add(b.id())) {
                throw new MigrationException(Category.CONFIG, "--device blob: id '" + b.id() + "' used twice");
            }
        }
        for (VfioEmuSpec v : vfios) {
            if (!ids.add(v.id())) {
                throw new MigrationException(Category.CONFIG, "--device vfio-emu: id '" + v.id() + "' used twice");
            }
        }
        if (memoryBytes <= 0 || memoryBytes % 4096 != 0) {
            throw new MigrationException(Category.CONFIG, "memory size " + memoryBytes
                    + " must be a positive multiple of 4 KiB");
        }
        if (machine == null) {
            machine = MachineType.DEFAULT;
        }
        if (name == null) {
            name = "vm";
        }
        MigrationProperties.of(machine, globals); // validates
    }

    /** The migration object's properties: machine compat plus --global overrides. */
    public MigrationProperties migrationProperties() {
        return MigrationProperties.of(machine, globals);
    }

    /** Parses QEMU-style sizes: {@code 256M}, {@code 1G}, {@code 65536k}, or plain bytes. A bare number is MiB, as -m. */
    public static long parseSize(String s) {
        String t = s.trim();
        if (t.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "empty size");
        }
        char unit = Character.toUpperCase(t.charAt(t.length() - 1));
        long mult;
        String num = t.substring(0, t.length() - 1);
        switch (unit) {
            case 'K' -> mult = 1L << 10;
            case 'M' -> mult = 1L << 20;
            case 'G' -> mult = 1L << 30;
            case 'T' -> mult = 1L << 40;
            case 'B' -> mult = 1;
            default -> {
                mult = 1L << 20;
                num = t;
            }
        }
        try {
            long v = Long.parseLong(num);
            if (v <= 0 || v > (1L << 40) / mult) {
                throw new MigrationException(Category.CONFIG, "size '" + s + "' out of range");
            }
            return v * mult;
        } catch (NumberFormatException e) {
            throw new MigrationException(Category.CONFIG, "size '" + s + "' is not a number with an optional "
                    + "K/M/G/T suffix");
        }
    }
}
