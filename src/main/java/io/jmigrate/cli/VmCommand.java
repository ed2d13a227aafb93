package io.jmigrate.cli;

import io.jmigrate.common.EventSink;
import io.jmigrate.machine.MachineType;
import io.jmigrate.memory.MemoryBackend;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.VmConfig;
import io.jmigrate.machine.WorkloadSpec;
import io.jmigrate.migration.IncomingMigration;
import io.jmigrate.migration.MigrationManager;
import io.jmigrate.qmp.QmpDispatcher;
import io.jmigrate.qmp.QmpServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

/** {@code jmigrate vm}: a VM process serving QMP (options follow QEMU's). */
@Command(name = "vm", mixinStandardHelpOptions = true,
        description = "Run a VM process: guest RAM, an optional vCPU workload, a QMP server.")
public final class VmCommand implements java.util.concurrent.Callable<Integer> {
    @Option(names = "--name", description = "VM name (default: vm)")
    String name = "vm";

    @Option(names = "--uuid", description = "VM UUID")
    UUID uuid;

    @Option(names = {"-m", "--memory"}, description = "guest RAM size, e.g. 256M or 1G (a bare number is MiB)",
            defaultValue = "128M")
    String memory;

    @Option(names = "--memory-backend", paramLabel = "ram|file=PATH,share=on|off|memfd[,prealloc=on][,thp=on|off]",
            description = "guest RAM as QEMU's memory backends: ram (anonymous, faulted in lazily; the default), "
                    + "file=PATH,share=on|off (memory-backend-file), memfd (memory-backend-memfd); prealloc=on "
                    + "faults every page in before the VM starts; thp=on|off advises transparent huge pages "
                    + "(default: on with prealloc=on, off without)")
    String memoryBackend;

    @Option(names = "--machine", description = "machine type: none, jm-10.1 (default), jm-9.2",
            defaultValue = "jm-10.1")
    String machine;

    @Option(names = "--qmp", required = true, paramLabel = "unix:PATH|tcp:HOST:PORT", description = "QMP server address")
    String qmp;

    @Option(names = "--incoming", paramLabel = "URI|defer",
            description = "wait for an incoming migration on tcp:HOST:PORT, unix:PATH, file:PATH, or 'defer' "
                    + "(then use QMP migrate-incoming)")
    String incoming;

    @Option(names = "-S", description = "start paused (do not start the vCPUs)")
    boolean startPaused;

    @Option(names = "--workload", paramLabel = "dirty-rate=MB/s,pattern=increment[,vcpus=N]",
            description = "vCPU threads that increment a byte in every page they touch, at the given rate (MiB/s)")
    String workload;

    @Option(names = "--global", paramLabel = "migration.PROP=VALUE",
            description = "override a migration property of the machine type, as QEMU's -global: "
                    + "migration.send-switchover-start=on|off, migration.multifd-flush-after-each-section=on|off; "
                    + "also the capability migration.x-jmigrate-digest=on|off (repeatable)")
    java.util.List<String> globals = new java.util.ArrayList<>();

    @Option(names = "--x-fill-random", paramLabel = "SEED", hidden = true,
            description = "tests: fill guest RAM with incompressible pseudo-random bytes before the VM starts")
    Long fillSeed;

    @Option(names = "--object", paramLabel = "TYPE,id=ID,...",
            description = "create an object, as QEMU's -object: tls-creds-x509,id=ID,dir=DIR,endpoint=server|client"
                    + "[,verify-peer=on|off]; authz-simple,id=ID,identity=DN; authz-list,id=ID,policy=deny|allow,"
                    + "rules.0.match=DN,rules.0.policy=allow[,rules.0.format=exact|glob]... (a comma inside a value "
                    + "is written ,,) (repeatable)")
    java.util.List<String> objects = new java.util.ArrayList<>();

