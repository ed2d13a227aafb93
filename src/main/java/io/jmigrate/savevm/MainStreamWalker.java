package io.jmigrate.savevm;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.stream.QemuFileReader;

import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * The one walk of the main migration stream's records (PROTOCOL.md §1.2-§1.8), shared by the
 * destination's loader ({@link LoadVmDispatcher}) and {@code jmigrate analyze}, so that a record
 * kind is taught once: the file header, the configuration section (only first), device sections
 * (START/FULL with the full header, PART/END resolved to the START of their section id, each
 * closed by its footer), commands, and EOF. What a section's body means is the
 * {@link Visitor}'s business; so is the vmdesc trailer after EOF, which the two read
 * differently (the loader takes it if present, the analyzer requires it to end the file).
 *
 * <pre>
 * file    := header [CONFIGURATION] record* EOF [trailer]
 * record  := START hdr body footer | FULL hdr body footer | PART id body footer | END id body footer
 *          | COMMAND cmd
 * </pre>
 *
 * A PART or END names a section id a START opened earlier (QEMU looks the id up among the
 * handlers that loaded a START, so a PART after END is not the walker's error; the analyzer
 * refuses it with {@link #isOpen}).
 */
public final class MainStreamWalker {

    /** What the walk hands over, record by record. Every method reads from the walk's reader. */
    public interface Visitor {
        /** After the file header, before the first record (the loader's {@code load_setup}). */
        default void afterHeader(QemuFileReader r) {
        }

        /** Before each record, whose type byte is at {@code at} (the loader polls its abort flag). */
        default void beforeRecord(QemuFileReader r, long at) {
        }

        /** QEMU_VM_CONFIGURATION (the first record), after its type byte at {@code at}. */
        void configuration(QemuFileReader r, long at);

        /**
         * A device section: reads its body, up to (not including) the footer, which the walk
         * checks next.
         *
         * @param h     the section's header (for PART/END only type and section id)
         * @param start the START or FULL header of the section: {@code h} itself for START and
         *              FULL, the START of the same section id for PART and END
         * @return the section's description for the footer check's error
         */
        String section(QemuFileReader r, SectionHeader h, SectionHeader start);

        /** A command whose 0x08 byte is at {@code at} and number at {@code at + 1}. */
        void command(QemuFileReader r, Command c, long at);

        /** QEMU_VM_EOF at {@code at}; the walk returns after this (the trailer is the visitor's). */
        void eof(QemuFileReader r, long at);
    }

    private final Map<Integer, SectionHeader> started = new HashMap<>();
    private final Set<Integer> open = new LinkedHashSet<>();
    private boolean walked;

    /** Walks {@code r} from the file header to EOF (included) with {@code v}; once per walker. */
    public void walk(QemuFileReader r, Visitor v) {
        if (walked) {
            throw new IllegalStateException("a MainStreamWalker walks one stream");
        }
        walked = true;
        run(r, v);
    }

    /** Whether the START of section {@code id} was read and its END not yet. */
    public boolean isOpen(int id) {
        return open.contains(id);
    }

    /** The section ids started and not ended, in START order (for error messages). */
    public Set<Long> openIds() {
        Set<Long> s = new LinkedHashSet<>();
        open.forEach(id -> s.add(Integer.toUnsignedLong(id)));
        return s;
    }

    private void run(QemuFileReader r, Visitor v) {
        StreamFraming.readFileHeader(r);
        v.afterHeader(r);
        boolean first = true;
        while (true) {
            long at = r.position();
            v.beforeRecord(r, at);
            SectionType t = StreamFraming.readSectionType(r);
            switch (t) {
                case CONFIGURATION -> {
                    if (!first) {
                        throw r.fail(Category.PROTOCOL, at, "QEMU_VM_CONFIGURATION (0x07) found here, but it is only "
                                + "valid directly after the file header (offset 8)");
                    }
                    v.configuration(r, at);
                }
                case START, FULL, PART, END -> section(r, v, t, at);
                case COMMAND -> v.command(r, StreamFraming.readCommand(r), at);
                case EOF -> {
                    v.eof(r, at);
                    return;
                }
                case VMDESCRIPTION -> throw r.fail(Category.PROTOCOL, at,
                        "QEMU_VM_VMDESCRIPTION (0x06) before QEMU_VM_EOF: expected a section, a command or EOF");
                case SUBSECTION, FOOTER -> throw new IllegalStateException("rejected by readSectionType");
            }
            first = false;
        }
    }

    private void section(QemuFileReader r, Visitor v, SectionType t, long at) {
        SectionHeader h = StreamFraming.readSectionHeader(r, t, at);
        SectionHeader start = h;
        if (t == SectionType.START) {
            started.put(h.sectionId(), h);
            open.add(h.sectionId());
        } else if (!t.hasFullHeader()) {
            start = started.get(h.sectionId());
            if (start == null) {
                throw unstarted(r, h, at);
            }
        }
        String what = v.section(r, h, start);
        StreamFraming.readFooter(r, h.sectionId(), what);
        if (t == SectionType.END) {
            open.remove(h.sectionId());
        }
    }

    /** The error for a PART or END whose section id no START opened (or that already ended). */
    public MigrationException unstarted(QemuFileReader r, SectionHeader h, long at) {
        return r.fail(Category.PROTOCOL, at, h.type() + " section with id " + Integer.toUnsignedLong(h.sectionId())
                + " has no START section before it (expected the id of an open iterative section"
                + (open.isEmpty() ? "" : ", one of " + openIds()) + ")");
    }
}
