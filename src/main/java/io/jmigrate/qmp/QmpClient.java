package io.jmigrate.qmp;

import io.jmigrate.common.Durations;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;

/**
 * A small QMP client (for {@code jmigrate migrate}, {@code jmigrate info} and tests): connects,
 * reads the greeting, negotiates, executes commands with an {@code id}, and queues events. Every
 * wait has a timeout.
 */
public final class QmpClient implements AutoCloseable {
    private final SocketChannel channel;
    private final OutputStream out;
    private final BlockingQueue<JsonNode> replies = new LinkedBlockingQueue<>();
    private final BlockingQueue<JsonNode> events = new LinkedBlockingQueue<>();
    private final AtomicLong ids = new AtomicLong();
    private final JsonNode greeting;
    private final String address;
    private volatile Duration timeout = Duration.ofSeconds(30);
    /** Why the connection ended (set by the reader thread), or null while it is open. */
    private volatile String closedReason;
    private static final Duration GREETING_TIMEOUT = Duration.ofSeconds(10);

    private QmpClient(SocketChannel channel, String address, Duration greetingTimeout) throws IOException {
        this.channel = channel;
        this.address = address;
        this.out = Channels.newOutputStream(channel);
        InputStream in = Channels.newInputStream(channel);
        BlockingQueue<JsonNode> first = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            String why = "the server closed the connection";
            // readValues reads the first token, so it runs here: a server that accepts but never
            // greets must not block the connecting thread past the greeting timeout
            try (MappingIterator<JsonNode> it = QmpServer.JSON.readerFor(JsonNode.class).readValues(in)) {
                boolean greeted = false;
                while (it.hasNextValue()) {
                    JsonNode n = it.nextValue();
                    if (!greeted) {
                        greeted = true;
                        first.add(n);
                    } else if (n.has("event")) {
                        events.add(n);
                    } else {
                        replies.add(n);
                    }
                }
            } catch (IOException | RuntimeException e) {
                why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            }
            closedReason = why;
            replies.add(QmpServer.JSON.createObjectNode().put("closed", true));
        }, "qmp-client/" + address);
        reader.setDaemon(true);
        reader.start();
        try {
            greeting = first.poll(greetingTimeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        }
        if (greeting == null || !greeting.has("QMP")) {
            throw new IOException(greeting == null && closedReason == null
                    ? "no QMP greeting within " + Durations.human(greetingTimeout)
                    : "no QMP greeting (" + (closedReason != null ? closedReason : "got " + greeting) + ")");
        }
    }

    /** Connects to {@code unix:PATH}, {@code tcp:HOST:PORT} or a bare path, and negotiates. */
    public static QmpClient connect(String address) {
        return connect(address, GREETING_TIMEOUT);
    }

    static QmpClient connect(String address, Duration greetingTimeout) {
        return open(address, greetingTimeout, true);
    }

    /** Connects and reads the greeting, without negotiating (tests of the negotiation rules). */
    static QmpClient connectUnnegotiated(String address) {
        return open(address, GREETING_TIMEOUT, false);
    }

    private static QmpClient open(String address, Duration greetingTimeout, boolean negotiate) {
        try {
            SocketChannel ch;
            if (address.startsWith("tcp:")) {
                String rest = address.substring(4);
                int colon = rest.lastIndexOf(':');
                ch = SocketChannel.open();
                ch.socket().connect(new InetSocketAddress(rest.substring(0, colon),
                        Integer.parseInt(rest.substring(colon + 1))), 5000);
            } else {
                String p = address.startsWith("unix:") ? address.substring(5) : address;
                ch = SocketChannel.open(UnixDomainSocketAddress.of(p));
            }
            try {
                QmpClient c = new QmpClient(ch, address, greetingTimeout);
                if (negotiate) {
                    c.execute("qmp_capabilities", null);
                }
                return c;
            } catch (IOException | RuntimeException e) {
                ch.close(); // a failed attempt must not keep a session open on the server
                throw e;
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof MigrationException me) {
                throw me;
            }
            throw new MigrationException(Category.IO, "cannot connect to QMP at '" + address + "': " + e.getMessage(), e);
        }
    }

    public JsonNode greeting() {
        return greeting;
    }

    public void setTimeout(Duration timeout) {
        this.timeout = timeout;
    }

    /** Sends one raw JSON text and returns the raw reply (tests of error shapes). */
    public JsonNode raw(String json) {
        send(json);
        return awaitReply(r -> true);
    }

    /** Sends raw text as is, with no newline added (tests of the input framing). */
    void sendRaw(String text) {
        send0(text);
    }

    /** The next reply, whatever its id (tests that pipeline raw requests). */
    JsonNode nextReply() {
        return awaitReply(r -> true);
    }

    private void send(String json) {
        send0(json + "\n");
    }

    private void send0(String text) {
        try {
            synchronized (out) {
                out.write(text.getBytes(StandardCharsets.UTF_8));
                out.flush();
            }
        } catch (IOException e) {
            String why = closedReason;
            throw new MigrationException(Category.IO, "QMP connection to " + address + " failed: " + e.getMessage()
                    + (why == null ? "" : " (connection ended: " + why + ")"), e);
        }
    }

    /**
     * The next reply that {@code mine} accepts; others (late replies to commands that timed out)
     * are dropped. The "closed" marker is returned, and kept for later calls, once the
     * connection ended.
     */
    private JsonNode awaitReply(Predicate<JsonNode> mine) {
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            while (true) {
                long left = deadline - System.nanoTime();
                JsonNode r = left > 0 ? replies.poll(left, TimeUnit.NANOSECONDS) : null;
                if (r == null) {
                    throw new MigrationException(Category.TIMEOUT, "no QMP reply from " + address + " within "
                            + Durations.human(timeout));
                }
                if (r.has("closed")) {
                    replies.add(r); // every later call fails at once, too
                    return r;
                }
                if (mine.test(r)) {
                    return r;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MigrationException(Category.CANCELLED, "interrupted");
        }
    }

    /** Executes a command; returns the whole reply object ({@code return} or {@code error}). */
    public JsonNode call(String command, Map<String, ?> arguments) {
        ObjectNode req = QmpServer.JSON.createObjectNode();
        req.put("execute", command);
        if (arguments != null) {
            req.set("arguments", QmpServer.JSON.valueToTree(arguments));
        }
        long id = ids.incrementAndGet();
        req.put("id", id);
        send(req.toString());
        // a reply without an id answers input the server could not parse: ours is well-formed
        JsonNode r = awaitReply(n -> !n.has("id") || n.get("id").asLong() == id);
        if (r.has("closed")) {
            throw new MigrationException(Category.IO, "QMP connection to " + address + " closed during '" + command
                    + "' (" + closedReason + ")");
        }
        return r;
    }

    /** Executes a command and returns its {@code return} value; a QMP error becomes an exception. */
    public JsonNode execute(String command, Map<String, ?> arguments) {
        JsonNode r = call(command, arguments);
        if (r.has("error")) {
            throw new MigrationException(Category.STATE, command + ": " + r.get("error").path("desc").asText()
                    + " (" + r.get("error").path("class").asText() + ")");
        }
        return r.get("return");
    }

    /** Waits for the next event matching {@code filter}, dropping others; null on timeout. */
    public JsonNode awaitEvent(Predicate<JsonNode> filter, Duration within) throws InterruptedException {
        long deadline = System.nanoTime() + within.toNanos();
        while (true) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return null;
            }
            JsonNode e = events.poll(left, TimeUnit.NANOSECONDS);
            if (e != null && filter.test(e)) {
                return e;
            }
        }
    }

    /** Events received so far and not yet consumed. */
    public List<JsonNode> drainEvents() {
        List<JsonNode> l = new ArrayList<>();
        events.drainTo(l);
        return l;
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // closing
        }
    }
}