    @Option(names = "--device", paramLabel = "blob,id=NAME,size=SIZE[,...] | vfio-emu,id=NAME[,...]",
            description = "add a device whose switchover state goes over multifd device state (repeatable): "
                    + "blob,id=NAME,size=SIZE[,chunk=SIZE][,read-rate=R][,write-rate=R] (also seed=N, and the test "
                    + "hooks order=reverse, fail-at=save:N|load:N, hold-at=save:N, mutate=off); or an emulated VFIO VF "
                    + "vfio-emu,id=NAME[,state-size=S][,precopy-size=S][,dirty-rate=R][,read-rate=R][,write-rate=R]"
                    + "[,config-size=S][,p2p=on|off][,x-migration-multifd-transfer=on|off|auto]"
                    + "[,x-migration-max-queued-buffers-size=S][,x-migration-load-config-after-iter=on|off|auto]"
                    + "[,migration-events=on|off] (see the README's VFIO section)")
    java.util.List<String> devices = new java.util.ArrayList<>();

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--jit-warm-up", paramLabel = "on|off", defaultValue = "${sys:jmigrate.jit-warm-up:-on}",
            description = "migrate a scratch guest inside this process in the background at start-up, so the "
                    + "VM's first migration runs compiled loops (default on, or the system property "
                    + "jmigrate.jit-warm-up; x-jmigrate-query-jit-warm-up)")
    String jitWarmUp;

    @Override
    public Integer call() throws Exception {
        boolean warmUp = switch (jitWarmUp) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new picocli.CommandLine.ParameterException(spec.commandLine(),
                    "--jit-warm-up must be on or off, not '" + jitWarmUp + "'");
        };
        java.util.Map<String, String> globalMap = new java.util.LinkedHashMap<>();
        for (String g : globals) {
            io.jmigrate.machine.MigrationProperties.parseGlobal(g, globalMap);
        }
        MemoryBackend backend = memoryBackend == null ? MemoryBackend.RAM : MemoryBackend.parse(memoryBackend);
        VmConfig cfg = new VmConfig(name, uuid, VmConfig.parseSize(memory), null, false,
                MachineType.byName(machine), startPaused, workload == null ? null : WorkloadSpec.parse(workload),
                globalMap, backend,
                devices.stream().filter(d -> !d.startsWith("vfio-emu")).map(io.jmigrate.machine.BlobSpec::parse).toList(),
                devices.stream().filter(d -> d.startsWith("vfio-emu")).map(io.jmigrate.machine.VfioEmuSpec::parse).toList());
        CountDownLatch quit = new CountDownLatch(1);
        AtomicReference<QmpDispatcher> dispatcher = new AtomicReference<>();
        try (QmpServer server = new QmpServer(qmp, dispatcher::get);
             Vm vm = new Vm(cfg, incoming != null)) {
            if (fillSeed != null) {
                fillRandom(vm.ramBlocks().getFirst().segment(), fillSeed);
            }
            for (String o : objects) {
                vm.objectAdd(o);
            }
            EventSink events = server;
            vm.setEventSink(events);
            MigrationManager mm = new MigrationManager(vm, events);
            java.util.List<java.util.Map.Entry<io.jmigrate.migration.Capability, Boolean>> caps = new java.util.ArrayList<>();
            io.jmigrate.machine.MigrationProperties.capabilities(globalMap).forEach((c, on) ->
                    caps.add(java.util.Map.entry(io.jmigrate.migration.Capability.fromQmpName(c), on)));
            mm.setCapabilities(caps);
            dispatcher.set(new QmpDispatcher(vm, mm, quit::countDown));
            if (warmUp) {
                vm.setJitWarmUp(io.jmigrate.machine.JitWarmUp.start(mm::begun, (dir, channels, n) ->
                        TrainingMigration.run(dir, io.jmigrate.machine.JitWarmUp.ROUND_BYTES, channels, n, false)));
            }
            server.start();
            System.err.printf("jmigrate vm '%s': machine %s, %d MiB RAM (%s), QMP on %s, state %s%n", cfg.name(),
                    cfg.machine().name(), cfg.memoryBytes() >> 20, vm.ramBlocks().getFirst().backing(),
                    server.address(), vm.runState().qmpName);
            if (!io.jmigrate.memory.SegmentWindows.sessionFree()) {
                System.err.println("jmigrate vm: java.nio is not opened to jmigrate (--add-opens "
                        + "java.base/java.nio=ALL-UNNAMED; the jar's manifest has it): page I/O allocates per page");
            }
            if (incoming != null) {
                if (incoming.equals("defer")) {
                    mm.deferIncoming();
                } else {
                    IncomingMigration in = mm.startIncoming(incoming, false);
                    System.err.println("jmigrate vm: waiting for an incoming migration on " + in.boundUri());
                }
            }
            quit.await();
            // Give the quit reply a moment to reach the client before the sockets close.
            Thread.sleep(50);
            return 0;
        }
    }

    /**
     * xorshift64 words: incompressible, and about as fast as memory bandwidth allows. Byte 0 of
     * every 4 KiB page stays 0: it is the workload's per-page counter, which its checker reads.
     */
    private static void fillRandom(java.lang.foreign.MemorySegment seg, long seed) {
        long x = seed * 0x9E3779B97F4A7C15L | 1;
        for (long off = 0; off + 8 <= seg.byteSize(); off += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            seg.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, off, (off & 4095) == 0 ? x & ~0xffL : x);
        }
    }
}
