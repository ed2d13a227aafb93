package io.jmigrate.memory;

import java.lang.foreign.MemorySegment;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

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

    /**
     * Starts {@link #sha256} on a new platform thread named {@code threadName} and returns its
     * result. Migration uses it to digest RAM after reporting {@code completed}, so the digest
     * never adds to total-time, downtime or the moment completion is reported; whoever lets the
     * vCPUs run again waits for it first ({@code MigrationSubject.holdRunUntil}).
     */
    public static CompletableFuture<String> sha256Async(List<RamBlock> blocks, String threadName) {
        CompletableFuture<String> f = new CompletableFuture<>();
        Thread.ofPlatform().name(threadName).daemon(true).start(() -> {
            try {
                f.complete(sha256(blocks));
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }

    /**
     * The digest of {@code f} once done: waits up to {@code timeout}; null if it failed or did
     * not finish in time.
     */
    public static String await(CompletableFuture<String> f, Duration timeout) {
        if (f == null) {
            return null;
        }
        try {
            return f.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        } catch (ExecutionException | TimeoutException e) {
            return null;
        }
    }

    private static byte[] longBytes(long v) {
        byte[] b = new byte[8];
        for (int i = 0; i < 8; i++) {
            b[i] = (byte) (v >>> (56 - 8 * i));
        }
        return b;
    }
}
