package io.jmigrate.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.qmp.QmpClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The AOT cache as {@code bin/jmigrate} builds and uses it: built from the training migration, not
 * used once the jar is newer than it, rebuilt then, and good enough that a VM's JIT warm-up gets
 * every per-packet method to C2 well before its last round (under a cache whose training never got
 * them there, they stay at tier 2 and the warm-up runs all 32 rounds without compiling them).
 */
class AotCacheIT {
    private static final Path ROOT = Path.of("").toAbsolutePath();
    private static final Path JAR = ROOT.resolve("target/jmigrate.jar");
    private static final Path AOT = ROOT.resolve("target/jmigrate.aot");

    record Run(int exit, String out) {
    }

    /** {@code bin/jmigrate ARGS} with the jar this build made (never a nested Maven build). */
    private static ProcessBuilder launcher(Path out, Map<String, String> env, String... args) {
        List<String> cmd = new ArrayList<>(List.of("bin/jmigrate"));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(ROOT.toFile()).redirectErrorStream(true)
                .redirectOutput(out.toFile());
        pb.environment().put("JMIGRATE_NO_BUILD", "1");
        pb.environment().putAll(env);
        return pb;
    }

    private static Run run(Path out, Map<String, String> env, String... args) throws Exception {
        Process p = launcher(out, env, args).start();
        if (!p.waitFor(300, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("bin/jmigrate " + String.join(" ", args) + " did not finish within 300 s");
        }
        return new Run(p.exitValue(), Files.readString(out));
    }

    /** The {@code -XX:AOTCache} the launcher gave the JVM, from {@code -XX:+PrintFlagsFinal}. */
    private static String cacheInUse(Path dir) throws Exception {
        Run r = run(dir.resolve("flags.out"), Map.of("JMIGRATE_JAVA_OPTS", "-XX:+PrintFlagsFinal"), "--version");
        assertThat(r.exit()).as(r.out()).isZero();
        return r.out().lines().filter(l -> l.trim().startsWith("ccstr AOTCache "))
                .map(l -> l.replaceAll(".*= *", "").replaceAll(" *\\{.*", "").trim()).findFirst().orElseThrow();
    }

    @Test
    void theCacheIsBuiltUsedRebuiltWhenStaleAndTakesTheWarmUpToC2(@TempDir Path dir) throws Exception {
        Run built = run(dir.resolve("build.out"), Map.of("JMIGRATE_AOT", "build"), "--version");
        assertThat(built.exit()).as(built.out()).isZero();
        assertThat(AOT).exists();
        assertThat(Files.getLastModifiedTime(AOT)).isGreaterThanOrEqualTo(Files.getLastModifiedTime(JAR));
        assertThat(cacheInUse(dir)).isEqualTo(AOT.toString());

        // a jar newer than the cache: not used, and the next build rebuilds it
        Files.setLastModifiedTime(JAR, FileTime.fromMillis(Files.getLastModifiedTime(AOT).toMillis() + 2000));
        assertThat(cacheInUse(dir)).isEmpty();
        Run rebuilt = run(dir.resolve("rebuild.out"), Map.of("JMIGRATE_AOT", "build"), "--version");
        assertThat(rebuilt.exit()).as(rebuilt.out()).isZero();
        assertThat(rebuilt.out()).contains("building the AOT cache");
        assertThat(Files.getLastModifiedTime(AOT)).isGreaterThanOrEqualTo(Files.getLastModifiedTime(JAR));
        assertThat(cacheInUse(dir)).isEqualTo(AOT.toString());
        assertThat(Files.readString(ROOT.resolve("target/jmigrate-aot.log")))
                .contains("AOT training migration " + (AotTrainCommand.MIGRATIONS.length - 1) + " (multifd 4 ch)");

        Path sock = dir.resolve("vm.qmp");
        Path log = dir.resolve("vm.log");
        Process vm = launcher(log, Map.of(), "vm", "-m", "64M", "--jit-warm-up", "on", "--qmp", "unix:" + sock)
                .start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!Files.exists(sock)) {
                assertThat(vm.isAlive()).as(Files.readString(log)).isTrue();
                assertThat(System.nanoTime()).as("QMP socket within 60 s").isLessThan(deadline);
                Thread.sleep(50);
            }
            try (QmpClient q = QmpClient.connect("unix:" + sock)) {
                JsonNode info;
                while ((info = q.execute("x-jmigrate-query-jit-warm-up", null)).path("status").asText()
                        .equals("running")) {
                    Thread.sleep(100);
                }
                assertThat(info.path("status").asText()).as(info.toString()).isEqualTo("done");
                assertThat(info.path("hot-methods-compiled").asBoolean()).as(info.toString()).isTrue();
                assertThat(info.path("rounds").asInt()).as(info.toString()).isLessThan(32);
            }
        } finally {
            vm.destroy();
            vm.waitFor(30, TimeUnit.SECONDS);
        }
        assertThat(Files.readString(log)).doesNotContain("AOT cache", "AOTCache");
    }
}
