package io.jmigrate.common;

import java.util.concurrent.atomic.AtomicReference;

/**
 * First-error-wins holder shared by the threads of one migration. The first error recorded
 * stays; later ones are dropped (they are usually consequences of the first), as QEMU's
 * {@code migrate_set_error} does.
 */
public final class FirstError {
    private final AtomicReference<MigrationException> first = new AtomicReference<>();
    private final java.util.function.Consumer<MigrationException> onFirst;

    public FirstError() {
        this(null);
    }

    /**
     * @param onFirst called once, on the thread that records the first error, right after it is
     *                recorded (e.g. to close the main channel so that a blocked loader wakes up);
     *                it must not block
     */
    public FirstError(java.util.function.Consumer<MigrationException> onFirst) {
        this.onFirst = onFirst;
    }

    /** Records {@code e} if no error was recorded yet; returns the error that is now in force. */
    public MigrationException set(MigrationException e) {
        if (first.compareAndSet(null, e) && onFirst != null) {
            try {
                onFirst.accept(e);
            } catch (RuntimeException ignored) {
                // the listener only tears down; the first error is what matters
            }
        }
        return first.get();
    }

    /** Records any throwable, wrapping non-migration errors as INTERNAL or IO. */
    public MigrationException set(Throwable t) {
        return set(wrap(t));
    }

    public MigrationException get() {
        return first.get();
    }

    public boolean isSet() {
        return first.get() != null;
    }

    /** Throws the recorded error, if any. */
    public void throwIfSet() {
        MigrationException e = first.get();
        if (e != null) {
            throw e;
        }
    }

    public static MigrationException wrap(Throwable t) {
        if (t instanceof MigrationException me) {
            return me;
        }
        if (t instanceof java.io.IOException) {
            return new MigrationException(MigrationException.Category.IO,
                    t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage(), t);
        }
        return new MigrationException(MigrationException.Category.INTERNAL, String.valueOf(t), t);
    }
}
