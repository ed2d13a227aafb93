package io.jmigrate.vmstate;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;
import java.util.UUID;

import static io.jmigrate.vmstate.VmStateField.array;
import static io.jmigrate.vmstate.VmStateField.uint32;
import static io.jmigrate.vmstate.VmStateField.varray;
import static io.jmigrate.vmstate.VmStateField.vbuffer;

/**
 * The configuration section (PROTOCOL.md §1.5): the VMState body that follows the
 * QEMU_VM_CONFIGURATION byte (0x07) right after the file header. No section header, no footer.
 *
 * <pre>
 * be32 len | len bytes machine type name ("none", "pc-i440fx-10.0")          vmsd "configuration" v1
 * [0x05 | 0x1e "configuration/target-page-bits" | be32 1 | be32 bits]        when bits > target minimum
 * [0x05 | 0x1a "configuration/capabilities" | be32 1 | be32 n |
 *     n x (u8 len | name)]                                                    when x-ignore-shared or mapped-ram is on
 * [0x05 | 0x12 "configuration/uuid" | be32 1 | 16 bytes UUID]                when validate-uuid is on and -uuid is set
 * </pre>
 *
 * <p>QEMU loads this body at version 0 (its VMSD has no minimum version), so {@link #read} does too.
 *
 * @param machineName     the machine type name
 * @param targetPageBits  present only when above the target's minimum page bits (12 on x86)
 * @param capabilities    the "validatable" capabilities that are on (sent only if not empty)
 * @param uuid            the VM UUID, sent when the validate-uuid capability is on
 */
