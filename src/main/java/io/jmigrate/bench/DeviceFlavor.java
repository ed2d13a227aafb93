package io.jmigrate.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Which {@code jmigrate vm --device} stands for a VF in the downtime benchmark and the demo, and
 * how each one turns multifd device state off.
 */
public enum DeviceFlavor {
    /**
     * The emulated VFIO VF: {@code --device vfio-emu,id=vfN,state-size=S,read-rate=R,write-rate=W}
     * with {@code x-migration-multifd-transfer=on|off}, as QEMU's VFIO property.
     */
    VFIO_EMU("vfio-emu", "emulated VFIO VF"),
    /**
     * The generic device of the device-state framework: {@code --device blob,id=vfN,size=S,...};
     * it has no property of its own, so "off" is the machine's {@code send-switchover-start=off},
     * under which it sends its state on the main channel.
     */
    BLOB("blob", "blob device");

    private final String option;
    private final String description;

    DeviceFlavor(String option, String description) {
        this.option = option;
        this.description = description;
    }

    public String option() {
        return option;
    }

    public String description() {
        return description;
    }

    public static DeviceFlavor parse(String s) {
        for (DeviceFlavor f : values()) {
            if (f.option.equals(s.toLowerCase(Locale.ROOT))) {
                return f;
            }
        }
        throw new IllegalArgumentException("unknown device '" + s + "', expected vfio-emu or blob");
    }

    /**
     * Whether the source counts the device's stop-copy state in the pending bytes that decide the
     * switchover (VFIO does, as QEMU's; the blob device's state is stop-copy only and not counted).
     */
    public boolean countsStateAsPending() {
        return this == VFIO_EMU;
    }

    /** The device ids of {@code n} devices: vf0, vf1, ... */
    static List<String> ids(int n) {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ids.add("vf" + i);
        }
        return ids;
    }

    /** The {@code jmigrate vm} arguments for {@code n} devices with multifd device state on or off. */
    public List<String> vmArguments(int n, boolean multifd, long stateBytes, long readRate, long writeRate) {
        List<String> a = new ArrayList<>();
        for (String id : ids(n)) {
            StringBuilder d = new StringBuilder(option).append(",id=").append(id);
            d.append(this == VFIO_EMU ? ",state-size=" : ",size=").append(stateBytes);
            if (readRate > 0) {
                d.append(",read-rate=").append(readRate);
            }
            if (writeRate > 0) {
                d.append(",write-rate=").append(writeRate);
            }
            if (this == VFIO_EMU) {
                d.append(",x-migration-multifd-transfer=").append(multifd ? "on" : "off");
            }
            a.add("--device");
            a.add(d.toString());
        }
        if (this == BLOB && !multifd && n > 0) {
            a.add("--global");
            a.add("migration.send-switchover-start=off");
        }
        return a;
    }
}
