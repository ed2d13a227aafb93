package io.jmigrate.migration;

import io.jmigrate.channel.MigrationUri;

import io.jmigrate.common.FirstError;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.memory.RamDigest;
import io.jmigrate.savevm.LoadVmDispatcher;
import io.jmigrate.savevm.SaveStateRegistry;
import io.jmigrate.stream.QemuFileReader;
import io.jmigrate.stream.StreamLimits;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The destination of one migration, run by {@code mig/dst/main}: accepts the main channel (or
 * opens the file), loads the stream with {@link LoadVmDispatcher} into a fresh device list,
 * answers the return path (PONG, then SHUT when done), records the RAM digest, then lets the
 * VM resume, stay paused (-S), or follow the source's run state from globalstate.
 */
public final class IncomingMigration implements Runnable {
    private final MigrationSubject subject;
    private final MigrationState state;
    private final Transport.Listener listener;
    private final FirstError error = new FirstError();
    private final long createdMillis = System.currentTimeMillis();
    private volatile long startMillis = -1;
    private volatile long totalTimeMs = -1;
    private volatile Transport.Connection connection;
    private volatile QemuFileReader reader;
    private volatile String digest;
    private volatile boolean cancelRequested;
    private volatile Thread thread;
    private volatile String vmdesc;

    IncomingMigration(MigrationSubject subject, MigrationUri uri, MigrationState state) {
        this.subject = subject;
        this.state = state;
        this.listener = new Transport.Listener(uri);
    }

    /** Where the listener is bound (resolves tcp port 0). */
    public String boundUri() {
        return listener.boundUri();
    }

    void start() {
        if (!state.cas(MigrationStatus.NONE, MigrationStatus.SETUP)) {
            listener.close();
            throw new MigrationException(Category.STATE, "incoming migration state is " + state.get().qmpName);
        }
        subject.incomingStarted();
        Thread t = new Thread(this, "mig/dst/main");
        t.setDaemon(true);
        thread = t;
        t.start();
    }

    public MigrationState state() {
        return state;
    }

    public String digest() {
        return digest;
    }

    public String vmdesc() {
        return vmdesc;
    }

    public MigrationException error() {
        return error.get();
    }

    public boolean join(long millis) throws InterruptedException {
        Thread t = thread;
        if (t != null) {
            t.join(millis);
            return !t.isAlive();
        }
        return true;
    }

    void cancel() {
        cancelRequested = true;
        error.set(new MigrationException(Category.CANCELLED, "incoming migration cancelled"));
        listener.close();
        Transport.Connection c = connection;
        if (c != null) {
            c.close();
        }
    }

    @Override
    public void run() {
        Transport.Connection c = null;
        boolean[] rpOpen = {false};
        try {
            c = listener.accept();
            connection = c;
            listener.close();
            startMillis = System.currentTimeMillis();
            if (!state.cas(MigrationStatus.SETUP, MigrationStatus.ACTIVE)) {
                throw new MigrationException(Category.STATE, "incoming migration state is " + state.get().qmpName);
            }
            QemuFileReader r = new QemuFileReader(c.channel(), "incoming migration stream from " + c.description(),
                    StreamLimits.DEFAULT);
            reader = r;
            SaveStateRegistry reg = subject.loadRegistry();
            final Transport.Connection conn = c;
            LoadVmDispatcher d = new LoadVmDispatcher(reg, subject.configuration(), new LoadVmDispatcher.ReturnPath() {
                @Override
                public void open() {
                    if (!conn.bidirectional()) {
                        throw new MigrationException(Category.PROTOCOL, "OPEN_RETURN_PATH on a one-way channel");
                    }
                    rpOpen[0] = true;
                }

                @Override
                public void pong(int value) {
                    if (rpOpen[0]) {
                        sendReturnPath(conn, 2, value);
                    }
                }
            });
            d.load(r, () -> cancelRequested);
            vmdesc = d.vmdesc();
            if (rpOpen[0]) {
                sendReturnPath(c, 1, 0); // SHUT: the source's downtime ends here, before our digest
            }
            c.close();
            digest = RamDigest.sha256(subject.ramBlocks()); // before the vCPUs resume and change RAM
            totalTimeMs = System.currentTimeMillis() - startMillis;
            subject.incomingCompleted();
            state.cas(MigrationStatus.ACTIVE, MigrationStatus.COMPLETED);
        } catch (Throwable t) {
            error.set(t);
            if (c != null) {
                if (rpOpen[0]) {
                    try {
                        sendReturnPath(c, 1, 1);
                    } catch (RuntimeException ignored) {
                        // the channel is already broken
                    }
                }
                c.close();
            }
            listener.close();
            totalTimeMs = startMillis < 0 ? -1 : System.currentTimeMillis() - startMillis;
            subject.incomingFailed();
            state.finish(cancelRequested ? MigrationStatus.CANCELLED : MigrationStatus.FAILED);
        }
    }

    /** One return-path message: be16 type, be16 length 4, be32 value (SHUT = 1, PONG = 2). */
    private static void sendReturnPath(Transport.Connection c, int type, int value) {
        ByteBuffer b = ByteBuffer.allocate(8);
        b.putShort((short) type).putShort((short) 4).putInt(value).flip();
        try {
            synchronized (c) {
                while (b.hasRemaining()) {
                    c.channel().write(b);
                }
            }
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "writing to the return path failed: " + Transport.describe(e), e);
        }
    }

    public Map<String, Object> info() {
        MigrationStatus s = state.get();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("status", s.qmpName);
        if (startMillis >= 0) {
            m.put("total-time", totalTimeMs >= 0 ? totalTimeMs : System.currentTimeMillis() - startMillis);
        }
        QemuFileReader r = reader;
        if (r != null) {
            Map<String, Object> ram = new LinkedHashMap<>();
            ram.put("transferred", r.position());
            m.put("ram", ram);
        }
        MigrationException e = error.get();
        if (s == MigrationStatus.FAILED && e != null) {
            m.put("error-desc", e.getMessage());
        }
        return m;
    }

    long createdMillis() {
        return createdMillis;
    }
}
