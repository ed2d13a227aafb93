package io.jmigrate.bench;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The throughput benchmark: migrates a paused VM whose RAM is {@code ramBytes} of incompressible
 * bytes over TCP loopback, with each engine, in each mode (precopy on the main channel only, and
 * multifd with each channel count), {@code runs} times, and collects {@code query-migrate}'s
 * {@code total-time}.
 *
 * <p>For every run both processes are started fresh: a source mapping the shared RAM image
 * ({@code share=on}) and a destination with its own RAM and {@code incoming defer}. Both get the
 * same capabilities and parameters over QMP ({@code multifd} and {@code multifd-channels} when
 * multifd is used; {@code max-bandwidth} raised on the source), then {@code migrate-incoming} and
 * {@code migrate tcp:127.0.0.1:PORT}. The source's status is polled every 20 ms until it is
 * final, then the destination's until it has loaded everything. For jmigrate the RAM digests
 * of both sides ({@code x-jmigrate-query-digest}, computed after {@code total-time} ends) must
 * be equal, or the run counts as failed.
 *
 * <p>Runs are interleaved (run 1 of every engine, then run 2, ...) so that the machine's drift
 * during the benchmark hits every engine alike. An engine that refuses a mode (jmigrate without
 * multifd support yet) gets the refusal recorded instead of numbers; a failed run ends that
 * engine's mode with the failure recorded.
 */
public final class ThroughputBench {
    private final ThroughputConfig config;
    private final List<Engine> engines;
    private final PrintStream progress;
    /** A VM's JIT warm-up takes seconds; on a loaded machine it may take a minute. */
    static final java.time.Duration WARM_UP_TIMEOUT = java.time.Duration.ofSeconds(180);
    private boolean aotWarned;

    public ThroughputBench(ThroughputConfig config, List<Engine> engines, PrintStream progress) {
        if (engines.isEmpty()) {
            throw new IllegalArgumentException("no engines");
        }
        this.config = config;
        this.engines = List.copyOf(engines);
        this.progress = progress;
    }

    /** One engine in one mode: its runs, or why it has none. */
    public static final class Row {
        final Engine engine;
        String label;
        final int channels;
        final ThroughputConfig.Mode mode;
        final List<RunResult> runs = new ArrayList<>();
        String unsupported;
        String failure;

        Row(Engine engine, int channels) {
            this(engine, new ThroughputConfig.Mode(channels, "none"));
        }

        Row(Engine engine, ThroughputConfig.Mode mode) {
            this.engine = engine;
            this.label = engine.label();
            this.channels = mode.channels();
            this.mode = mode;
        }

        public ThroughputConfig.Mode mode() {
            return mode;
        }

        public String label() {
            return label;
        }

        public int channels() {
            return channels;
        }

        public List<RunResult> runs() {
            return List.copyOf(runs);
        }

        public String unsupported() {
            return unsupported;
        }

        public String failure() {
            return failure;
        }

        public boolean isJmigrate() {
            return engine instanceof Engine.Jmigrate;
        }

        boolean done() {
            return unsupported != null || failure != null;
        }
    }

