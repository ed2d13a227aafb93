package io.jmigrate.stream;

import io.jmigrate.common.MigrationException;

/**
 * An error at a known byte offset of a stream: a truncated read, a bad value, a length over
 * its maximum. The message starts with the stream's name and the offset, then what was
 * expected.
 */
public final class StreamException extends MigrationException {
    private final String streamName;
    private final long offset;

    public StreamException(Category category, String streamName, long offset, String what) {
        super(category, streamName + " at byte offset " + offset + ": " + what);
        this.streamName = streamName;
        this.offset = offset;
    }

    public StreamException(Category category, String streamName, long offset, String what, Throwable cause) {
        super(category, streamName + " at byte offset " + offset + ": " + what, cause);
        this.streamName = streamName;
        this.offset = offset;
    }

    public String streamName() {
        return streamName;
    }

    public long offset() {
        return offset;
    }
}
