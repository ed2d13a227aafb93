package io.jmigrate.qmp;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.EventSink;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;

/**
 * The QMP server of one VM process on {@code unix:PATH} or {@code tcp:HOST:PORT}: every
 * connection is a session that gets the greeting, must negotiate with {@code qmp_capabilities},
 * then sends commands as JSON objects and receives one reply per command (with its {@code id}
 * echoed) plus the events that happen meanwhile.
 *
 * <p>Bad input never ends a session: a text that is not JSON, not an object, or not a valid
 * command gets QEMU's error reply and the next request is served. A request longer than
 * {@link #MAX_INPUT_BYTES} gets an error naming the limit; the rest of its line is discarded as it
 * arrives and the session resynchronises at the next newline ({@link JsonFramer}).
 *
 * <p>Threads: each session has a reader and a writer, both virtual threads. Only the writer
 * touches the socket for output. Events are published ({@link #emit}) from VM and migration
 * threads into each session's bounded queue of {@link #EVENT_QUEUE_CAPACITY} events, which drops
 * its oldest event when full, so a client that stops reading can never block the thread that
 * emits. Replies are never dropped: the reader waits while {@link #MAX_PENDING_REPLIES} of its own
 * replies are unsent, which stalls only that client's own requests. Nothing is buffered without a
 * bound.
 */
