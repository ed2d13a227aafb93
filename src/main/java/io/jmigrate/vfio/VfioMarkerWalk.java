package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;

/**
 * The be64 tag loop of one VFIO section body on the main channel (PROTOCOL.md §4.1, QEMU's
 * {@code vfio_load_state}), shared by the destination's loader ({@link VfioMigration}) and the
 * analyzer ({@link VfioSectionDecoder}), so that a marker is taught once:
 *
 * <pre>
 * body := DEV_DATA_STATE* ( END_OF_STATE
 *                         | DEV_SETUP_STATE END_OF_STATE
 *                         | DEV_CONFIG_STATE config-VMState END_OF_STATE
 *                         | DEV_INIT_DATA_SENT | DEV_CONFIG_LOAD_READY )
 * DEV_DATA_STATE := tag be64 size, size bytes of device data
 * </pre>
 *
 * The walk reads the tags, the data sizes and the config VMState; the visitor decides what the
 * data and the markers mean (write them to the device, or count them), and consumes each data
 * chunk's bytes. Errors name {@code where} (the device) and the byte offset.
 */
public final class VfioMarkerWalk {

    /** What the walk hands over. */
    public interface Visitor {
        /** Every tag read, at {@code at}, before its meaning is acted on (the analyzer counts them). */
        default void marker(long tag, long at) {
        }

        /** DEV_DATA_STATE of {@code size} bytes, whose bytes follow: the visitor reads or skips exactly them. */
        void data(QemuFileReader r, long size);

        /** DEV_CONFIG_STATE: the config VMState's bytes, read at {@code at}; END_OF_STATE is checked next. */
        void config(byte[] config, long at);

        /** DEV_INIT_DATA_SENT at {@code at}: the body ends. */
        default void initDataSent(QemuFileReader r, long at) {
        }

        /** DEV_CONFIG_LOAD_READY at {@code at}: the body ends. */
        default void loadReady(QemuFileReader r, long at) {
        }
    }

    private VfioMarkerWalk() {
    }

    /** The marker's name, or null for a tag that is none of §4.1's. */
    public static String markerName(long tag) {
        if (tag == VfioMigration.END_OF_STATE) {
            return "END_OF_STATE";
        } else if (tag == VfioMigration.DEV_CONFIG_STATE) {
            return "DEV_CONFIG_STATE";
        } else if (tag == VfioMigration.DEV_SETUP_STATE) {
            return "DEV_SETUP_STATE";
        } else if (tag == VfioMigration.DEV_DATA_STATE) {
            return "DEV_DATA_STATE";
        } else if (tag == VfioMigration.DEV_INIT_DATA_SENT) {
            return "DEV_INIT_DATA_SENT";
        } else if (tag == VfioMigration.DEV_CONFIG_LOAD_READY) {
            return "DEV_CONFIG_LOAD_READY";
        }
        return null;
    }

    /**
     * Walks one section body of {@code type}, up to (not including) its footer.
     *
     * @param where the device, for errors ("VFIO device vf0/vfio")
     */
    public static void section(QemuFileReader r, SectionType type, String where, Visitor v) {
        while (true) {
            long at = r.position();
            long tag = r.readBe64(where + ": VFIO marker");
            if (markerName(tag) == null) {
                throw r.fail(Category.PROTOCOL, at, where + String.format(": unknown VFIO marker 0x%016x in %s section",
                        tag, type) + " (expected one of 0xffffffffef100001..6)");
            }
            v.marker(tag, at);
            if (tag == VfioMigration.END_OF_STATE) {
                return;
            } else if (tag == VfioMigration.DEV_DATA_STATE) {
                long size = r.readBe64(where + ": DEV_DATA_STATE size");
                if (size < 0) {
                    throw r.fail(Category.PROTOCOL, at + 8, where + ": DEV_DATA_STATE size "
                            + Long.toUnsignedString(size) + " is too large");
                }
                v.data(r, size);
            } else if (tag == VfioMigration.DEV_CONFIG_STATE) {
                long vat = r.position();
                byte[] cfg = configBody(r, where);
                v.config(cfg, vat);
                v.marker(VfioMigration.END_OF_STATE, r.position() - 8);
                return;
            } else if (tag == VfioMigration.DEV_SETUP_STATE) {
                endOfState(r, where, "DEV_SETUP_STATE");
                v.marker(VfioMigration.END_OF_STATE, r.position() - 8);
                return;
            } else if (tag == VfioMigration.DEV_INIT_DATA_SENT) {
                v.initDataSent(r, at);
                return;
            } else {
                v.loadReady(r, at);
                return;
            }
        }
    }

    /**
     * After DEV_CONFIG_STATE (on the main channel, or at the start of a multifd config packet):
     * the config VMState and the END_OF_STATE that closes it.
     */
    public static byte[] configBody(QemuFileReader r, String where) {
        long vat = r.position();
        byte[] cfg = VfioConfigVmsd.load(r);
        endOfState(r, where, "config VMState (at byte offset " + vat + ")");
        return cfg;
    }

    /** Reads the END_OF_STATE that must follow {@code what}. */
    private static void endOfState(QemuFileReader r, String where, String what) {
        long at = r.position();
        long end = r.readBe64(where + ": END_OF_STATE after " + what);
        if (end != VfioMigration.END_OF_STATE) {
            throw r.fail(Category.PROTOCOL, at, where + String.format(": %s followed by 0x%016x, expected END_OF_STATE",
                    what, end));
        }
    }
}
