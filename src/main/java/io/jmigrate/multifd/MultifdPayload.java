package io.jmigrate.multifd;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * The unit of work handed to a channel thread (QEMU's {@code MultiFDSendData}): a type tag plus
 * both payload kinds, preallocated once and recycled. Ownership moves by swap in
 * {@link MultifdSender#send(MultifdPayload)}: the producer fills one, gives it to an idle channel
 * and gets that channel's empty one back. Never shared between two threads at once.
 */
public final class MultifdPayload {
    /** What the payload holds. NONE = empty. */
    public enum Type { NONE, RAM, DEVICE_STATE }

    private Type type = Type.NONE;
    // RAM: pages of one block, as offsets (no object per page)
    private MultifdBlock block;
    private final long[] offsets;
    private int count;
    // device state: copied bytes
    private byte[] idstr;
    private int instanceId;
    private ByteBuffer data;

    /** A payload for packets of {@code pageCount} pages. */
    public MultifdPayload(int pageCount) {
        offsets = new long[pageCount];
    }

    public Type type() {
        return type;
    }

    public boolean isEmpty() {
        return type == Type.NONE;
    }

    public boolean isFull() {
        return type == Type.RAM && count == offsets.length;
    }

    public MultifdBlock block() {
        return block;
    }

    public int count() {
        return count;
    }

    long[] offsets() {
        return offsets;
    }

    /**
     * Adds a page; the caller checks {@link #isFull()} and the block first. Returns false when the
     * page cannot join (full, another block, or a device-state payload).
     */
    public boolean addPage(MultifdBlock b, long offset) {
        if (type == Type.NONE) {
            type = Type.RAM;
            block = b;
        } else if (type != Type.RAM || block != b || count == offsets.length) {
            return false;
        }
        offsets[count++] = offset;
        return true;
    }

    /**
     * Fills a device-state payload with {@code src} itself, without a copy: the payload owns it
     * from now on (position to limit is the packet). Returns the direct buffer the payload held
     * before, free for the caller to reuse (its last packet was written), or null.
     */
    ByteBuffer adoptDeviceState(String id, int instance, ByteBuffer src) {
        if (type != Type.NONE) {
            throw new IllegalStateException("payload not empty: " + type);
        }
        if (!src.isDirect() || src.isReadOnly()) {
            throw new IllegalArgumentException("a handed-over device-state buffer must be direct and writable");
        }
        ByteBuffer old = data;
        data = src;
        idstr = id.getBytes(StandardCharsets.ISO_8859_1);
        instanceId = instance;
        type = Type.DEVICE_STATE;
        if (old != null) {
            old.clear();
        }
        return old;
    }

    /** Fills a device-state payload with a copy of {@code src}'s remaining bytes (position unchanged). */
    public void setDeviceState(String id, int instance, ByteBuffer src) {
        if (type != Type.NONE) {
            throw new IllegalStateException("payload not empty: " + type);
        }
        int len = src.remaining();
        if (data == null || data.capacity() < len) {
            data = ByteBuffer.allocateDirect(Math.max(len, 4096));
        }
        data.clear();
        data.put(src.duplicate()).flip();
        idstr = id.getBytes(StandardCharsets.ISO_8859_1);
        instanceId = instance;
        type = Type.DEVICE_STATE;
    }

    String idstr() {
        return new String(idstr, StandardCharsets.ISO_8859_1);
    }

    int instanceId() {
        return instanceId;
    }

    ByteBuffer data() {
        return data;
    }

    public void clear() {
        type = Type.NONE;
        block = null;
        count = 0;
        idstr = null;
        instanceId = 0;
        if (data != null) {
            data.clear().limit(0);
        }
    }
}
