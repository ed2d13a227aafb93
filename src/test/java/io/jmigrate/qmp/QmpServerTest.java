package io.jmigrate.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.machine.WorkloadSpec;
import io.jmigrate.migration.MigrationManager;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;

/** Every QMP command over a real unix socket: success and error shapes. */
@Timeout(60)
class QmpServerTest {
    @TempDir
    Path dir;
    private Vm vm;
    private QmpServer server;
    private QmpClient qmp;
    private final CountDownLatch quit = new CountDownLatch(1);

    private QmpServer serve(Vm v, boolean deferIncoming) {
        AtomicReference<QmpDispatcher> d = new AtomicReference<>();
        QmpServer s = new QmpServer("unix:" + dir.resolve("qmp-" + System.nanoTime() + ".sock"), d::get);
        v.setEventSink(s);
        MigrationManager mm = new MigrationManager(v, s);
        if (deferIncoming) {
            mm.deferIncoming();
        }
        d.set(new QmpDispatcher(v, mm, quit::countDown));
        s.start();
        return s;
    }

    @BeforeEach
    void start() {
        vm = new Vm(new VmConfig("t", null, 16 << 20, null, false, MachineType.DEFAULT, false,
                new WorkloadSpec(20, "increment", 1)), false);
        server = serve(vm, false);
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
        assertThat(r.path("error").path("class").asText()).isEqualTo(cls);
        assertThat(r.path("error").path("desc").asText()).contains(descPart);
    }

    @Test
    void greetingAndNegotiation() {
        assertThat(qmp.greeting().path("QMP").path("version").path("qemu").path("major").asInt()).isEqualTo(10);
        try (QmpClient raw = rawClient()) {
            assertError(raw.raw("{\"execute\":\"query-status\",\"id\":1}"), "CommandNotFound",
                    "Expecting capabilities negotiation with 'qmp_capabilities'");
            JsonNode ok = raw.raw("{\"execute\":\"qmp_capabilities\",\"id\":\"a\"}");
            assertThat(ok.path("return").isObject()).isTrue();
            assertThat(ok.path("id").asText()).isEqualTo("a");
            assertError(raw.raw("{\"execute\":\"qmp_capabilities\"}"), "CommandNotFound", "already complete");
        }
    }

    private QmpClient rawClient() {
        return QmpClient.connectUnnegotiated(server.address());
    }

    @Test
    void idIsEchoedAndUnknownCommandIsCommandNotFound() {
        JsonNode r = qmp.raw("{\"execute\":\"no-such-command\",\"id\":42}");
        assertError(r, "CommandNotFound", "The command no-such-command has not been found");
        assertThat(r.path("id").asInt()).isEqualTo(42);
        assertError(qmp.raw("[1,2]"), "GenericError", "QMP input must be a JSON object");
        assertError(qmp.raw("{\"id\":3}"), "GenericError", "lacks member 'execute'");
        assertError(qmp.raw("{\"execute\":\"stop\",\"bogus\":1}"), "GenericError", "'bogus' is unexpected");
    }

    @Test
    void stopContAndStatusWithEvents() throws Exception {
        assertThat(qmp.execute("query-status", null).path("status").asText()).isEqualTo("running");
        qmp.execute("stop", null);
        assertThat(qmp.awaitEvent(e -> e.path("event").asText().equals("STOP"), Duration.ofSeconds(5))).isNotNull();
        JsonNode st = qmp.execute("query-status", null);
        assertThat(st.path("running").asBoolean()).isFalse();
        assertThat(st.path("status").asText()).isEqualTo("paused");
        qmp.execute("cont", null);
        JsonNode ev = qmp.awaitEvent(e -> e.path("event").asText().equals("RESUME"), Duration.ofSeconds(5));
        assertThat(ev.path("timestamp").has("seconds")).isTrue();
        assertThat(qmp.execute("query-status", null).path("running").asBoolean()).isTrue();
        assertError(qmp.call("stop", Map.of("force", true)), "GenericError", "Parameter 'force' is unexpected");
    }