public final class QmpServer implements EventSink, AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper().configure(JsonParser.Feature.AUTO_CLOSE_SOURCE, false);

    /**
     * The longest request accepted, in bytes (1 MiB; the largest real request, a
     * migrate-set-parameters with every member, is a few hundred bytes).
     */
    public static final int MAX_INPUT_BYTES = 1 << 20;
    /**
     * Events kept per session for a client that does not read them; past this the oldest queued
     * event is dropped (QEMU's monitor likewise bounds what a slow client costs).
     */
    public static final int EVENT_QUEUE_CAPACITY = 1024;
    /** Replies a session may have unsent before it stops reading that client's requests. */
    public static final int MAX_PENDING_REPLIES = 8;
    /** How long {@link #close} lets sessions send what they have queued (e.g. the reply to quit). */
    static final Duration CLOSE_FLUSH = Duration.ofSeconds(2);
    /** The writer gathers queued texts into writes of at most about this many bytes. */
    private static final int WRITE_BATCH_BYTES = 64 << 10;
    private static final int READ_BUFFER_BYTES = 16 << 10;

    private final ServerSocketChannel server;
    private final String address;
    private final Path unixPath;
    private final Supplier<QmpDispatcher> dispatcher;
    private final Set<Session> sessions = ConcurrentHashMap.newKeySet();
    private static final AtomicLong SESSION_IDS = new AtomicLong();
    private volatile boolean closed;

    /** At most this many QMP clients at once; one more gets an error reply and is closed. */
    public static final int MAX_SESSIONS = 16;

    /**
     * Binds {@code unix:PATH} (a socket file of mode 0600: only this user may connect) or
     * {@code tcp:HOST:PORT} (port 0 picks a free port). A TCP address that is not loopback is
     * refused unless the spec ends with {@code ,allow-remote=on}: QMP has no authentication, and
     * whoever reaches it controls the VM.
     */
    public QmpServer(String spec, Supplier<QmpDispatcher> dispatcher) {
        this.dispatcher = dispatcher;
        try {
            if (spec.startsWith("unix:")) {
                unixPath = Path.of(spec.substring(5).replaceAll(",.*$", ""));
                Files.deleteIfExists(unixPath);
                server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                // bind under a temporary name, restrict it to 0600, then move it into place, so
                // that nobody else can connect in between
                Path tmp = unixPath.resolveSibling("." + unixPath.getFileName() + "." + ProcessHandle.current().pid()
                        + ".tmp");
                Files.deleteIfExists(tmp);
                server.bind(UnixDomainSocketAddress.of(tmp));
                Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
                Files.move(tmp, unixPath, java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                address = "unix:" + unixPath;
            } else if (spec.startsWith("tcp:")) {
                boolean allowRemote = spec.endsWith(",allow-remote=on");
                String rest = spec.substring(4).replaceAll(",.*$", "");
                int colon = rest.lastIndexOf(':');
                if (colon < 0) {
                    throw new MigrationException(Category.CONFIG, "QMP address '" + spec + "' needs tcp:HOST:PORT");
                }
                String host = rest.substring(0, colon);
                if (host.startsWith("[") && host.endsWith("]")) {
                    host = host.substring(1, host.length() - 1);
                }
                InetSocketAddress bindTo = new InetSocketAddress(host, Integer.parseInt(rest.substring(colon + 1)));
                if (!allowRemote && (bindTo.isUnresolved() || !bindTo.getAddress().isLoopbackAddress())) {
                    throw new MigrationException(Category.CONFIG, "QMP on '" + spec + "' would listen on a "
                            + "non-loopback address: QMP has no authentication, so anyone who reaches it controls "
                            + "the VM. Use tcp:127.0.0.1:PORT or unix:PATH, or add ,allow-remote=on to mean it");
                }
                unixPath = null;
                server = ServerSocketChannel.open();
                server.socket().setReuseAddress(true);
                server.bind(bindTo);
                address = "tcp:" + rest.substring(0, colon) + ":" + server.socket().getLocalPort();
            } else {
                throw new MigrationException(Category.CONFIG, "QMP address '" + spec
                        + "' must be unix:PATH or tcp:HOST:PORT");
            }
        } catch (IOException | NumberFormatException e) {
            throw new MigrationException(Category.CONFIG, "cannot listen for QMP on '" + spec + "': " + e.getMessage(), e);
        }
    }

    /** One client too many: an error reply instead of the greeting, then the connection closes. */
    private static void refuseSession(SocketChannel ch) {
        try (ch) {
            ObjectNode e = error(null, QmpError.generic("too many QMP clients: at most " + MAX_SESSIONS
                    + " at once (QmpServer.MAX_SESSIONS)"));
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(line(e));
            ch.configureBlocking(false); // never wait on a client that does not read
            ch.write(b);
        } catch (IOException ignored) {
            // it is being turned away anyway
        }
        System.err.println("jmigrate: QMP client refused: " + MAX_SESSIONS + " clients are connected");
    }

    /** The bound address (tcp port resolved). */
    public String address() {
        return address;
    }

    public void start() {
        Thread t = new Thread(this::acceptLoop, "qmp/accept");
        t.setDaemon(true);
        t.start();
    }

    private void acceptLoop() {
        while (!closed) {
            try {
                SocketChannel ch = server.accept();
                if (sessions.size() >= MAX_SESSIONS) {
                    refuseSession(ch);
                    continue;
                }
                Session s = new Session(ch);
                sessions.add(s);
                if (closed) {
                    s.abort();
                    return;
                }
                s.start();
            } catch (IOException e) {
                if (!closed) {
                    System.err.println("jmigrate: QMP accept failed: " + e.getMessage());
                }
                return;
            }
        }
    }

    /**
     * Queues {@code event} for every negotiated session and returns at once: it never waits for a
     * client (a full queue drops its oldest event).
     */
    @Override
    public void emit(String event, Map<String, Object> data) {
        long micros = System.currentTimeMillis() * 1000 + (System.nanoTime() / 1000) % 1000;
        ObjectNode ev = JSON.createObjectNode();
        ObjectNode ts = ev.putObject("timestamp");
        ts.put("seconds", micros / 1_000_000);
        ts.put("microseconds", micros % 1_000_000);
        ev.put("event", event);
        ev.set("data", JSON.valueToTree(data));
        byte[] text = line(ev);
        for (Session s : sessions) {
            if (s.negotiated) {
                s.offerEvent(event, text);
            }
        }
    }

    /** Events dropped so far because their session's queue was full, over all open sessions. */
    long droppedEvents() {
        long n = 0;
        for (Session s : sessions) {
            n += s.dropped();
        }
        return n;
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException ignored) {
            // closing
        }
        // let every session send what it has queued (the reply to 'quit'), for a bounded time
        List<Session> open = new ArrayList<>(sessions);
        for (Session s : open) {
            s.finish();
        }
        long deadline = System.nanoTime() + CLOSE_FLUSH.toNanos();
        for (Session s : open) {
            s.awaitWriter(deadline);
            s.abort();
        }
        if (unixPath != null) {
            try {
                Files.deleteIfExists(unixPath);
            } catch (IOException ignored) {
                // best effort
            }
        }
    }

    /**
     * One message as a line: the JSON of {@code message} (a tree, or a {@code Map} of plain
     * values) and CRLF, in one serialization pass.
     *
     * @throws IllegalArgumentException if Jackson cannot serialize a value in it
     */
    private static byte[] line(Object message) {
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(message);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("reply not serializable as JSON: " + e.getOriginalMessage(), e);
        }
        byte[] out = java.util.Arrays.copyOf(json, json.length + 2);
        out[json.length] = '\r';
        out[json.length + 1] = '\n';
        return out;
    }

    private static ObjectNode error(JsonNode id, QmpError e) {
        ObjectNode reply = JSON.createObjectNode();
        ObjectNode err = reply.putObject("error");
        err.put("class", e.errorClass());
        err.put("desc", e.getMessage());
        if (id != null) {
            reply.set("id", id);
        }
        return reply;
    }

    /** One queued output text: a reply (never dropped) or an event (dropped oldest-first). */
    private record Out(byte[] text, boolean event) {
    }

    private final class Session implements JsonFramer.Handler {
        private final SocketChannel channel;
        private final long id = SESSION_IDS.incrementAndGet();
        private final ReentrantLock lock = new ReentrantLock();
        private final Condition changed = lock.newCondition();
        /** Replies and events in the order they were produced; guarded by {@link #lock}. */
        private final ArrayDeque<Out> queue = new ArrayDeque<>();
        private int queuedEvents;
        private int queuedReplies;
        private long droppedEvents;
        /** No more output is accepted; the writer sends what is queued, then closes. */
        private boolean finishing;
        private volatile boolean negotiated;
        private Thread writer;

        Session(SocketChannel channel) {
            this.channel = channel;
        }

        void start() {
            writer = Thread.ofVirtual().name("qmp/session-" + id + "/out").start(this::writeLoop);
            Thread.ofVirtual().name("qmp/session-" + id + "/in").start(this::readLoop);
        }

        long dropped() {
            lock.lock();
            try {
                return droppedEvents;
            } finally {
                lock.unlock();
            }
        }

        /** Queues an event without ever waiting on the client: when full, the oldest event goes. */
        void offerEvent(String name, byte[] text) {
            boolean firstDrop = false;
            lock.lock();
            try {
                if (finishing) {
                    return;
                }
                if (queuedEvents >= EVENT_QUEUE_CAPACITY) {
                    for (Iterator<Out> it = queue.iterator(); it.hasNext(); ) {
                        if (it.next().event()) {
                            it.remove();
                            queuedEvents--;
                            firstDrop = droppedEvents++ == 0;
                            break;
                        }
                    }
                }
                queue.add(new Out(text, true));
                queuedEvents++;
                changed.signalAll();
            } finally {
                lock.unlock();
            }
            if (firstDrop) {
                System.err.println("jmigrate: QMP session " + id + " is not reading its events: " + EVENT_QUEUE_CAPACITY
                        + " are queued, so the oldest are dropped (first at event " + name + ")");
            }
        }

        /**
         * Queues a reply; waits (this session's reader only) while {@link #MAX_PENDING_REPLIES}
         * are unsent. False once the session is ending.
         */
        boolean sendReply(JsonNode reply) {
            return sendLine(line(reply));
        }

        /** As {@link #sendReply}, for a reply already made a line. */
        private boolean sendLine(byte[] text) {
            lock.lock();
            try {
                while (queuedReplies >= MAX_PENDING_REPLIES && !finishing) {
                    changed.await();
                }
                if (finishing) {
                    return false;
                }
                queue.add(new Out(text, false));
                queuedReplies++;
                changed.signalAll();
                return true;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            } finally {
                lock.unlock();
            }
        }

        /** Stops accepting output; the writer sends what is queued and then closes the socket. */
        void finish() {
            lock.lock();
            try {
                finishing = true;
                changed.signalAll();
            } finally {
                lock.unlock();
            }
        }

        void awaitWriter(long deadlineNanos) {
            Thread w = writer;
            if (w == null) {
                return;
            }
            long left = deadlineNanos - System.nanoTime();
            try {
                if (left > 0) {
                    w.join(Duration.ofNanos(left));
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /** Closes the socket now: a blocked write or read fails and both threads end. */
        void abort() {
            finish();
            sessions.remove(this);
            try {
                channel.close();
            } catch (IOException ignored) {
                // already closed
            }
        }

        private void writeLoop() {
            List<Out> batch = new ArrayList<>();
            try {
                while (true) {
                    batch.clear();
                    lock.lock();
                    try {
                        while (queue.isEmpty() && !finishing) {
                            changed.await();
                        }
                        if (queue.isEmpty()) {
                            break; // finishing and everything sent
                        }
                        int bytes = 0;
                        while (!queue.isEmpty() && (batch.isEmpty() || bytes + queue.peek().text().length
                                <= WRITE_BATCH_BYTES)) {
                            Out o = queue.poll();
                            bytes += o.text().length;
                            batch.add(o);
                            if (o.event()) {
                                queuedEvents--;
                            } else {
                                queuedReplies--;
                            }
                        }
                        changed.signalAll(); // a reader waiting for reply room
                    } finally {
                        lock.unlock();
                    }
                    ByteBuffer[] bufs = new ByteBuffer[batch.size()];
                    for (int i = 0; i < bufs.length; i++) {
                        bufs[i] = ByteBuffer.wrap(batch.get(i).text());
                    }
                    while (bufs[bufs.length - 1].hasRemaining()) {
                        channel.write(bufs);
                    }
                }
            } catch (IOException e) {
                if (channel.isOpen()) {
                    // the client went away (or its socket failed): say so, as the client sees only
                    // a closed connection
                    System.err.println("jmigrate: QMP session " + id + " closed: sending failed: " + e);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                long dropped = dropped();
                if (dropped > 0) {
                    System.err.println("jmigrate: QMP session " + id + " ended; " + dropped
                            + " of its events were dropped because it did not read them");
                }
                abort();
            }
        }

        private void readLoop() {
            ObjectNode greeting = JSON.createObjectNode();
            ObjectNode qmp = greeting.putObject("QMP");
            qmp.set("version", JSON.valueToTree(QmpSchema.versionInfo()));
            qmp.putArray("capabilities");
            sendReply(greeting);
            JsonFramer framer = new JsonFramer(MAX_INPUT_BYTES, this);
            ByteBuffer in = ByteBuffer.allocate(READ_BUFFER_BYTES);
            try {
                while (channel.read(in.clear()) >= 0) {
                    framer.feed(in.flip());
                    if (!channel.isOpen()) {
                        break;
                    }
                }
            } catch (IOException e) {
                // the client went away, or the session was aborted
            } catch (RuntimeException | Error e) {
                // never silently: the client only sees its connection drop
                System.err.println("jmigrate: QMP session " + id + " failed and is closed: " + e);
                e.printStackTrace();
                abort();
                throw e;
            }
            // end of input: the writer sends the replies still queued, then closes
            finish();
        }

        @Override
        public void overLong() {
            sendReply(error(null, QmpError.generic("QMP input exceeds the limit of " + MAX_INPUT_BYTES
                    + " bytes (QmpServer.MAX_INPUT_BYTES); it is discarded up to the next newline")));
        }

        @Override
        public void value(byte[] text, int length) {
            JsonNode req;
            try {
                req = JSON.readTree(text, 0, length);
            } catch (JsonProcessingException e) {
                String why = e.getOriginalMessage();
                sendReply(error(null, QmpError.generic("JSON parse error, " + (why == null ? e.toString()
                        : why.lines().findFirst().orElse(why)))));
                return;
            } catch (IOException e) {
                sendReply(error(null, QmpError.generic("JSON parse error, " + e.getMessage())));
                return;
            }
            if (req == null || req.isMissingNode()) {
                return; // nothing but whitespace
            }
            boolean negotiating = !negotiated && req.isObject()
                    && "qmp_capabilities".equals(req.path("execute").textValue());
            Handled h = handle(req);
            if (!sendLine(h.line())) {
                return;
            }
            if (negotiating && h.executed() != null) {
                negotiated = true; // events from now on, after the reply that opened them
            }
            if (h.executed() != null) {
                dispatcher.get().afterReply(h.executed());
            }
        }

        /** The reply as a line, and the command that was executed successfully (null if none was). */
        private record Handled(byte[] line, QmpCommand executed) {
        }

        private Handled handle(JsonNode req) {
            JsonNode id = req.isObject() ? req.get("id") : null;
            try {
                if (!req.isObject()) {
                    throw QmpError.generic("QMP input must be a JSON object");
                }
                JsonNode exec = req.get("execute");
                if (exec == null) {
                    throw QmpError.generic("QMP input lacks member 'execute'");
                }
                if (!exec.isTextual()) {
                    throw QmpError.generic("QMP input member 'execute' must be a string");
                }
                for (var names = req.fieldNames(); names.hasNext(); ) {
                    String f = names.next();
                    if (!f.equals("execute") && !f.equals("arguments") && !f.equals("id")) {
                        throw QmpError.generic("QMP input member '" + f + "' is unexpected");
                    }
                }
                String name = exec.asText();
                QmpCommand cmd = QmpSchema.decode(name, req.get("arguments"));
                boolean isNeg = cmd instanceof QmpCommand.QmpCapabilities;
                if (!negotiated && !isNeg) {
                    throw new QmpError(QmpError.COMMAND_NOT_FOUND,
                            "Expecting capabilities negotiation with 'qmp_capabilities'");
                }
                if (negotiated && isNeg) {
                    throw new QmpError(QmpError.COMMAND_NOT_FOUND,
                            "Capabilities negotiation is already complete, command ignored");
                }
                Object result = dispatcher.get().execute(cmd);
                // serialized straight from the result's maps and lists, not through a tree: one
                // pass instead of three, on a path a management tool polls every few milliseconds
                Map<String, Object> reply = new LinkedHashMap<>();
                reply.put("return", result);
                if (id != null) {
                    reply.put("id", id);
                }
                return new Handled(line(reply), cmd);
            } catch (QmpError e) {
                return new Handled(line(error(id, e)), null);
            } catch (RuntimeException | LinkageError | AssertionError | StackOverflowError e) {
                // a failing command gets an error reply and the session goes on, as in QEMU
                System.err.println("jmigrate: QMP command " + req.path("execute") + " failed internally: " + e);
                e.printStackTrace();
                return new Handled(line(error(id, QmpError.generic("internal error: " + e))), null);
            }
        }
    }
}
