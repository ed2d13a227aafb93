package io.jmigrate.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.migration.MigrationManager;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 8 point 3 over real unix sockets: every kind of bad input gets QEMU's error shape and the
 * same connection goes on; an over-long line is refused and skipped; query-commands is the
 * dispatcher's command set; a client that does not read can neither block event emission nor lose
 * its replies.
 */
@Timeout(120)
class QmpRobustnessTest {
    @TempDir
    Path dir;
    private Vm vm;
    private QmpServer server;
    private QmpClient qmp;
    private int probes;
    private volatile Runnable onQuit = () -> { };

    @BeforeEach
    void start() {
        vm = new Vm(new VmConfig("t", null, 16 << 20, null, false, MachineType.DEFAULT, false, null), false);
        AtomicReference<QmpDispatcher> d = new AtomicReference<>();
        server = new QmpServer("unix:" + dir.resolve("qmp.sock"), d::get);
        vm.setEventSink(server);
        d.set(new QmpDispatcher(vm, new MigrationManager(vm, server), () -> onQuit.run()));
        server.start();
        qmp = QmpClient.connect(server.address());
    }

    @AfterEach
    void stop() {
        qmp.close();
        server.close();
        vm.close();
    }

    private static void assertError(JsonNode r, String cls, String descPart) {
        assertThat(r.has("return")).as(r.toString()).isFalse();
        assertThat(r.path("error").path("class").asText()).as(r.toString()).isEqualTo(cls);
        assertThat(r.path("error").path("desc").asText()).as(r.toString()).contains(descPart);
    }

    /** A valid command on the same connection is answered, with its id. */
    private void assertStillServing() {
        String id = "probe-" + probes++;
        JsonNode r = qmp.raw("{\"execute\": \"query-status\", \"id\": \"" + id + "\"}");
        assertThat(r.path("return").path("status").asText()).as(r.toString()).isEqualTo("running");
        assertThat(r.path("id").asText()).isEqualTo(id);
    }

    private void assertRefusedThenServing(String input, String cls, String descPart) {
        JsonNode r = qmp.raw(input);
        assertError(r, cls, descPart);
        assertStillServing();
    }

    @Test
    void textThatIsNotJson() {
        assertRefusedThenServing("{not json}", "GenericError", "JSON parse error, ");
        assertRefusedThenServing("nonsense", "GenericError", "JSON parse error, ");
        assertRefusedThenServing("}", "GenericError", "JSON parse error, ");
        assertRefusedThenServing("{\"execute\": \"stop\",}", "GenericError", "JSON parse error, ");
        assertRefusedThenServing("{\"execute\" \"stop\"}", "GenericError", "JSON parse error, ");
        // an unterminated string ends at the newline instead of swallowing the next request
        assertRefusedThenServing("{\"execute\": \"query-status", "GenericError", "JSON parse error, ");
        assertRefusedThenServing("{\"execute\": \"\u00e9\u00ff\"}", "CommandNotFound", "has not been found");
        JsonNode r = qmp.raw("{\"execute\":\"stop\"]");
        assertError(r, "GenericError", "JSON parse error, ");
        assertThat(r.has("id")).isFalse();
        assertStillServing();
    }

    @Test
    void jsonThatIsNotAnObject() {
        assertRefusedThenServing("[1, 2]", "GenericError", "QMP input must be a JSON object");
        assertRefusedThenServing("42", "GenericError", "QMP input must be a JSON object");
        assertRefusedThenServing("\"query-status\"", "GenericError", "QMP input must be a JSON object");
        assertRefusedThenServing("null", "GenericError", "QMP input must be a JSON object");
    }

    @Test
    void objectsThatAreNotCommands() {
        JsonNode r = qmp.raw("{\"id\": 5}");
        assertError(r, "GenericError", "QMP input lacks member 'execute'");
        assertThat(r.path("id").asInt()).isEqualTo(5);
        assertStillServing();
        assertRefusedThenServing("{\"execute\": 7}", "GenericError", "QMP input member 'execute' must be a string");
        assertRefusedThenServing("{\"execute\": \"stop\", \"bogus\": 1}", "GenericError",
                "QMP input member 'bogus' is unexpected");
        assertRefusedThenServing("{\"execute\": \"stop\", \"arguments\": [1]}", "GenericError",
                "QMP input member 'arguments' must be an object");
        r = qmp.raw("{\"execute\": \"no-such-command\", \"id\": [1, \"x\"]}");
        assertError(r, "CommandNotFound", "The command no-such-command has not been found");
        assertThat(r.path("id").toString()).isEqualTo("[1,\"x\"]");
        assertStillServing();
    }

