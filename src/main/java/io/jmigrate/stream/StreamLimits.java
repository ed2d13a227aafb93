package io.jmigrate.stream;

/**
 * Bounds applied to every length read off the wire, checked before anything is allocated.
 *
 * @param maxBuffer      largest single buffer read with {@link QemuFileReader#readBytes(int, String)}
 *                       (VMState buffers, command payloads, device-state chunks)
 * @param maxVmdesc      largest vmdesc JSON trailer
 * @param maxCommandLen  largest QEMU_VM_COMMAND payload
 */
public record StreamLimits(int maxBuffer, int maxVmdesc, int maxCommandLen) {
    /** Generous defaults: 64 MiB buffers, 64 MiB vmdesc, 64 KiB commands. */
    public static final StreamLimits DEFAULT = new StreamLimits(64 << 20, 64 << 20, 64 << 10);

    public StreamLimits {
        if (maxBuffer <= 0 || maxVmdesc <= 0 || maxCommandLen <= 0) {
            throw new IllegalArgumentException("stream limits must be positive");
        }
    }
}
