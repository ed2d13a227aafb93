package io.jmigrate.savevm;

/**
 * One registered device: QEMU's {@code SaveStateEntry}. {@code (idstr, instanceId)} is how the
 * destination finds the handler; {@code sectionId} is the sender's local id, unique within one
 * stream; {@code versionId} is the newest section version this side writes and accepts.
 *
 * @param <H> {@link SaveVmHandlers.Save} in a source registry, {@link SaveVmHandlers.Load} in a
 *            destination one
 */
public record SaveStateEntry<H extends SaveVmHandlers>(String idstr, int instanceId, int versionId, int sectionId,
                                                        H handlers) {
    public SaveStateEntry {
        if (idstr == null || idstr.isEmpty() || idstr.length() > 255) {
            throw new IllegalArgumentException("idstr must be 1..255 characters: " + idstr);
        }
        if (instanceId < 0 || versionId < 0) {
            throw new IllegalArgumentException("instance and version ids must not be negative");
        }
    }

    public String describe() {
        return "'" + idstr + "' instance " + instanceId;
    }
}
