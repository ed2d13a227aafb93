package io.jmigrate.savevm;

import java.util.ArrayList;
import java.util.List;

/**
 * The ordered list of registered devices, QEMU's {@code savevm_state.handlers}: sections go on
 * the wire in registration order; section ids count from 1 (ids only pair PART/END and footers
 * with their START, so the receiver keys on idstr and instance). One registry per migration and
 * direction: {@code SaveStateRegistry<SaveVmHandlers.Save>} on the source,
 * {@code SaveStateRegistry<SaveVmHandlers.Load>} on the destination.
 */
public final class SaveStateRegistry<H extends SaveVmHandlers> {
    private final List<SaveStateEntry<H>> entries = new ArrayList<>();
    private int nextSectionId = 1;

    /** Registers a device; {@code instanceId} -1 means "any": max(existing)+1, so the first is 0. */
    public synchronized SaveStateEntry<H> register(String idstr, int instanceId, int versionId, H h) {
        int inst = instanceId;
        if (inst < 0) {
            inst = entries.stream().filter(e -> e.idstr().equals(idstr)).mapToInt(e -> e.instanceId() + 1)
                    .max().orElse(0);
        }
        for (SaveStateEntry<H> e : entries) {
            if (e.idstr().equals(idstr) && e.instanceId() == inst) {
                throw new IllegalArgumentException("device '" + idstr + "' instance " + inst + " registered twice");
            }
        }
        SaveStateEntry<H> e = new SaveStateEntry<>(idstr, inst, versionId, nextSectionId++, h);
        entries.add(e);
        return e;
    }

    public synchronized List<SaveStateEntry<H>> entries() {
        return List.copyOf(entries);
    }

    public synchronized SaveStateEntry<H> find(String idstr, int instanceId) {
        for (SaveStateEntry<H> e : entries) {
            if (e.idstr().equals(idstr) && e.instanceId() == instanceId) {
                return e;
            }
        }
        return null;
    }
}
