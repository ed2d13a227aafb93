package io.jmigrate.savevm;

import java.util.Arrays;
import java.util.HexFormat;

/**
 * One QEMU_VM_COMMAND record (PROTOCOL.md §1.8).
 *
 * <pre>
 *  u8   0x08 QEMU_VM_COMMAND
 *  be16 command number (1..11)
 *  be16 payload length (checked against the command's fixed length)
 *  len  payload
 * </pre>
 */
public record Command(MigCommand command, byte[] payload) {
    public Command {
        if (!command.lengthOk(payload.length)) {
            throw new IllegalArgumentException(command.qemuName() + " payload length " + payload.length
                    + " is wrong (expected " + command.length + ")");
        }
        payload = payload.clone();
    }

    public static Command of(MigCommand command) {
        return new Command(command, new byte[0]);
    }

    public static Command ping(int value) {
        return new Command(MigCommand.PING, new byte[] {
                (byte) (value >>> 24), (byte) (value >>> 16), (byte) (value >>> 8), (byte) value});
    }

    @Override
    public byte[] payload() {
        return payload.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Command c && c.command == command && Arrays.equals(c.payload, payload);
    }

    @Override
    public int hashCode() {
        return command.hashCode() * 31 + Arrays.hashCode(payload);
    }

    @Override
    public String toString() {
        return command.qemuName() + (payload.length == 0 ? "" : " " + HexFormat.of().formatHex(payload));
    }
}
