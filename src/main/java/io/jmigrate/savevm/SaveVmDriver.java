package io.jmigrate.savevm;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.stream.QemuFileWriter;

import java.util.List;

/**
 * The source side of the savevm stream (savevm.c's {@code qemu_savevm_state_*}), in the order of
 * PROTOCOL.md §1.12:
 *
 * <pre>
 *  header            QEVM, version 3, 0x07 configuration
 *  [return path]     CMD OPEN_RETURN_PATH, CMD PING(1)
 *  setup             START section per iterable device
 *  iterate …         PART section per iterable device, repeated
 *  complete          [CMD SWITCHOVER_START] [save threads] END per iterable, [join], FULL per other
 *                    device, EOF, vmdesc
 * </pre>
 *
 * Runs on the migration thread only.
 */
public final class SaveVmDriver {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final List<SaveStateEntry<SaveVmHandlers.Save>> entries;
    private final StreamConfiguration configuration;
    private final int pageSize;

    public SaveVmDriver(List<SaveStateEntry<SaveVmHandlers.Save>> entries, StreamConfiguration configuration, int pageSize) {
        this.entries = List.copyOf(entries);
        this.configuration = configuration;
        this.pageSize = pageSize;
    }

    /** Header, configuration, optional return-path commands. */
    public void writeHeader(QemuFileWriter w, boolean openReturnPath) {
        StreamFraming.writeFileHeader(w);
        if (configuration != null) {
            w.putU8(SectionType.CONFIGURATION.wire);
            configuration.save(w);
        }
        if (openReturnPath) {
            StreamFraming.writeCommand(w, Command.of(MigCommand.OPEN_RETURN_PATH));
            StreamFraming.writeCommand(w, Command.ping(1));
        }
        w.flush();
    }

    /** START sections of every iterable device. */
    public void setup(QemuFileWriter w) {
        for (SaveStateEntry<SaveVmHandlers.Save> e : entries) {
            if (e.handlers().isIterable()) {
                StreamFraming.writeSectionHeader(w, SectionHeader.full(SectionType.START, e.sectionId(), e.idstr(),
                        e.instanceId(), e.versionId()));
                e.handlers().saveSetup(w);
                StreamFraming.writeFooter(w, e.sectionId());
            }
        }
        w.flush();
    }

    public long pendingEstimate() {
        long n = 0;
        for (SaveStateEntry<SaveVmHandlers.Save> e : entries) {
            n += e.handlers().pendingEstimate();
        }
        return n;
    }

    public long pendingExact() {
        long n = 0;
        for (SaveStateEntry<SaveVmHandlers.Save> e : entries) {
            n += e.handlers().pendingExact();
        }
        return n;
    }

    /** One PART section per iterable device. Returns true when every device finished its pass. */
    public boolean iterate(QemuFileWriter w, SaveVmHandlers.RateLimit limit) {
        boolean all = true;
        for (SaveStateEntry<SaveVmHandlers.Save> e : entries) {
            if (e.handlers().isIterable()) {
                StreamFraming.writeSectionHeader(w, SectionHeader.partEnd(SectionType.PART, e.sectionId()));
                all &= e.handlers().saveIterate(w, limit);
                StreamFraming.writeFooter(w, e.sectionId());
                if (limit.exceeded()) {
                    all = false;
                    break;
                }
            }
        }
        w.flush();
        return all;
    }

    /**
     * Completion with the VM stopped: SWITCHOVER_START (if the compat property says so), END
     * sections, FULL sections, EOF and the vmdesc trailer, in one go (no save threads).
     */
    public void complete(QemuFileWriter w, boolean sendSwitchoverStart, boolean sendVmdesc) {
        if (sendSwitchoverStart) {
            switchoverStart(w);
        }
        completeIterables(w);
        completeNonIterables(w);
        finish(w, sendVmdesc);
    }

    /** Step 4 of PROTOCOL.md §1.12: MIG_CMD_SWITCHOVER_START, flushed. */
    public void switchoverStart(QemuFileWriter w) {
        StreamFraming.writeCommand(w, Command.of(MigCommand.SWITCHOVER_START));
        w.flush();
    }

    /** The devices that have the save-thread hook, in registration order. */
    public List<SaveStateEntry<SaveVmHandlers.Save>> saveThreadDevices() {
        return entries.stream().filter(e -> e.handlers().hasCompletePrecopyThread()).toList();
    }

    /** Step 5 of §1.12: one END section per iterable device (save threads may run meanwhile). */
    public void completeIterables(QemuFileWriter w) {
        for (SaveStateEntry<SaveVmHandlers.Save> e : entries) {
            if (e.handlers().isIterable()) {
                StreamFraming.writeSectionHeader(w, SectionHeader.partEnd(SectionType.END, e.sectionId()));
                e.handlers().saveComplete(w);
                StreamFraming.writeFooter(w, e.sectionId());
            }
        }
    }

    /** Step 6 of §1.12: one FULL section per device with a save_state hook, after the save threads were joined. */
    public void completeNonIterables(QemuFileWriter w) {
        for (SaveStateEntry<SaveVmHandlers.Save> e : entries) {
            if (e.handlers().hasSaveState()) {
                StreamFraming.writeSectionHeader(w, SectionHeader.full(SectionType.FULL, e.sectionId(), e.idstr(),
                        e.instanceId(), e.versionId()));
                e.handlers().saveState(w);
                StreamFraming.writeFooter(w, e.sectionId());
            }
        }
    }

    /** Steps 7-8 of §1.12: EOF, then the vmdesc trailer (devices' entries from their FULL sections). */
    public void finish(QemuFileWriter w, boolean sendVmdesc) {
        w.putU8(SectionType.EOF.wire);
        if (sendVmdesc) {
            ArrayNode devices = JSON.createArrayNode();
            for (SaveStateEntry<SaveVmHandlers.Save> e : entries) {
                ObjectNode d = e.handlers().hasSaveState() ? e.handlers().vmdesc() : null;
                if (d != null) {
                    ObjectNode entry = JSON.createObjectNode();
                    entry.put("name", e.idstr());
                    entry.put("instance_id", e.instanceId());
                    entry.setAll(d);
                    devices.add(entry);
                }
            }
            ObjectNode root = JSON.createObjectNode();
            if (configuration != null) {
                root.set("configuration", configuration.vmdesc());
            }
            root.put("page_size", pageSize);
            root.set("devices", devices);
            StreamFraming.writeVmdesc(w, io.jmigrate.vmstate.Vmdesc.toQemuJson(root));
        }
        w.flush();
    }

    public void cleanup() {
        for (SaveStateEntry<SaveVmHandlers.Save> e : entries) {
            try {
                e.handlers().saveCleanup();
            } catch (RuntimeException ignored) {
                // cleanup reports nothing: the first error was already recorded
            }
        }
    }
}
