package io.jmigrate.memory;

import java.lang.foreign.MemorySegment;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * SHA-256 over all RAM blocks in order (each block's idstr, its length, then its bytes), so that
 * "nothing lost" is checked: the source digests its RAM once the VM has stopped at switchover,
 * the destination digests after loading, and the two must be equal.
 */
public final class RamDigest {
    private static final int CHUNK = 1 << 20;

    private RamDigest() {
    }

    public static String sha256(List<RamBlock> blocks) {
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        for (RamBlock b : blocks) {
            md.update(b.idstr().getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
            md.update(longBytes(b.usedLength()));
            MemorySegment seg = b.segment();
            for (long off = 0; off < b.usedLength(); off += CHUNK) {
                md.update(seg.asSlice(off, Math.min(CHUNK, b.usedLength() - off)).asByteBuffer());
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    private static byte[] longBytes(long v) {
        byte[] b = new byte[8];
        for (int i = 0; i < 8; i++) {
            b[i] = (byte) (v >>> (56 - 8 * i));
        }
        return b;
    }
}
