package io.jmigrate.ram;

/**
 * Flag bits of a RAM record's leading be64 word (PROTOCOL.md §1.11). The word holds the page
 * offset within a RAMBlock in its high bits and these flags in the bits below the target page
 * size: {@code flags = word & (pageSize - 1)}, {@code offset = word & ~(pageSize - 1)}.
 *
 * <pre>
 *  0x001  (FULL, obsolete since 2009; never sent, rejected)
 *  0x002  ZERO           zero page, then one fill byte that must be 0
 *  0x004  MEM_SIZE       high bits = total RAM bytes; a block list follows
 *  0x008  PAGE           normal page, then pageSize raw bytes
 *  0x010  EOS            end of this section's RAM payload
 *  0x020  CONTINUE       same RAMBlock as the previous record: no name follows
 *  0x040  XBZRLE         delta-encoded page (not supported)
 *  0x080  HOOK           RDMA only (not supported)
 *  0x100  (COMPRESS_PAGE, removed in QEMU 9.1; rejected)
 *  0x200  MULTIFD_FLUSH  multifd sync point, no payload
 * </pre>
 */
public final class RamFlags {
    public static final int FULL_OBSOLETE = 0x001;
    public static final int ZERO = 0x002;
    public static final int MEM_SIZE = 0x004;
    public static final int PAGE = 0x008;
    public static final int EOS = 0x010;
    public static final int CONTINUE = 0x020;
    public static final int XBZRLE = 0x040;
    public static final int HOOK = 0x080;
    public static final int COMPRESS_PAGE_REMOVED = 0x100;
    public static final int MULTIFD_FLUSH = 0x200;

    /** Flags must stay below this value (QEMU requires target pages of at least 1 KiB). */
    public static final int LIMIT = 0x400;

    /** The ram section's idstr, instance and version. */
    public static final String IDSTR = "ram";
    public static final int VERSION = 4;

    private RamFlags() {
    }

    /** Human-readable list of the flags in {@code flags}, e.g. "PAGE|CONTINUE". */
    public static String describe(int flags) {
        StringBuilder sb = new StringBuilder();
        String[] names = {"FULL", "ZERO", "MEM_SIZE", "PAGE", "EOS", "CONTINUE", "XBZRLE", "HOOK", "COMPRESS_PAGE",
            "MULTIFD_FLUSH"};
        for (int i = 0; i < names.length; i++) {
            if ((flags & (1 << i)) != 0) {
                sb.append(sb.isEmpty() ? "" : "|").append(names[i]);
            }
        }
        int rest = flags & ~(LIMIT - 1);
        if (rest != 0) {
            sb.append(sb.isEmpty() ? "" : "|").append(String.format("0x%x", rest));
        }
        return sb.isEmpty() ? "0" : sb.toString();
    }
}