    @Test
    void wrongMissingAndExtraArguments() {
        assertRefusedThenServing("{\"execute\": \"migrate\", \"arguments\": {\"uri\": 7}}", "GenericError",
                "Invalid parameter type for 'uri', expected: string");
        assertRefusedThenServing("{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"downtime-limit\": \"x\"}}",
                "GenericError", "Invalid parameter type for 'downtime-limit', expected: integer");
        assertRefusedThenServing("{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"downtime-limit\": 1.5}}",
                "GenericError", "Invalid parameter type for 'downtime-limit', expected: integer");
        assertRefusedThenServing("{\"execute\": \"migrate-set-parameters\", \"arguments\": "
                + "{\"max-bandwidth\": 123456789012345678901234567890}}", "GenericError",
                "Invalid parameter type for 'max-bandwidth', expected: integer");
        assertRefusedThenServing("{\"execute\": \"migrate-set-capabilities\", \"arguments\": {\"capabilities\": {}}}",
                "GenericError", "Invalid parameter type for 'capabilities', expected: array");
        assertRefusedThenServing("{\"execute\": \"migrate\", \"arguments\": {}}", "GenericError",
                "Parameter 'uri' is missing");
        assertRefusedThenServing("{\"execute\": \"migrate\"}", "GenericError", "Parameter 'uri' is missing");
        assertRefusedThenServing("{\"execute\": \"stop\", \"arguments\": {\"force\": true}}", "GenericError",
                "Parameter 'force' is unexpected");
        assertRefusedThenServing("{\"execute\": \"query-version\", \"arguments\": {\"x\": 1}}", "GenericError",
                "Parameter 'x' is unexpected");
    }

    @Test
    void requestsSpanningLinesOrSharingOneAreEachAnswered() {
        JsonNode r = qmp.raw("{\"execute\":\n  \"query-status\",\n  \"id\": 9\n}");
        assertThat(r.path("id").asInt()).isEqualTo(9);
        assertThat(r.has("return")).isTrue();
        qmp.sendRaw("{\"execute\": \"query-status\", \"id\": 1}{not json}[3] {\"execute\": \"query-version\", \"id\": 2}\n");
        JsonNode a = qmp.nextReply();
        JsonNode b = qmp.nextReply();
        JsonNode c = qmp.nextReply();
        JsonNode e = qmp.nextReply();
        assertThat(a.path("id").asInt()).isEqualTo(1);
        assertError(b, "GenericError", "JSON parse error, ");
        assertError(c, "GenericError", "QMP input must be a JSON object");
        assertThat(e.path("id").asInt()).isEqualTo(2);
        assertThat(e.path("return").path("qemu").path("major").asInt()).isEqualTo(QmpSchema.QEMU_MAJOR);
        assertStillServing();
    }

    @Test
    void anOverLongLineIsRefusedNamingTheLimitThenTheSessionGoesOn() {
        // 32 MiB on one line, inside a string that the framer must skip without buffering it
        String huge = "{\"execute\": \"query-status\", \"id\": \"" + "x".repeat(32 << 20) + "\"}";
        JsonNode r = qmp.raw(huge);
        assertError(r, "GenericError", "QMP input exceeds the limit of " + QmpServer.MAX_INPUT_BYTES + " bytes");
        assertThat(r.has("id")).isFalse();
        // exactly one error for the whole line: the next reply answers the next command
        assertStillServing();
        // also when the long line is not JSON at all, and when the limit is crossed mid-object
        assertRefusedThenServing("z".repeat(3 << 20), "GenericError", "exceeds the limit");
        assertRefusedThenServing("[" + "1,".repeat(QmpServer.MAX_INPUT_BYTES) + "1]", "GenericError",
                "exceeds the limit");
        // a request just under the limit is still parsed (and refused on its merits)
        String pad = " ".repeat(QmpServer.MAX_INPUT_BYTES - 100);
        assertRefusedThenServing("{\"execute\": \"stop\"," + pad + "\"x\": 1}", "GenericError",
                "QMP input member 'x' is unexpected");
    }

