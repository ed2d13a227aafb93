package io.jmigrate.qmp;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.common.EventSink;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

/**
 * The QMP server of one VM process on {@code unix:PATH} or {@code tcp:HOST:PORT}: every
 * connection is a session on a virtual thread that gets the greeting, must negotiate with
 * {@code qmp_capabilities}, then sends commands as JSON objects and receives one reply per
 * command (with its {@code id} echoed) plus the events that happen meanwhile.
 */
public final class QmpServer implements EventSink, AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper().configure(JsonParser.Feature.AUTO_CLOSE_SOURCE, false);

    private final ServerSocketChannel server;
    private final String address;
    private final Path unixPath;
    private final Supplier<QmpDispatcher> dispatcher;
    private final Set<Session> sessions = ConcurrentHashMap.newKeySet();
    private static final java.util.concurrent.atomic.AtomicLong SESSION_IDS = new java.util.concurrent.atomic.AtomicLong();
    private volatile boolean closed;

    /** Binds {@code unix:PATH} or {@code tcp:HOST:PORT} (port 0 picks a free port). */
    public QmpServer(String spec, Supplier<QmpDispatcher> dispatcher) {
        this.dispatcher = dispatcher;
        try {
            if (spec.startsWith("unix:")) {
                unixPath = Path.of(spec.substring(5).replaceAll(",.*$", ""));
                Files.deleteIfExists(unixPath);
                server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                server.bind(UnixDomainSocketAddress.of(unixPath));
                address = "unix:" + unixPath;
            } else if (spec.startsWith("tcp:")) {
                String rest = spec.substring(4).replaceAll(",.*$", "");
                int colon = rest.lastIndexOf(':');
                if (colon < 0) {
                    throw new MigrationException(Category.CONFIG, "QMP address '" + spec + "' needs tcp:HOST:PORT");
                }
                unixPath = null;
                server = ServerSocketChannel.open();
                server.socket().setReuseAddress(true);
                server.bind(new InetSocketAddress(rest.substring(0, colon), Integer.parseInt(rest.substring(colon + 1))));
                address = "tcp:" + rest.substring(0, colon) + ":" + server.socket().getLocalPort();
            } else {
                throw new MigrationException(Category.CONFIG, "QMP address '" + spec
                        + "' must be unix:PATH or tcp:HOST:PORT");
            }
        } catch (IOException | NumberFormatException e) {
            throw new MigrationException(Category.CONFIG, "cannot listen for QMP on '" + spec + "': " + e.getMessage(), e);
        }
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
                Session s = new Session(ch);
                sessions.add(s);
                Thread.ofVirtual().name("qmp/session").start(s);
            } catch (IOException e) {
                if (!closed) {
                    System.err.println("jmigrate: QMP accept failed: " + e.getMessage());
                }
                return;
            }
        }
    }

    @Override
    public void emit(String event, Map<String, Object> data) {
        long micros = System.currentTimeMillis() * 1000 + (System.nanoTime() / 1000) % 1000;
        ObjectNode ev = JSON.createObjectNode();
        ObjectNode ts = ev.putObject("timestamp");
        ts.put("seconds", micros / 1_000_000);
        ts.put("microseconds", micros % 1_000_000);
        ev.put("event", event);
        ev.set("data", JSON.valueToTree(data));
        for (Session s : sessions) {
            if (s.negotiated) {
                s.send(ev);
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException ignored) {
            // closing
        }
        for (Session s : sessions) {
            s.close();
        }
        if (unixPath != null) {
            try {
                Files.deleteIfExists(unixPath);
            } catch (IOException ignored) {
                // best effort
            }
        }
    }

    private final class Session implements Runnable {
        private final SocketChannel channel;
        private final OutputStream out;
        private final long id = SESSION_IDS.incrementAndGet();
        private volatile boolean negotiated;

        Session(SocketChannel channel) {
            this.channel = channel;
            this.out = Channels.newOutputStream(channel);
        }

        synchronized void send(JsonNode n) {
            if (!channel.isOpen()) {
                return;
            }
            try {
                out.write((n.toString() + "\r\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
            } catch (IOException e) {
                // the client went away (or stopped reading and the socket failed): say so, as the
                // session ends here and the client sees only a closed connection
                System.err.println("jmigrate: QMP session " + id + " closed: sending "
                        + (n.has("event") ? "event " + n.get("event").asText() : "a reply") + " failed: " + e);
                close();
            }
        }

        void close() {
            sessions.remove(this);
            try {
                channel.close();
            } catch (IOException ignored) {
                // already closed
            }
        }

        @Override
        public void run() {
            ObjectNode greeting = JSON.createObjectNode();
            ObjectNode qmp = greeting.putObject("QMP");
            ObjectNode version = qmp.putObject("version");
            ObjectNode qemu = version.putObject("qemu");
            qemu.put("micro", 0).put("minor", 1).put("major", 10);
            version.put("package", "jmigrate");
            qmp.putArray("capabilities");
            send(greeting);
            try (InputStream in = Channels.newInputStream(channel);
                 MappingIterator<JsonNode> it = JSON.readerFor(JsonNode.class).readValues(in)) {
                while (true) {
                    JsonNode req;
                    try {
                        if (!it.hasNextValue()) {
                            break;
                        }
                        req = it.nextValue();
                    } catch (RuntimeException e) {
                        Throwable c = e.getCause() != null ? e.getCause() : e;
                        if (c instanceof JsonProcessingException jpe) {
                            send(error(null, QmpError.generic("JSON parse error, " + jpe.getOriginalMessage())));
                            break; // the stream cannot be resynchronised
                        }
                        break;
                    }
                    send(handle(req));
                }
            } catch (IOException e) {
                // the client went away
            } catch (RuntimeException | Error e) {
                // never silently: the client only sees its connection drop
                System.err.println("jmigrate: QMP session " + id + " failed and is closed: " + e);
                e.printStackTrace();
                throw e;
            } finally {
                close();
            }
        }

        private JsonNode handle(JsonNode req) {
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
                if (isNeg) {
                    negotiated = true;
                }
                ObjectNode reply = JSON.createObjectNode();
                reply.set("return", JSON.valueToTree(result));
                if (id != null) {
                    reply.set("id", id);
                }
                return reply;
            } catch (QmpError e) {
                return error(id, e);
            } catch (RuntimeException | LinkageError | AssertionError | StackOverflowError e) {
                // a failing command gets an error reply and the session goes on, as in QEMU
                System.err.println("jmigrate: QMP command " + req.path("execute") + " failed internally: " + e);
                e.printStackTrace();
                return error(id, QmpError.generic("internal error: " + e));
            }
        }

        private ObjectNode error(JsonNode id, QmpError e) {
            ObjectNode reply = JSON.createObjectNode();
            ObjectNode err = reply.putObject("error");
            err.put("class", e.errorClass());
            err.put("desc", e.getMessage());
            if (id != null) {
                reply.set("id", id);
            }
            return reply;
        }
    }
}