    /** Runs everything; never throws for a failed migration (that is recorded in its row). */
    public ThroughputReport run() {
        Path image = config.workDir().resolve("guest-ram.img");
        try {
            Files.createDirectories(config.workDir());
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "cannot create the work directory " + config.workDir() + ": "
                    + e.getMessage(), e);
        }
        progress.printf("filling %s with %d MiB of seeded random bytes (seed %d)%n", image, config.ramBytes() >> 20,
                config.seed());
        RamImage.fill(image, config.ramBytes(), config.seed());
        Map<String, String> versions = new LinkedHashMap<>();
        List<Row> rows = new ArrayList<>();
        for (ThroughputConfig.Mode mode : config.modes()) {
            int ch = mode.channels();
            List<Row> modeRows = new ArrayList<>();
            for (Engine e : engines) {
                modeRows.add(new Row(e, mode));
            }
            rows.addAll(modeRows);
            for (int run = 1; run <= config.runs(); run++) {
                for (Row row : modeRows) {
                    if (row.done()) {
                        continue;
                    }
                    String what = ch == 0 ? mode.label() : mode.label() + " " + ch + " ch";
                    progress.printf("%-14s %-14s run %d/%d ... ", displayLabel(row.engine, versions), what, run,
                            config.runs());
                    progress.flush();
                    try {
                        RunResult r = migrateOnce(row.engine, mode, image, versions);
                        row.runs.add(r);
                        progress.printf("%d ms, %.3f GB/s%n", r.totalTimeMs(), r.gbps(config.ramBytes()));
                    } catch (Unsupported u) {
                        row.unsupported = u.getMessage();
                        progress.println("not supported: " + u.getMessage());
                    } catch (MigrationException ex) {
                        row.failure = ex.getMessage();
                        progress.println("FAILED: " + ex.getMessage());
                    }
                }
            }
        }
        for (Row r : rows) {
            r.label = displayLabel(r.engine, versions);
        }
        return new ThroughputReport(config, rows);
    }

    /** QEMUs are labelled by the version in their QMP greeting once one has started. */
    private static String displayLabel(Engine e, Map<String, String> versions) {
        String v = versions.get(e.label());
        return v != null && !v.isEmpty() && e instanceof Engine.Qemu ? "qemu-" + v : e.label();
    }

    /** An engine refused the mode (a capability it does not implement). */
    static final class Unsupported extends RuntimeException {
        Unsupported(String message) {
            super(message, null, false, false);
        }
    }

    private RunResult migrateOnce(Engine engine, ThroughputConfig.Mode mode, Path image,
                                  Map<String, String> versions) {
        int channels = mode.channels();
        Path dir = config.workDir();
        String tag = engine.label() + "-" + channels + "-" + mode.compression() + (mode.tls() ? "-tls" : "");
        Path srcSock = dir.resolve(tag + "-src.qmp");
        Path dstSock = dir.resolve(tag + "-dst.qmp");
        try (Peer dst = Peer.start(engine.label() + " destination",
                engine.destinationCommand("bench-dst", config.ramBytes(), dstSock, config.dstPrealloc()), dstSock,
                dir.resolve(tag + "-dst.log"));
             Peer src = Peer.start(engine.label() + " source",
                     engine.sourceCommand("bench-src", config.ramBytes(), image, srcSock), srcSock,
                     dir.resolve(tag + "-src.log"))) {
            versions.putIfAbsent(engine.label(), src.version());
            if (channels > 0) {
                Map<String, Object> caps = Map.of("capabilities",
                        List.of(Map.of("capability", "multifd", "state", true)));
                for (Peer p : List.of(src, dst)) {
                    try {
                        p.exec("migrate-set-capabilities", caps);
                    } catch (MigrationException e) {
                        throw new Unsupported(engine.label() + " refused capability multifd: "
                                + e.getMessage().replaceFirst("^migrate-set-capabilities: ", ""));
                    }
                    p.exec("migrate-set-parameters", Map.of("multifd-channels", channels));
                    if (mode.compressed()) {
                        try {
                            p.exec("migrate-set-parameters", Map.of("multifd-compression", mode.compression()));
                        } catch (MigrationException e) {
                            throw new Unsupported(engine.label() + " refused multifd-compression "
                                    + mode.compression() + ": "
                                    + e.getMessage().replaceFirst("^migrate-set-parameters: ", ""));
                        }
                    }
                }
            }
            if (mode.tls()) {
                // QEMU's shape, over QMP: credentials objects, then the tls-creds parameter
                for (Peer p : List.of(src, dst)) {
                    String endpoint = p == src ? "client" : "server";
                    try {
                        p.exec("object-add", Map.of("qom-type", "tls-creds-x509", "id", "bench-tls",
                                "dir", config.tlsDir().toString(), "endpoint", endpoint));
                        p.exec("migrate-set-parameters", Map.of("tls-creds", "bench-tls"));
                    } catch (MigrationException e) {
                        throw new Unsupported(engine.label() + " refused TLS: " + e.getMessage());
                    }
                }
            }
            src.exec("migrate-set-parameters", Map.of("max-bandwidth", config.maxBandwidth()));
            for (Peer p : List.of(src, dst)) {
                p.awaitJitWarmUp(WARM_UP_TIMEOUT);
                warnAotCache(p);
            }
            int port = freePort();
            String uri = "tcp:127.0.0.1:" + port;
            dst.exec("migrate-incoming", Map.of("uri", uri));
            double srcCpu0 = src.cpuSeconds();
            double dstCpu0 = dst.cpuSeconds();
            src.exec("migrate", Map.of("uri", uri));
            JsonNode info = awaitFinal(src, "source");
            double srcCpu = cpuSince(src, srcCpu0, info);
            String status = info.path("status").asText();
            if (!status.equals("completed")) {
                throw new MigrationException(Category.STATE, engine.label() + " migration " + status
                        + (info.has("error-desc") ? ": " + info.get("error-desc").asText() : "")
                        + "; source log: " + Peer.tail(src.log) + "; destination log: " + Peer.tail(dst.log));
            }
            JsonNode dinfo = awaitFinal(dst, "destination");
            double dstCpu = cpuSince(dst, dstCpu0, dinfo);
            long dstRss = dst.peakRssBytes();
            if (!dinfo.path("status").asText().equals("completed")) {
                throw new MigrationException(Category.STATE, engine.label() + " destination ended "
                        + dinfo.path("status").asText() + (dinfo.has("error-desc") ? ": "
                        + dinfo.get("error-desc").asText() : "") + "; log: " + Peer.tail(dst.log));
            }
            if (engine instanceof Engine.Jmigrate) {
                // fast but wrong is worthless: the destination's RAM must hash like the source's. The
                // digest is computed after completion and the query waits for it: SHA-256 of the
                // whole guest on a loaded machine can take far longer than a QMP reply normally does
                java.time.Duration digestWait = java.time.Duration.ofSeconds(60 + 60 * Math.max(1, config.ramBytes() >> 30));
                src.qmp.setTimeout(digestWait);
                dst.qmp.setTimeout(digestWait);
                String a = src.exec("x-jmigrate-query-digest", null).path("outgoing").asText();
                String b = dst.exec("x-jmigrate-query-digest", null).path("incoming").asText();
                if (a.isEmpty() || !a.equals(b)) {
                    throw new MigrationException(Category.MISMATCH, "jmigrate destination RAM differs from the "
                            + "source's: sha256 " + (a.isEmpty() ? "(none)" : a) + " sent, " + (b.isEmpty()
                            ? "(none)" : b) + " loaded");
                }
            }
            JsonNode ram = info.path("ram");
            return new RunResult(info.path("total-time").asLong(), info.path("setup-time").asLong(-1),
                    info.path("downtime").asLong(-1), ram.path("transferred").asLong(),
                    ram.path("multifd-bytes").asLong(), srcCpu, dstCpu, dstRss);
        }
    }

    /**
     * CPU seconds since {@code before}: up to completion as jmigrate reports it in
     * {@code query-migrate} ({@code x-jmigrate-cpu-seconds}, sampled before its digest runs), else
     * ({@code QEMU}) up to now, when the poll saw completion.
     */
    private static double cpuSince(Peer p, double before, JsonNode info) {
        double now = info.has("x-jmigrate-cpu-seconds") ? info.get("x-jmigrate-cpu-seconds").asDouble()
                : p.cpuSeconds();
        return before < 0 || now < 0 ? -1 : now - before;
    }

    /** Says once if a jmigrate VM ran without the AOT cache it was given. */
    private void warnAotCache(Peer p) {
        String e = aotWarned ? null : p.aotCacheError();
        if (e != null) {
            aotWarned = true;
            progress.println("warning: " + p.name + " did not use the AOT cache: " + e + " (see " + p.log + ")");
        }
    }

    private JsonNode awaitFinal(Peer p, String side) {
        long deadline = System.nanoTime() + config.migrationTimeout().toNanos();
        while (true) {
            JsonNode info = p.exec("query-migrate", null);
            String s = info.path("status").asText();
            // QEMU's source reports "completed" a moment before it records total-time (0 until
            // then), so a source's completion counts once total-time is there
            boolean timed = !side.equals("source") || info.path("total-time").asLong() > 0;
            if (s.equals("completed") && timed || s.equals("failed") || s.equals("cancelled")) {
                return info;
            }
            if (System.nanoTime() > deadline) {
                throw new MigrationException(Category.TIMEOUT, p.name + ": migration still '" + s + "' after "
                        + config.migrationTimeout().toSeconds() + " s (" + side + ")");
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new MigrationException(Category.CANCELLED, "interrupted");
            }
        }
    }

    private static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new MigrationException(Category.IO, "no free TCP port on loopback: " + e.getMessage(), e);
        }
    }
}
