package io.jmigrate.cli;

import io.jmigrate.common.EventSink;
import io.jmigrate.machine.MachineType;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.memory.MemoryBackend;
import io.jmigrate.migration.MigrationManager;
import io.jmigrate.qmp.QmpClient;
import io.jmigrate.qmp.QmpDispatcher;
import io.jmigrate.qmp.QmpServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicReference;

/**
 * {@code jmigrate x-aot-train}: the training run of the AOT cache (JEP 483/514/515) that
 * {@code bin/jmigrate} builds once per jar. It migrates a paused guest of incompressible RAM
 * between two VMs in this one JVM, over a UNIX socket, driven over QMP as a management tool does:
 * precopy, then multifd with 2 and 4 channels, with both sides' hot loops (dirty scan, page
 * records, gathering writes, packet encode and validate, page receive, digest). The JVM records
 * which classes it loaded and linked and the methods' profiles, so a VM process started from the
 * cache neither loads those classes again nor starts the migration's loops cold.
 */
@Command(name = "x-aot-train", hidden = true,
        description = "Training run for the AOT cache (bin/jmigrate runs it with -XX:AOTCacheOutput).")
public final class AotTrainCommand implements Callable<Integer> {
    @Option(names = "--ram", description = "guest RAM per training migration (default 192M)", defaultValue = "192M")
    String ram;

    @Override
    public Integer call() throws Exception {
        long bytes = VmConfig.parseSize(ram);
        Path dir = Files.createTempDirectory("jmigrate-aot-train");
        try {
            int n = 0;
            for (int channels : new int[] {0, 2, 4}) {
                migrate(dir, bytes, channels, n++);
            }
            return 0;
        } finally {
            try (var s = Files.list(dir)) {
                for (Path p : s.toList()) {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(dir);
        }
    }

    private static void migrate(Path dir, long bytes, int channels, int n) throws Exception {
        VmConfig srcCfg = new VmConfig("train-src", null, bytes, null, false, MachineType.NONE, true, null,
                Map.of(), MemoryBackend.RAM);
        VmConfig dstCfg = new VmConfig("train-dst", null, bytes, null, false, MachineType.NONE, true, null,
                Map.of(), MemoryBackend.RAM);
        Path srcSock = dir.resolve("src" + n + ".qmp");
        Path dstSock = dir.resolve("dst" + n + ".qmp");
        try (Vm src = new Vm(srcCfg, false); Vm dst = new Vm(dstCfg, true);
             QmpServer srcQmp = serve(src, srcSock, false); QmpServer dstQmp = serve(dst, dstSock, true);
             QmpClient s = QmpClient.connect("unix:" + srcSock); QmpClient d = QmpClient.connect("unix:" + dstSock)) {
            io.jmigrate.machine.JitWarmUp.fill(src.ramBlocks().getFirst());
            for (QmpClient c : List.of(s, d)) {
                c.execute("migrate-set-capabilities", Map.of("capabilities",
                        List.of(Map.of("capability", "x-jmigrate-digest", "state", true))));
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
            long ms = await(s);
            await(d);
            String a = s.execute("x-jmigrate-query-digest", null).path("outgoing").asText();
            String b = d.execute("x-jmigrate-query-digest", null).path("incoming").asText();
            if (a.isEmpty() || !a.equals(b)) {
                throw new IllegalStateException("training migration " + n + ": digests differ (" + a + " vs " + b + ")");
            }
            System.err.printf("jmigrate: AOT training migration %d (%s): %d MiB in %d ms%n", n,
                    channels == 0 ? "precopy" : "multifd " + channels + " ch", bytes >> 20, ms);
        }
    }

    private static QmpServer serve(Vm vm, Path sock, boolean incoming) {
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
        return server;
    }

    /** Waits for completion; returns total-time. */
    private static long await(QmpClient c) throws InterruptedException {
        long deadline = System.nanoTime() + 120_000_000_000L;
        while (true) {
            var info = c.execute("query-migrate", null);
            String st = info.path("status").asText();
            if (st.equals("completed")) {
                return info.path("total-time").asLong();
            }
            if (st.equals("failed") || st.equals("cancelled") || System.nanoTime() > deadline) {
                throw new IllegalStateException("training migration ended " + st);
            }
            Thread.sleep(10);
        }
    }
}
