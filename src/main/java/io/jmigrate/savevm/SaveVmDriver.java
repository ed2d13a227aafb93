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
 *  complete          [CMD SWITCHOVER_START] END per iterable, FULL per other device, EOF, vmdesc
 * </pre>
 *
 * Runs on the migration thread only.
 */
public final class SaveVmDriver {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final List<SaveStateEntry> entries;
    private final StreamConfiguration configuration;
    private final int pageSize;

    public SaveVmDriver(List<SaveStateEntry> entries, StreamConfiguration configuration, int pageSize) {
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
        for (SaveStateEntry e : entries) {
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
        for (SaveStateEntry e : entries) {
            n += e.handlers().pendingEstimate();
        }
        return n;
    }

    public long pendingExact() {
        long n = 0;
        for (SaveStateEntry e : entries) {
            n += e.handlers().pendingExact();
        }
        return n;
    }

    /** One PART section per iterable device. Returns true when every device finished its pass. */
    public boolean iterate(QemuFileWriter w, SaveVmHandlers.RateLimit limit) {
        boolean all = true;
        for (SaveStateEntry e : entries) {
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
     * sections, FULL sections, EOF and the vmdesc trailer.
     */
    public void complete(QemuFileWriter w, boolean sendSwitchoverStart, boolean sendVmdesc) {
        if (sendSwitchoverStart) {
            StreamFraming.writeCommand(w, Command.of(MigCommand.SWITCHOVER_START));
            w.flush();
        }
        for (SaveStateEntry e : entries) {
            if (e.handlers().isIterable()) {
                StreamFraming.writeSectionHeader(w, SectionHeader.partEnd(SectionType.END, e.sectionId()));
                e.handlers().saveComplete(w);
                StreamFraming.writeFooter(w, e.sectionId());
            }
        }
        ArrayNode devices = JSON.createArrayNode();
        for (SaveStateEntry e : entries) {
            if (!e.handlers().isIterable()) {
                StreamFraming.writeSectionHeader(w, SectionHeader.full(SectionType.FULL, e.sectionId(), e.idstr(),
                        e.instanceId(), e.versionId()));
                e.handlers().saveState(w);
                StreamFraming.writeFooter(w, e.sectionId());
                ObjectNode d = e.handlers().vmdesc();
                if (d != null) {
                    ObjectNode entry = JSON.createObjectNode();
                    entry.put("name", e.idstr());
                    entry.put("instance_id", e.instanceId());
                    entry.setAll(d);
                    devices.add(entry);
                }
            }
        }
        w.putU8(SectionType.EOF.wire);
        if (sendVmdesc) {
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
        for (SaveStateEntry e : entries) {
            try {
                e.handlers().cleanup();
            } catch (RuntimeException ignored) {
                // cleanup reports nothing: the first error was already recorded
            }
        }
    }
}
