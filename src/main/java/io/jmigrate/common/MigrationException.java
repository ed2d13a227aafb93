package io.jmigrate.common;

/**
 * The one error type of jmigrate. Every failure carries a {@link Category} so that callers
 * (QMP, the CLI, the migration thread) can map it without parsing messages, and a message
 * written for people: what failed, where (channel, section, device, offset) and what to do.
 */
public class MigrationException extends RuntimeException {

    /** Broad classes of failure; QMP maps them onto its error classes. */
    public enum Category {
        /** Malformed or hostile bytes on a stream or channel. */
        PROTOCOL,
        /** The two ends disagree (machine type, RAM size, sections, channel count). */
        MISMATCH,
        /** A socket or file failed. */
        IO,
        /** A length or count exceeds a configured bound. */
        LIMIT,
        /** A bad argument or configuration from the user. */
        CONFIG,
        /** Wrong state for the request (e.g. migrate while active). */
        STATE,
        /** Cancelled by the user or aborted because another thread failed. */
        CANCELLED,
        /** Timed out waiting for a peer. */
        TIMEOUT,
        /** A bug. */
        INTERNAL
    }

    private final Category category;

    public MigrationException(Category category, String message) {
        super(message);
        this.category = category;
    }

    public MigrationException(Category category, String message, Throwable cause) {
        super(message, cause);
        this.category = category;
    }

    public Category category() {
        return category;
    }
}
