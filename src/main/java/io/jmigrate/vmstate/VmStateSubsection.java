package io.jmigrate.vmstate;

import java.util.function.Predicate;

/**
 * A subsection of a description: written after the parent's fields only when {@code needed}
 * holds for the parent's values (PROTOCOL.md §1.6). Its name must start with the parent's name
 * (QEMU's convention is "parent/what").
 *
 * @param vmsd   the subsection's own description (name, version, fields, nested subsections)
 * @param needed QEMU's {@code .needed} callback, over the parent's values being saved
 */
public record VmStateSubsection(VmStateDescription vmsd, Predicate<VmStateValues> needed) {
    public VmStateSubsection {
        if (vmsd == null || needed == null) {
            throw new IllegalArgumentException("subsection description and needed test must be set");
        }
    }

    /** A subsection needed exactly when the parent's values carry values for it. */
    public static VmStateSubsection whenPresent(VmStateDescription vmsd) {
        String name = vmsd.name();
        return new VmStateSubsection(vmsd, v -> v.hasSubsection(name));
    }

    public String name() {
        return vmsd.name();
    }
}
