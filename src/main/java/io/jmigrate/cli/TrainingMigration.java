package io.jmigrate.cli;

import io.jmigrate.common.EventSink;
import io.jmigrate.machine.JitWarmUp;
import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.memory.MemoryBackend;
import io.jmigrate.migration.MigrationManager;
import io.jmigrate.qmp.QmpClient;
import io.jmigrate.qmp.QmpDispatcher;
import io.jmigrate.qmp.QmpServer;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One migration of a scratch guest of incompressible RAM between two scratch VMs inside this
 * JVM, over a UNIX socket, driven over QMP as a management tool drives two VM processes
 * (capabilities, parameters, {@code migrate-incoming}, {@code migrate}, {@code query-migrate}
 * every 10 ms until both sides complete). Both the AOT cache's training run
 * ({@code jmigrate x-aot-train}) and a VM's JIT warm-up ({@code jmigrate vm --jit-warm-up}) are
 * made of these, so what they exercise is what a real migration from a VM process runs: both
 * sides' page loops and the QMP server's request path.
 */
final class TrainingMigration {
    private TrainingMigration() {
    }

    /**
     * @param channels multifd channels, or 0 for precopy
     * @param digests  also record and compare both sides' RAM digests ({@code x-jmigrate-digest})
     * @return the source's total-time in ms
     */
    static long run(Path dir, long bytes, int channels, int n, boolean digests) throws Exception {
        VmConfig srcCfg = new VmConfig("train-src", null, bytes, null, false, MachineType.NONE, true, null,
                Map.of(), MemoryBackend.RAM);
        VmConfig dstCfg = new VmConfig("train-dst", null, bytes, null, false, MachineType.NONE, true, null,
                Map.of(), MemoryBackend.RAM);
        Path srcSock = dir.resolve("src" + n + ".qmp");
        Path dstSock = dir.resolve("dst" + n + ".qmp");
        try (Vm src = new Vm(srcCfg, false); Vm dst = new Vm(dstCfg, true);
             Served so = serve(src, srcSock, false); Served de = serve(dst, dstSock, true);
             QmpClient s = QmpClient.connect("unix:" + srcSock); QmpClient d = QmpClient.connect("unix:" + dstSock)) {
            JitWarmUp.fill(src.ramBlocks().getFirst());
            if (digests) {
                for (QmpClient c : List.of(s, d)) {
                    c.execute("migrate-set-capabilities", Map.of("capabilities",
                            List.of(Map.of("capability", "x-jmigrate-digest", "state", true))));
                }
            }
            if (channels > 0) {
                for (QmpClient c : List.of(s, d)) {
                    c.execute("migrate-set-capabilities", Map.of("capabilities",
                            List.of(Map.of("capability", "multifd", "state", true))));
                    c.execute("migrate-set-parameters", Map.of("multifd-channels", channels));
                }
            }
            s.execute("migrate-set-parameters", Map.of("max-bandwidth", 100_000_000_000L));
            String uri = "unix:" + dir.resolve("mig" + n + ".sock");
            d.execute("migrate-incoming", Map.of("uri", uri));
            s.execute("migrate", Map.of("uri", uri));
            long ms = await(s, n);
            await(d, n);
            if (digests) {
                String a = s.execute("x-jmigrate-query-digest", null).path("outgoing").asText();
                String b = d.execute("x-jmigrate-query-digest", null).path("incoming").asText();
                if (a.isEmpty() || !a.equals(b)) {
                    throw new IllegalStateException("training migration " + n + ": digests differ (" + a + " vs "
                            + b + ")");
                }
            }
            // both migration threads end before their VMs unmap the RAM they use
            if (!so.manager.outgoing().join(120_000) || !de.manager.incoming().join(120_000)) {
                throw new IllegalStateException("training migration " + n + ": its threads did not end within 120 s");
            }
            return ms;
        }
    }

    /** A scratch VM's QMP server and migration manager. */
    private record Served(QmpServer server, MigrationManager manager) implements AutoCloseable {
        @Override
        public void close() {
            server.close();
        }
    }

    private static Served serve(Vm vm, Path sock, boolean incoming) {
        AtomicReference<QmpDispatcher> dispatcher = new AtomicReference<>();
        QmpServer server = new QmpServer("unix:" + sock, dispatcher::get);
        EventSink events = server;
        vm.setEventSink(events);
        MigrationManager mm = new MigrationManager(vm, events);
        dispatcher.set(new QmpDispatcher(vm, mm, () -> { }));
        if (incoming) {
            mm.deferIncoming(); // as jmigrate vm --incoming defer
        }
        server.start();
        return new Served(server, mm);
    }

    /** Waits for completion; returns total-time. */
    private static long await(QmpClient c, int n) throws InterruptedException {
        long deadline = System.nanoTime() + 120_000_000_000L;
        while (true) {
            var info = c.execute("query-migrate", null);
            String st = info.path("status").asText();
            if (st.equals("completed")) {
                return info.path("total-time").asLong();
            }
            if (st.equals("failed") || st.equals("cancelled") || System.nanoTime() > deadline) {
                throw new IllegalStateException("training migration " + n + " ended " + st
                        + (info.has("error-desc") ? ": " + info.path("error-desc").asText() : ""));
            }
            Thread.sleep(10);
        }
    }
}
