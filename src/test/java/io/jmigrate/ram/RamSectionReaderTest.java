package io.jmigrate.ram;

import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.QemuFileWriter;
import io.jmigrate.stream.StreamException;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class RamSectionReaderTest {
    private static final int PAGE = 4096;

    /** Records everything the reader reports; normal pages go into one segment per block. */
    static final class Recorder implements RamLoadSink {
        final List<String> events = new ArrayList<>();
        final Arena arena = Arena.ofConfined();
        MemorySegment a = arena.allocate(4 * PAGE);

        @Override
        public void blockList(long totalBytes, List<RamBlockInfo> blocks) {
            events.add("blocks " + totalBytes + " " + blocks);
        }

        @Override
        public MemorySegment pageTarget(String block, long offset) {
            return block.equals("a") ? a.asSlice(offset, PAGE) : null;
        }

        @Override
        public void pageLoaded(String block, long offset) {
            events.add("page " + block + " " + offset);
        }

        @Override
        public void zeroPage(String block, long offset) {
            events.add("zero " + block + " " + offset);
        }

        @Override
        public void multifdFlush() {
            events.add("flush");
        }

        @Override
        public void endOfSection() {
            events.add("eos");
        }
    }

    private static byte[] bytes(Consumer<QemuFileWriter> body) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        QemuFileWriter w = new QemuFileWriter(out, "test");
        body.accept(w);
        w.flush();
        return out.toByteArray();
    }

    private static void setup(QemuFileWriter w) {
        w.putBe64((4L * PAGE + 2L * PAGE) | RamFlags.MEM_SIZE);
        w.putCountedString("a").putBe64(4L * PAGE);
        w.putCountedString("b").putBe64(2L * PAGE);
    }

    @Test
    void decodesEveryRecordKind() {
        byte[] page = new byte[PAGE];
        page[0] = 7;
        page[PAGE - 1] = 9;
        byte[] in = bytes(w -> {
            setup(w);
            w.putBe64(PAGE | RamFlags.PAGE).putCountedString("a").putBytes(page);
            w.putBe64(2L * PAGE | RamFlags.ZERO | RamFlags.CONTINUE).putU8(0);
            w.putBe64(RamFlags.ZERO).putCountedString("b").putU8(0);
            w.putBe64(PAGE | RamFlags.PAGE | RamFlags.CONTINUE).putBytes(page);
            w.putBe64(RamFlags.MULTIFD_FLUSH);
            w.putBe64(RamFlags.EOS);
        });
        Recorder rec = new Recorder();
        new RamSectionReader(PAGE).readSection(QemuFileReader.of(in, "test"), rec, "ram");
        assertThat(rec.events).containsExactly(
                "blocks 24576 [RamBlockInfo[idstr=a, usedLength=16384], RamBlockInfo[idstr=b, usedLength=8192]]",
                "page a 4096", "zero a 8192", "zero b 0", "page b 4096", "flush", "eos");
        assertThat(rec.a.get(ValueLayout.JAVA_BYTE, PAGE)).isEqualTo((byte) 7);
        assertThat(rec.a.get(ValueLayout.JAVA_BYTE, 2L * PAGE - 1)).isEqualTo((byte) 9);
    }

    @Test
    void continueAppliesAcrossSections() {
        byte[] in = bytes(w -> {
            setup(w);
            w.putBe64(RamFlags.ZERO).putCountedString("b").putU8(0);
            w.putBe64(RamFlags.EOS);
            w.putBe64(PAGE | RamFlags.ZERO | RamFlags.CONTINUE).putU8(0);
            w.putBe64(RamFlags.EOS);
        });
        Recorder rec = new Recorder();
        RamSectionReader reader = new RamSectionReader(PAGE);
        QemuFileReader r = QemuFileReader.of(in, "test");
        reader.readSection(r, rec, "ram START");
        reader.readSection(r, rec, "ram PART");
        assertThat(rec.events).containsSubsequence("zero b 0", "eos", "zero b 4096", "eos");
    }

    private static StreamException reject(Consumer<QemuFileWriter> body) {
        byte[] in = bytes(body);
        try {
            new RamSectionReader(PAGE).readSection(QemuFileReader.of(in, "test"), new Recorder(), "ram section 1");
        } catch (StreamException e) {
            return e;
        }
        throw new AssertionError("no error");
    }

    @Test
    void rejectsUnsupportedFlags() {
        assertThat(reject(w -> w.putBe64(RamFlags.XBZRLE)).getMessage())
                .contains("byte offset 0").contains("XBZRLE");
        assertThat(reject(w -> w.putBe64(RamFlags.PAGE | RamFlags.ZERO)).getMessage())
                .contains("ZERO|PAGE").contains("expected exactly one of");
        assertThat(reject(w -> w.putBe64(0x800)).getMessage()).contains("0x800");
    }

    @Test
    void rejectsContinueWithoutBlock() {
        assertThat(reject(w -> w.putBe64(RamFlags.ZERO | RamFlags.CONTINUE).putU8(0)).getMessage())
                .contains("CONTINUE but no block");
    }

    @Test
    void rejectsUnknownBlockAndOffsetOutsideBlock() {
        assertThat(reject(w -> {
            setup(w);
            w.putBe64(RamFlags.ZERO).putCountedString("zz").putU8(0);
        }).getMessage()).contains("unknown RAMBlock 'zz'").contains("byte offset 36");
        assertThat(reject(w -> {
            setup(w);
            w.putBe64(2L * PAGE | RamFlags.ZERO).putCountedString("b").putU8(0);
        }).getMessage()).contains("outside RAMBlock 'b'");
    }

    @Test
    void rejectsBadBlockListAndFillByte() {
        assertThat(reject(w -> {
            w.putBe64(PAGE | RamFlags.MEM_SIZE);
            w.putCountedString("a").putBe64(2L * PAGE);
        }).getMessage()).contains("used_length 8192").contains("announced total 4096");
        assertThat(reject(w -> {
            setup(w);
            w.putBe64(RamFlags.ZERO).putCountedString("a").putU8(5);
        }).getMessage()).contains("fill byte 5");
    }

    @Test
    void rejectsTruncatedPage() {
        StreamException e = reject(w -> {
            setup(w);
            w.putBe64(RamFlags.PAGE).putCountedString("a").putBytes(new byte[100]);
        });
        assertThat(e.getMessage()).contains("truncated").contains("4096 byte(s) of page data");
    }
}