    @Test
    void capabilities() {
        JsonNode caps = qmp.execute("query-migrate-capabilities", null);
        Set<String> names = new HashSet<>();
        caps.forEach(c -> names.add(c.path("capability").asText()));
        assertThat(names).contains("events", "return-path", "multifd", "xbzrle", "mapped-ram");
        qmp.execute("migrate-set-capabilities", Map.of("capabilities",
                List.of(Map.of("capability", "events", "state", true))));
        caps = qmp.execute("query-migrate-capabilities", null);
        caps.forEach(c -> assertThat(c.path("state").asBoolean())
                .isEqualTo(c.path("capability").asText().equals("events")));
        assertError(qmp.call("migrate-set-capabilities", Map.of("capabilities",
                List.of(Map.of("capability", "warp-drive", "state", true)))), "GenericError", "warp-drive");
        assertError(qmp.call("migrate-set-capabilities", Map.of("capabilities",
                List.of(Map.of("capability", "events", "state", "yes")))), "GenericError",
                "Invalid parameter type for 'capabilities[0].state', expected: boolean");
        assertError(qmp.call("migrate-set-capabilities", Map.of("capabilities", "events")), "GenericError",
                "Invalid parameter type for 'capabilities', expected: array");
        assertError(qmp.call("migrate-set-capabilities", Map.of()), "GenericError",
                "Parameter 'capabilities' is missing");
        assertError(qmp.call("migrate-set-capabilities", Map.of("capabilities",
                List.of(Map.of("capability", "xbzrle", "state", true)))), "GenericError", "not supported");
    }

    @Test
    void parameters() {
        JsonNode p = qmp.execute("query-migrate-parameters", null);
        assertThat(p.path("downtime-limit").asLong()).isEqualTo(300);
        assertThat(p.path("max-bandwidth").asLong()).isEqualTo(134217728L);
        assertThat(p.path("avail-switchover-bandwidth").asLong()).isZero();
        qmp.execute("migrate-set-parameters", Map.of("downtime-limit", 500, "max-bandwidth", 1 << 30));
        p = qmp.execute("query-migrate-parameters", null);
        assertThat(p.path("downtime-limit").asLong()).isEqualTo(500);
        assertThat(p.path("max-bandwidth").asLong()).isEqualTo(1 << 30);
        assertError(qmp.call("migrate-set-parameters", Map.of("downtime-limit", "fast")), "GenericError",
                "Invalid parameter type for 'downtime-limit', expected: integer");
        assertError(qmp.call("migrate-set-parameters", Map.of("downtime-limit", 3_000_000)), "GenericError",
                "downtime-limit");
        assertError(qmp.call("migrate-set-parameters", Map.of("speed", 1)), "GenericError",
                "Parameter 'speed' is unexpected");
        assertError(qmp.call("migrate-set-parameters", Map.of("zero-page-detection", "magic")), "GenericError",
                "zero-page-detection");
        // all or nothing: the valid member of a failing call is not applied
        qmp.call("migrate-set-parameters", Map.of("downtime-limit", 700, "multifd-channels", 0));
        assertThat(qmp.execute("query-migrate-parameters", null).path("downtime-limit").asLong()).isEqualTo(500);
    }