    @Test
    void queryCommandsIsExactlyTheDispatchersCommandSet() {
        JsonNode r = qmp.execute("query-commands", null);
        List<String> listed = new ArrayList<>();
        r.forEach(c -> {
            assertThat(c.size()).as(c.toString()).isEqualTo(1);
            listed.add(c.path("name").asText());
        });
        assertThat(listed).containsExactlyElementsOf(QmpSchema.commandNames()).doesNotHaveDuplicates();
        // the schema is a bijection onto the sealed command records the dispatcher switches over
        Set<Class<?>> types = new LinkedHashSet<>();
        QmpSchema.COMMANDS.forEach(s -> types.add(s.type()));
        assertThat(types).hasSize(QmpSchema.COMMANDS.size())
                .containsExactlyInAnyOrder(QmpCommand.class.getPermittedSubclasses());
        assertThat(listed).contains("query-commands", "query-version", "qmp_capabilities", "migrate", "quit");
        // each listed command is served: decoded (an argument it does not take is refused by name,
        // before anything runs), not CommandNotFound
        for (String name : listed) {
            JsonNode p = qmp.call(name, Map.of("x-probe", 1));
            assertError(p, "GenericError", "Parameter 'x-probe' is unexpected");
        }
        assertError(qmp.call("query-cpus-fast", null), "CommandNotFound", "The command query-cpus-fast has not been found");
    }

    @Test
    void theReplyToQuitIsSentEvenWhenTheServerClosesAtOnce() {
        onQuit = server::close; // as the vm process does: quit closes the server and exits
        assertThat(qmp.execute("quit", null).isObject()).isTrue();
    }

    @Test
    void queryVersionHasQemusShape() {
        JsonNode v = qmp.execute("query-version", null);
        assertThat(v.path("qemu").path("major").asInt()).isEqualTo(10);
        assertThat(v.path("qemu").path("minor").asInt()).isEqualTo(QmpSchema.QEMU_MINOR);
        assertThat(v.path("qemu").path("micro").asInt()).isEqualTo(QmpSchema.QEMU_MICRO);
        assertThat(v.path("package").asText()).startsWith("jmigrate ");
        assertThat(v.size()).isEqualTo(2);
        assertThat(qmp.greeting().path("QMP").path("version")).isEqualTo(v);
    }

    /**
     * Replies on the wire, byte for byte: "return" first, then the request's id echoed as it was
     * sent (any JSON value), one line with CR LF; errors the same way; a result's nested maps,
     * lists, numbers and strings as JSON.
     */
    @Test
    void repliesAreOneLineWithTheIdEchoedVerbatim() throws Exception {
        try (MuteClient raw = new MuteClient(server.address())) {
            raw.write("{\"execute\": \"query-status\", \"id\": {\"a\": [1, \"x\", null, 2.5, true]}}\n");
            String line = raw.readRawLine();
            assertThat(line).endsWith("\r\n").doesNotContain("\n{");
            assertThat(line).matches("\\{\"return\":\\{\"running\":(true|false),\"status\":\"[a-z-]+\"\\},"
                    + "\"id\":\\{\"a\":\\[1,\"x\",null,2\\.5,true\\]\\}\\}\r\n");
            raw.write("{\"execute\": \"no-such-command\", \"id\": 7}\n");
            assertThat(raw.readRawLine()).isEqualTo("{\"error\":{\"class\":\"CommandNotFound\","
                    + "\"desc\":\"The command no-such-command has not been found\"},\"id\":7}\r\n");
            raw.write("{\"execute\": \"query-migrate-capabilities\"}\n");
            JsonNode caps = QmpServer.JSON.readTree(raw.readRawLine());
            assertThat(caps.path("return").isArray()).isTrue();
            assertThat(caps.path("return").get(0).path("capability").isTextual()).isTrue();
            assertThat(caps.has("id")).isFalse();
        }
    }

    /** A raw unix-socket client that negotiates, then reads only when told to. */
    private static final class MuteClient implements AutoCloseable {
        final SocketChannel ch;
        private final ByteBuffer buf = ByteBuffer.allocate(1 << 16);
        private final StringBuilder pending = new StringBuilder();

        MuteClient(String address) throws IOException {
            ch = SocketChannel.open(UnixDomainSocketAddress.of(address.substring("unix:".length())));
            assertThat(readLine()).contains("\"QMP\"");
            write("{\"execute\": \"qmp_capabilities\"}\n");
            assertThat(readLine()).isEqualTo("{\"return\":{}}");
        }

