package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code --device blob,id=NAME,size=SIZE[,chunk=SIZE][,read-rate=R][,write-rate=R][,seed=N][,mutate=on|off]}
 * plus documented test hooks: {@code order=reverse}, {@code fail-at=save:N|load:N} and
 * {@code hold-at=save:N}.
 *
 * @param id        device id; the section idstr is {@code NAME/blob}
 * @param size      state size in bytes (4 KiB .. 1 GiB)
 * @param chunk     bytes per device-state packet (4 KiB .. 16 MiB, default 1 MiB as VFIO's)
 * @param readRate  bytes/s the source reads its state at (0 = unpaced): a slow device
 * @param writeRate bytes/s the destination writes its state at (0 = unpaced)
 * @param seed      seed of the initial content (default: derived from the id)
 * @param reverse   test hook: the save thread sends the chunks last to first, so that two chunks
 *                  of one channel always arrive out of index order
 * @param failSave  test hook: the first migration's save thread fails before chunk N (-1: never)
 * @param failLoad  test hook: the load thread fails before applying chunk N (-1: never)
 * @param holdSave  test hook {@code hold-at=save:N}: the first migration's save thread waits
 *                  before chunk N until the migration is aborted (cancel, or another failure), so
 *                  a test can act while device state is in flight (-1: never)
 * @param mutate    whether the running device keeps rewriting its state (default on); off keeps it
 *                  as filled, so that a test can compare its digest before and after a migration
 *                  that failed while the VM ran on
 */
public record BlobSpec(String id, long size, int chunk, long readRate, long writeRate, long seed, boolean reverse,
                       int failSave, int failLoad, int holdSave, boolean mutate) {
    public static final long MAX_SIZE = 1L << 30;
    public static final int DEFAULT_CHUNK = 1 << 20;
    public static final int MAX_CHUNK = 16 << 20;

    public BlobSpec {
        if (id == null || id.isEmpty() || id.length() > 200 || !id.matches("[A-Za-z0-9_.-]+")) {
            throw new MigrationException(Category.CONFIG, "--device blob: id '" + id
                    + "' must be 1..200 characters of letters, digits, '_', '.', '-'");
        }
        if (size < 4096 || size > MAX_SIZE) {
            throw new MigrationException(Category.CONFIG, "--device blob,id=" + id + ": size " + size
                    + " must be 4 KiB .. 1 GiB");
        }
        if (chunk < 4096 || chunk > MAX_CHUNK) {
            throw new MigrationException(Category.CONFIG, "--device blob,id=" + id + ": chunk " + chunk
                    + " must be 4 KiB .. 16 MiB");
        }
        if (readRate < 0 || writeRate < 0) {
            throw new MigrationException(Category.CONFIG, "--device blob,id=" + id + ": rates must not be negative");
        }
    }

    /** Number of chunks (device-state packets) the state takes. */
    public int chunks() {
        return (int) ((size + chunk - 1) / chunk);
    }

    /** The section idstr, {@code NAME/blob} (as VFIO's {@code ID/vfio}). */
    public String idstr() {
        return id + "/blob";
    }

    /** Parses the option text after {@code --device}. */
    public static BlobSpec parse(String option) {
        String[] parts = option.split(",");
        if (!parts[0].equals("blob")) {
            throw new MigrationException(Category.CONFIG, "--device '" + parts[0] + "': unknown device type, "
                    + "expected blob");
        }
        Map<String, String> kv = new LinkedHashMap<>();
        for (int i = 1; i < parts.length; i++) {
            int eq = parts[i].indexOf('=');
            if (eq <= 0) {
                throw new MigrationException(Category.CONFIG, "--device blob: '" + parts[i] + "' is not KEY=VALUE");
            }
            kv.put(parts[i].substring(0, eq), parts[i].substring(eq + 1));
        }
        String id = kv.remove("id");
        String size = kv.remove("size");
        if (id == null || size == null) {
            throw new MigrationException(Category.CONFIG, "--device blob needs id=NAME and size=SIZE");
        }
        long sz = bytes(size);
        String chunk = kv.remove("chunk");
        long ch = chunk == null ? DEFAULT_CHUNK : bytes(chunk);
        if (ch > MAX_CHUNK) {
            throw new MigrationException(Category.CONFIG, "--device blob,id=" + id + ": chunk " + chunk
                    + " must be 4 KiB .. 16 MiB");
        }
        String rr = kv.remove("read-rate");
        String wr = kv.remove("write-rate");
        String seed = kv.remove("seed");
        String order = kv.remove("order");
        String failAt = kv.remove("fail-at");
        String holdAt = kv.remove("hold-at");
        String mutate = kv.remove("mutate");
        if (!kv.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "--device blob,id=" + id + ": unknown option(s) "
                    + kv.keySet() + ", expected id, size, chunk, read-rate, write-rate, seed, order, fail-at, hold-at, "
                    + "mutate");
        }
        if (mutate != null && !mutate.equals("on") && !mutate.equals("off")) {
            throw new MigrationException(Category.CONFIG, "--device blob,id=" + id + ": mutate must be on or off");
        }
        boolean reverse = false;
        if (order != null) {
            reverse = switch (order) {
                case "forward" -> false;
                case "reverse" -> true;
                default -> throw new MigrationException(Category.CONFIG, "--device blob,id=" + id
                        + ": order must be forward or reverse");
            };
        }
        int failSave = -1;
        int failLoad = -1;
        if (failAt != null) {
            String[] f = failAt.split(":");
            if (f.length != 2 || !(f[0].equals("save") || f[0].equals("load"))) {
                throw new MigrationException(Category.CONFIG, "--device blob,id=" + id
                        + ": fail-at must be save:N or load:N");
            }
            int n = Integer.parseInt(f[1]);
            if (f[0].equals("save")) {
                failSave = n;
            } else {
                failLoad = n;
            }
        }
        int holdSave = -1;
        if (holdAt != null) {
            if (!holdAt.startsWith("save:")) {
                throw new MigrationException(Category.CONFIG, "--device blob,id=" + id + ": hold-at must be save:N");
            }
            holdSave = Integer.parseInt(holdAt.substring(5));
        }
        return new BlobSpec(id, sz, (int) ch, rr == null ? 0 : bytes(rr), wr == null ? 0 : bytes(wr),
                seed == null ? id.hashCode() : Long.parseLong(seed), reverse, failSave, failLoad, holdSave,
                !"off".equals(mutate));
    }

    /** A size or rate with an optional K/M/G suffix; a bare number is bytes. */
    private static long bytes(String s) {
        char u = Character.toUpperCase(s.charAt(s.length() - 1));
        if (Character.isDigit(u)) {
            try {
                return Long.parseLong(s);
            } catch (NumberFormatException e) {
                throw new MigrationException(Category.CONFIG, "--device blob: '" + s + "' is not a number");
            }
        }
        return VmConfig.parseSize(s);
    }
}
