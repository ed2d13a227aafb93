package io.jmigrate.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeoutException;

/**
 * A minimal QMP client for tests that drive real QEMU (or jmigrate) over a UNIX socket: greeting,
 * qmp_capabilities, commands with their replies, and events kept in arrival order.
 */
public final class QmpTestClient implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final SocketChannel channel;
    private final BufferedReader in;
    private final OutputStream out;
    private final List<JsonNode> events = new ArrayList<>();

    private QmpTestClient(SocketChannel channel) throws IOException {
        this.channel = channel;
        this.in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
        this.out = Channels.newOutputStream(channel);
        JsonNode greeting = readMessage();
        if (!greeting.has("QMP")) {
            throw new IOException("no QMP greeting: " + greeting);
        }
        execute("qmp_capabilities", Map.of());
    }

    /** Connects to a UNIX socket, waiting up to {@code timeout} for it to appear. */
    public static QmpTestClient connect(Path socket, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            if (Files.exists(socket)) {
                try {
                    SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
                    ch.connect(UnixDomainSocketAddress.of(socket));
                    return new QmpTestClient(ch);
                } catch (IOException e) {
                    if (System.nanoTime() > deadline) {
                        throw e;
                    }
                }
            }
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("QMP socket " + socket + " did not appear within " + timeout);
            }
            Thread.sleep(50);
        }
    }

    private JsonNode readMessage() throws IOException {
        String line = in.readLine();
        if (line == null) {
            throw new IOException("QMP connection closed");
        }
        return JSON.readTree(line);
    }

    /** Runs a command and returns its reply object (with "return" or "error"). */
    public synchronized JsonNode call(String command, Map<String, ?> arguments) throws IOException {
        ObjectNode req = JSON.createObjectNode();
        req.put("execute", command);
        if (!arguments.isEmpty()) {
            req.set("arguments", JSON.valueToTree(arguments));
        }
        out.write((JSON.writeValueAsString(req) + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
        while (true) {
            JsonNode msg = readMessage();
            if (msg.has("event")) {
                events.add(msg);
            } else {
                return msg;
            }
        }
    }

    /** Runs a command and returns its "return" value; an error reply throws. */
    public JsonNode execute(String command, Map<String, ?> arguments) throws IOException {
        JsonNode reply = call(command, arguments);
        if (reply.has("error")) {
            throw new IOException(command + " failed: " + reply.get("error"));
        }
        return reply.get("return");
    }

    /** Polls query-migrate until its status is one of {@code wanted}; returns the last answer. */
    public JsonNode awaitMigration(Duration timeout, String... wanted) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        JsonNode info;
        while (true) {
            info = execute("query-migrate", Map.of());
            String status = info.path("status").asText("none");
            for (String w : wanted) {
                if (w.equals(status)) {
                    return info;
                }
            }
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("migration status still '" + status + "' after " + timeout + ": " + info);
            }
            Thread.sleep(50);
        }
    }

    public synchronized List<JsonNode> events() {
        return List.copyOf(events);
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