public record ConfigurationSection(String machineName, OptionalInt targetPageBits, List<String> capabilities,
                                   Optional<UUID> uuid) {

    /** The only capabilities QEMU validates through this section (their state must match). */
    public static final Set<String> VALIDATED_CAPABILITIES = Set.of("x-ignore-shared", "mapped-ram");
    /** Bound on the machine name length read off the wire. */
    public static final int MAX_NAME = 4096;
    /** Bound on the capability count read off the wire. */
    public static final int MAX_CAPS = 256;
    /** TARGET_PAGE_BITS_MIN on x86: what the destination assumes when the subsection is absent. */
    public static final int X86_MIN_TARGET_PAGE_BITS = 12;

    public static final VmStateDescription TARGET_PAGE_BITS_VMSD =
            VmStateDescription.builder("configuration/target-page-bits", 1)
                    .field(uint32("target_page_bits")).build();
    public static final VmStateDescription CAPABILITIES_VMSD =
            VmStateDescription.builder("configuration/capabilities", 1)
                    .field(uint32("caps_count"))
                    .field(varray("capabilities", new FieldKind.CountedString("capability"), "caps_count", MAX_CAPS))
                    .build();
    public static final VmStateDescription UUID_VMSD =
            VmStateDescription.builder("configuration/uuid", 1)
                    .field(array("uuid.data", FieldKind.UINT8, 16)).build();
    public static final VmStateDescription VMSD = VmStateDescription.builder("configuration", 1)
            .minimumVersion(0)
            .field(uint32("len"))
            .field(vbuffer("name", "len", MAX_NAME))
            .subsection(TARGET_PAGE_BITS_VMSD)
            .subsection(CAPABILITIES_VMSD)
            .subsection(UUID_VMSD)
            .build();

    public ConfigurationSection {
        if (machineName == null || machineName.isEmpty()) {
            throw new IllegalArgumentException("machine name must not be empty");
        }
        capabilities = List.copyOf(capabilities);
        for (String c : capabilities) {
            if (c.isEmpty() || c.getBytes(StandardCharsets.ISO_8859_1).length > 255) {
                throw new IllegalArgumentException("capability name must be 1..255 bytes: '" + c + "'");
            }
        }
    }

    /** Just the machine name: what a plain QEMU x86 source sends. */
    public static ConfigurationSection of(String machineName) {
        return new ConfigurationSection(machineName, OptionalInt.empty(), List.of(), Optional.empty());
    }

    public ConfigurationSection withTargetPageBits(int bits) {
        return new ConfigurationSection(machineName, OptionalInt.of(bits), capabilities, uuid);
    }

    public ConfigurationSection withCapabilities(List<String> caps) {
        return new ConfigurationSection(machineName, targetPageBits, caps, uuid);
    }

    public ConfigurationSection withUuid(UUID u) {
        return new ConfigurationSection(machineName, targetPageBits, capabilities, Optional.of(u));
    }

    public VmStateValues toValues() {
        byte[] name = machineName.getBytes(StandardCharsets.ISO_8859_1);
        VmStateValues v = new VmStateValues().put("len", (long) name.length).put("name", name);
        targetPageBits.ifPresent(b -> v.putSubsection(TARGET_PAGE_BITS_VMSD.name(),
                new VmStateValues().put("target_page_bits", (long) b)));
        if (!capabilities.isEmpty()) {
            v.putSubsection(CAPABILITIES_VMSD.name(), new VmStateValues()
                    .put("caps_count", (long) capabilities.size())
                    .put("capabilities", new ArrayList<Object>(capabilities)));
        }
        uuid.ifPresent(u -> {
            ByteBuffer bb = ByteBuffer.allocate(16).putLong(u.getMostSignificantBits()).putLong(u.getLeastSignificantBits());
            List<Object> data = new ArrayList<>(16);
            for (byte b : bb.array()) {
                data.add((long) (b & 0xff));
            }
            v.putSubsection(UUID_VMSD.name(), new VmStateValues().put("uuid.data", data));
        });
        return v;
    }

    public static ConfigurationSection fromValues(VmStateValues v) {
        String name = new String(v.getBytes("name"), StandardCharsets.ISO_8859_1);
        if (name.isEmpty()) {
            throw new MigrationException(Category.PROTOCOL, "configuration section carries an empty machine name");
        }
        OptionalInt bits = OptionalInt.empty();
        VmStateValues tpb = v.subsection(TARGET_PAGE_BITS_VMSD.name());
        if (tpb != null) {
            bits = OptionalInt.of((int) tpb.getLong("target_page_bits"));
        }
        List<String> caps = new ArrayList<>();
        VmStateValues cv = v.subsection(CAPABILITIES_VMSD.name());
        if (cv != null) {
            for (Object o : cv.getList("capabilities")) {
                String c = (String) o;
                if (c.isEmpty()) {
                    throw new MigrationException(Category.PROTOCOL, "configuration/capabilities carries an empty name");
                }
                caps.add(c);
            }
        }
        Optional<UUID> u = Optional.empty();
        VmStateValues uv = v.subsection(UUID_VMSD.name());
        if (uv != null) {
            ByteBuffer bb = ByteBuffer.allocate(16);
            for (Object o : uv.getList("uuid.data")) {
                bb.put((byte) (long) (Long) o);
            }
            bb.flip();
            u = Optional.of(new UUID(bb.getLong(), bb.getLong()));
        }
        return new ConfigurationSection(name, bits, caps, u);
    }

    /** Writes the body (after the 0x07 byte written by the caller). */
    public void write(QemuFileWriter w) {
        VmState.save(w, VMSD, toValues());
    }

    /** Writes the body and records its description as the vmdesc's "configuration". */
    public void write(QemuFileWriter w, Vmdesc vmdesc) {
        vmdesc.saveConfiguration(w, VMSD, toValues());
    }

    /** Reads the body after the 0x07 byte (loaded at version 0, as QEMU does). */
    public static ConfigurationSection read(QemuFileReader r) {
        long at = r.position();
        VmStateValues v = VmState.load(r, VMSD, 0);
        try {
            return fromValues(v);
        } catch (MigrationException e) {
            throw r.fail(e.category(), at, e.getMessage());
        }
    }

    /**
     * Checks a configuration received from a source against this (local) one, as QEMU's
     * {@code configuration_post_load} and {@code vmstate_uuid_post_load} do: same machine type,
     * same target page bits (an absent subsection means {@code minTargetPageBits}), the same on/off
     * state of each validated capability, and the same UUID when one was received and one is set
     * locally.
     *
     * @throws MigrationException category MISMATCH, e.g. "Machine type received is 'pc' and local is 'none'"
     */
    public void checkReceived(ConfigurationSection received, int minTargetPageBits) {
        if (!received.machineName.equals(machineName)) {
            throw mismatch("Machine type received is '" + received.machineName + "' and local is '" + machineName + "'");
        }
        int theirs = received.targetPageBits.orElse(minTargetPageBits);
        int ours = targetPageBits.orElse(minTargetPageBits);
        if (theirs != ours) {
            throw mismatch("Received TARGET_PAGE_BITS is " + theirs + " but local is " + ours);
        }
        for (String c : VALIDATED_CAPABILITIES.stream().sorted().toList()) {
            boolean src = received.capabilities.contains(c);
            boolean dst = capabilities.contains(c);
            if (src != dst) {
                throw mismatch("Capability " + c + " is " + (dst ? "on" : "off") + ", but received capability is "
                        + (src ? "on" : "off"));
            }
        }
        if (received.uuid.isPresent() && uuid.isPresent() && !received.uuid.get().equals(uuid.get())) {
            throw mismatch("UUID received is " + received.uuid.get() + " and local is " + uuid.get());
        }
    }

    /** {@link #checkReceived(ConfigurationSection, int)} with x86's minimum of 12 page bits. */
    public void checkReceived(ConfigurationSection received) {
        checkReceived(received, X86_MIN_TARGET_PAGE_BITS);
    }

    private static MigrationException mismatch(String what) {
        return new MigrationException(Category.MISMATCH, "configuration section: " + what);
    }
}
