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

    private QmpClient(SocketChannel channel, String address) throws IOException {
        this.channel = channel;
        this.address = address;
        this.out = Channels.newOutputStream(channel);
        InputStream in = Channels.newInputStream(channel);
        MappingIterator<JsonNode> it = QmpServer.JSON.readerFor(JsonNode.class).readValues(in);
        BlockingQueue<JsonNode> first = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            try {
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
                // connection closed
            }
            replies.add(QmpServer.JSON.createObjectNode().put("closed", true));
        }, "qmp-client/" + address);
        reader.setDaemon(true);
        reader.start();
        try {
            greeting = first.poll(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        }
        if (greeting == null || !greeting.has("QMP")) {
            throw new IOException("no QMP greeting from " + address);
        }
    }

    /** Connects to {@code unix:PATH}, {@code tcp:HOST:PORT} or a bare path, and negotiates. */
    public static QmpClient connect(String address) {
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
            QmpClient c = new QmpClient(ch, address);
            c.execute("qmp_capabilities", null);
            return c;
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
        try {
            synchronized (out) {
                out.write((json + "\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
            }
            JsonNode r = replies.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
            if (r == null) {
                throw new MigrationException(Category.TIMEOUT, "no QMP reply from " + address + " within " + Durations.human(timeout));
            }
            return r;
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "QMP connection to " + address + " failed: " + e.getMessage(), e);
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
        JsonNode r = raw(req.toString());
        if (r.has("closed")) {
            throw new MigrationException(Category.IO, "QMP connection to " + address + " closed");
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
