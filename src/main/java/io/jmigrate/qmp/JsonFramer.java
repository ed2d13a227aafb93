package io.jmigrate.qmp;

import java.nio.ByteBuffer;

/**
 * Splits a QMP input byte stream into top-level JSON texts without parsing them, in bounded
 * memory, the way QEMU's JSON streamer does: it counts brackets and braces outside strings, so a
 * request may span lines and several may share one. Each complete text goes to
 * {@link Handler#value}, whatever it holds ({@code {not json}} is one text, and the parser then
 * rejects it), so a malformed request costs only itself.
 *
 * <p>Resynchronisation: a text longer than {@code maxBytes} is reported once through
 * {@link Handler#overLong} and everything up to the next newline is discarded as it arrives,
 * without being kept. A raw newline inside a string (never valid JSON) ends the text there, so an
 * unterminated string cannot swallow the requests on the following lines.
 *
 * <p>Bytes are scanned, not characters: every byte that matters ({@code {}[]",:\} and
 * whitespace) is ASCII, and no byte of a multi-byte UTF-8 sequence is below 0x80.
 */
final class JsonFramer {
    /** Receives the framed texts; {@code text} is only valid during the call. */
    interface Handler {
        void value(byte[] text, int length);

        void overLong();
    }

    private enum State { OUTSIDE, VALUE, BARE, DISCARD }

    private static final int INITIAL_CAPACITY = 4096;
    /** After a text this large the buffer is given back, so idle sessions stay small. */
    private static final int KEEP_CAPACITY = 64 << 10;

    private final int maxBytes;
    private final Handler handler;
    private State state = State.OUTSIDE;
    private byte[] buf = new byte[INITIAL_CAPACITY];
    private int len;
    private int depth;
    private boolean inString;
    private boolean escaped;

    JsonFramer(int maxBytes, Handler handler) {
        if (maxBytes < 1) {
            throw new IllegalArgumentException("maxBytes must be positive: " + maxBytes);
        }
        this.maxBytes = maxBytes;
        this.handler = handler;
    }

    /** Consumes every remaining byte of {@code in}. */
    void feed(ByteBuffer in) {
        while (in.hasRemaining()) {
            byte b = in.get();
            switch (state) {
                case DISCARD -> {
                    if (b == '\n') {
                        state = State.OUTSIDE;
                    }
                }
                case OUTSIDE -> outside(b);
                case VALUE -> value(b);
                case BARE -> {
                    if (isWhitespace(b) || isStructural(b)) {
                        emit();
                        outside(b); // the terminator belongs to what follows
                    } else {
                        append(b);
                    }
                }
            }
        }
    }

    /** Whether a text has started and is not complete yet (for tests). */
    boolean midText() {
        return state == State.VALUE || state == State.BARE;
    }

    /** The bytes held for the current text, at most {@code maxBytes} (for tests). */
    int bufferCapacity() {
        return buf.length;
    }

    private void outside(byte b) {
        if (isWhitespace(b)) {
            return;
        }
        len = 0;
        depth = 0;
        inString = false;
        escaped = false;
        switch (b) {
            case '{', '[' -> {
                state = State.VALUE;
                depth = 1;
                append(b);
            }
            case '"' -> {
                state = State.VALUE; // a top-level string: depth 0, complete when it closes
                inString = true;
                append(b);
            }
            case '}', ']', ',', ':' -> {
                // a stray structural character is a text of its own, which the parser rejects
                append(b);
                emit();
            }
            default -> {
                state = State.BARE;
                append(b);
            }
        }
    }

    private void value(byte b) {
        if (!append(b)) {
            return;
        }
        if (inString) {
            if (escaped) {
                escaped = false;
            } else if (b == '\\') {
                escaped = true;
            } else if (b == '"') {
                inString = false;
                if (depth == 0) {
                    emit();
                }
            } else if (b == '\n') {
                emit(); // a raw newline cannot be inside a JSON string: the text ends here, malformed
            }
            return;
        }
        switch (b) {
            case '"' -> inString = true;
            case '{', '[' -> depth++;
            case '}', ']' -> {
                if (--depth == 0) {
                    emit();
                }
            }
            default -> {
            }
        }
    }

    /** Appends {@code b} to the current text; false (and the text dropped) past the limit. */
    private boolean append(byte b) {
        if (len == maxBytes) {
            len = 0;
            shrink();
            state = b == '\n' ? State.OUTSIDE : State.DISCARD;
            handler.overLong();
            return false;
        }
        if (len == buf.length) {
            byte[] bigger = new byte[(int) Math.min(maxBytes, 2L * buf.length)];
            System.arraycopy(buf, 0, bigger, 0, len);
            buf = bigger;
        }
        buf[len++] = b;
        return true;
    }

    private void emit() {
        state = State.OUTSIDE;
        int n = len;
        len = 0;
        handler.value(buf, n);
        shrink();
    }

    private void shrink() {
        if (buf.length > KEEP_CAPACITY) {
            buf = new byte[INITIAL_CAPACITY];
        }
    }

    private static boolean isWhitespace(byte b) {
        return b == ' ' || b == '\t' || b == '\n' || b == '\r';
    }

    private static boolean isStructural(byte b) {
        return b == '{' || b == '}' || b == '[' || b == ']' || b == '"' || b == ',' || b == ':';
    }
}