        void write(String s) throws IOException {
            ByteBuffer b = ByteBuffer.wrap(s.getBytes(StandardCharsets.UTF_8));
            while (b.hasRemaining()) {
                ch.write(b);
            }
        }

        /** The next line, without its CR LF; null at end of stream. */
        String readLine() throws IOException {
            String line = readRawLine();
            return line == null ? null : line.stripTrailing();
        }

        /** The next line as sent, with its line end; null at end of stream. */
        String readRawLine() throws IOException {
            while (true) {
                int nl = pending.indexOf("\n");
                if (nl >= 0) {
                    String line = pending.substring(0, nl + 1);
                    pending.delete(0, nl + 1);
                    return line;
                }
                buf.clear();
                if (ch.read(buf) < 0) {
                    return null;
                }
                pending.append(StandardCharsets.UTF_8.decode(buf.flip()));
            }
        }

        @Override
        public void close() throws IOException {
            ch.close();
        }
    }

    @Test
    void aClientThatDoesNotReadCannotBlockEventEmission() throws Exception {
        int events = 100_000; // ~10 MB of events: far more than the socket buffers hold
        try (MuteClient mute = new MuteClient(server.address())) {
            Thread emitter = Thread.ofPlatform().name("mig/src/main").start(() -> {
                for (int i = 0; i < events; i++) {
                    server.emit("MIGRATION_PASS", Map.of("pass", i));
                }
            });
            emitter.join(60_000);
            assertThat(emitter.isAlive()).as("emit() blocked on a client that does not read").isFalse();
            // other clients are served meanwhile
            assertStillServing();
            assertThat(server.droppedEvents()).isPositive();

            // the mute client now reads: its session is alive, it gets the newest events in order
            // (the oldest were dropped), then the reply to a command it sends
            mute.write("{\"execute\": \"query-status\", \"id\": \"late\"}\n");
            List<Integer> passes = new ArrayList<>();
            String line;
            while ((line = mute.readLine()) != null && !line.contains("\"return\"")) {
                JsonNode n = QmpServer.JSON.readTree(line);
                assertThat(n.path("event").asText()).as(line).isEqualTo("MIGRATION_PASS");
                passes.add(n.path("data").path("pass").asInt());
            }
            assertThat(line).as("the session ended instead of answering").isNotNull().contains("\"id\":\"late\"");
            assertThat(passes).isSorted().doesNotHaveDuplicates();
            assertThat(passes.getLast()).isEqualTo(events - 1);
            assertThat(passes.size()).isLessThan(events);
            // what reached it is the queue's bound plus what the socket buffers held: so it did
            // receive the whole queue, which held only the newest
            assertThat(passes.size()).isGreaterThanOrEqualTo(QmpServer.EVENT_QUEUE_CAPACITY);
        }
    }

    @Test
    void repliesAreNeverDroppedEvenWhenTheClientReadsLate() throws Exception {
        int n = 5000; // ~330 KB of replies, more than the socket buffers hold
        try (MuteClient mute = new MuteClient(server.address())) {
            StringBuilder all = new StringBuilder();
            for (int i = 0; i < n; i++) {
                all.append("{\"execute\": \"query-status\", \"id\": ").append(i).append("}\n");
            }
            // the server stops reading while the replies are unsent, so this write blocks: own thread
            AtomicReference<Exception> writeFailed = new AtomicReference<>();
            Thread writer = Thread.ofVirtual().start(() -> {
                try {
                    mute.write(all.toString());
                } catch (IOException e) {
                    writeFailed.set(e);
                }
            });
            // events meanwhile are droppable, replies are not
            for (int i = 0; i < 10_000; i++) {
                server.emit("MIGRATION_PASS", Map.of("pass", i));
            }
            int next = 0;
            while (next < n) {
                String line = mute.readLine();
                assertThat(line).as("session ended after reply " + next).isNotNull();
                JsonNode r = QmpServer.JSON.readTree(line);
                if (r.has("event")) {
                    continue;
                }
                assertThat(r.path("id").asInt()).as(line).isEqualTo(next++);
                assertThat(r.path("return").path("status").asText()).isEqualTo("running");
            }
            writer.join();
            assertThat(writeFailed.get()).isNull();
        }
    }
}