    @Test
    void migrateErrorsAndCancelAndWrongState() throws Exception {
        assertThat(qmp.execute("query-migrate", null).size()).isZero();
        assertError(qmp.call("migrate", Map.of()), "GenericError", "Parameter 'uri' is missing");
        assertError(qmp.call("migrate", Map.of("uri", 7)), "GenericError",
                "Invalid parameter type for 'uri', expected: string");
        assertError(qmp.call("migrate", Map.of("uri", "rdma:1.2.3.4:5")), "GenericError", "unsupported transport");
        assertError(qmp.call("migrate-incoming", Map.of("uri", "tcp:127.0.0.1:0")), "GenericError",
                "'-incoming' was not specified on the command line");

        Vm dst = new Vm(new VmConfig("d", null, 16 << 20, null, false, MachineType.DEFAULT, false, null), true);
        QmpServer dsrv = serve(dst, true);
        try (QmpClient d = QmpClient.connect(dsrv.address())) {
            assertThat(d.execute("query-status", null).path("status").asText()).isEqualTo("inmigrate");
            assertError(d.call("cont", null), "GenericError", "incoming migration");
            String sock = "unix:" + dir.resolve("m.sock");
            d.execute("migrate-incoming", Map.of("uri", sock));
            assertError(d.call("migrate-incoming", Map.of("uri", sock)), "GenericError", "already been started");
            assertError(d.call("migrate", Map.of("uri", "unix:/nonexistent")), "GenericError",
                    "There's a migration process in progress");

            qmp.execute("migrate-set-capabilities", Map.of("capabilities",
                    List.of(Map.of("capability", "events", "state", true))));
            qmp.execute("migrate-set-parameters", Map.of("max-bandwidth", 4 << 20, "downtime-limit", 1));
            // every page written first, so that the first pass alone holds 16 MiB (4 s at 4 MiB/s):
            // RAM still zero (a vCPU thread not yet scheduled) migrates in milliseconds, and the
            // migration would be over before it is queried and cancelled
            long pages = vm.ramBlocks().getFirst().pages();
            long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(30);
            while (vm.workload().pagesTouched() < pages) {
                assertThat(System.nanoTime()).as("the guest writes all %d pages", pages).isLessThan(deadline);
                Thread.sleep(10);
            }
            qmp.execute("migrate", Map.of("uri", sock));
            assertError(qmp.call("migrate", Map.of("uri", sock)), "GenericError",
                    "There's a migration process in progress");
            assertError(qmp.call("migrate-set-capabilities", Map.of("capabilities",
                    List.of(Map.of("capability", "events", "state", false)))), "GenericError", "in progress");
            assertThat(qmp.awaitEvent(e -> e.path("data").path("status").asText().equals("active"),
                    Duration.ofSeconds(10))).isNotNull();
            JsonNode info = qmp.execute("query-migrate", null);
            assertThat(info.path("status").asText()).isEqualTo("active");
            assertThat(info.path("ram").path("total").asLong()).isEqualTo(16 << 20);
            for (String k : List.of("transferred", "remaining", "duplicate", "normal", "normal-bytes",
                    "dirty-pages-rate", "mbps", "dirty-sync-count", "precopy-bytes", "downtime-bytes",
                    "pages-per-second", "page-size", "multifd-bytes")) {
                assertThat(info.path("ram").has(k)).as(k).isTrue();
            }
            assertThat(info.has("expected-downtime")).isTrue();
            assertThat(info.has("setup-time")).isTrue();
            qmp.execute("migrate_cancel", null);
            assertThat(qmp.awaitEvent(e -> e.path("data").path("status").asText().equals("cancelled"),
                    Duration.ofSeconds(10))).isNotNull();
            assertThat(qmp.execute("query-status", null).path("status").asText()).isEqualTo("running");
            assertThat(qmp.execute("query-migrate", null).path("status").asText()).isEqualTo("cancelled");
        } finally {
            dsrv.close();
            dst.close();
        }
    }

    @Test
    void workloadAndDigestQueries() {
        JsonNode w = qmp.execute("x-jmigrate-query-workload", null);
        assertThat(w.path("enabled").asBoolean()).isTrue();
        assertThat(w.path("ok").asBoolean()).isTrue();
        JsonNode d = qmp.execute("x-jmigrate-query-digest", null);
        assertThat(d.path("outgoing").asText()).isEmpty();
        assertThat(d.has("incoming")).isTrue();
    }

    @Test
    void tcpServerWorksLikeUnix() {
        AtomicReference<QmpDispatcher> d = new AtomicReference<>();
        try (QmpServer tcp = new QmpServer("tcp:127.0.0.1:0", d::get)) {
            d.set(new QmpDispatcher(vm, new MigrationManager(vm, tcp), quit::countDown));
            tcp.start();
            assertThat(tcp.address()).startsWith("tcp:127.0.0.1:").doesNotEndWith(":0");
            try (QmpClient c = QmpClient.connect(tcp.address())) {
                assertThat(c.execute("query-status", null).path("status").asText()).isEqualTo("running");
            }
        }
    }

    @Test
    void quitRunsTheQuitHook() throws Exception {
        qmp.execute("quit", null);
        assertThat(quit.await(5, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
    }

    @Test
    void schemaListsEveryCommandTheDispatcherHandles() {
        assertThat(QmpSchema.COMMANDS).extracting(QmpSchema.Spec::name).doesNotHaveDuplicates()
                .contains("qmp_capabilities", "query-status", "stop", "cont", "quit", "migrate", "migrate-incoming",
                        "migrate_cancel", "migrate-set-capabilities", "migrate-set-parameters", "query-migrate",
                        "query-migrate-capabilities", "query-migrate-parameters", "x-jmigrate-query-digest");
        assertThat(QmpCommand.class.getPermittedSubclasses()).hasSize(QmpSchema.COMMANDS.size());
        assertThat(QmpSchema.EVENTS).containsExactly("MIGRATION", "MIGRATION_PASS", "STOP", "RESUME", "VFIO_MIGRATION");
    }
}
