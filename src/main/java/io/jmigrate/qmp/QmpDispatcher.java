package io.jmigrate.qmp;

import io.jmigrate.common.MigrationException;
import io.jmigrate.machine.RunState;
import io.jmigrate.machine.Vm;
import io.jmigrate.machine.Workload;
import io.jmigrate.machine.WorkloadChecker;
import io.jmigrate.migration.Capability;
import io.jmigrate.migration.MigrationManager;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Executes decoded QMP commands against the VM and its migration object. Results are plain
 * maps/lists (serialised by the session); failures are {@link QmpError}s.
 */
public final class QmpDispatcher {
    private final Vm vm;
    private final MigrationManager migration;
    private final Runnable quit;

    public QmpDispatcher(Vm vm, MigrationManager migration, Runnable quit) {
        this.vm = vm;
        this.migration = migration;
        this.quit = quit;
    }

    public Object execute(QmpCommand cmd) {
        try {
            return switch (cmd) {
                case QmpCommand.QmpCapabilities c -> Map.of();
                case QmpCommand.QueryCommands c -> {
                    List<Map<String, Object>> l = new ArrayList<>();
                    for (String name : QmpSchema.commandNames()) {
                        l.add(Map.of("name", name));
                    }
                    yield l;
                }
                case QmpCommand.QueryVersion c -> QmpSchema.versionInfo();
                case QmpCommand.QueryStatus c -> {
                    RunState s = vm.runState();
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("running", s.isRunning());
                    m.put("status", s.qmpName);
                    yield m;
                }
                case QmpCommand.Stop c -> {
                    vm.stop();
                    yield Map.of();
                }
                case QmpCommand.Cont c -> {
                    vm.cont();
                    yield Map.of();
                }
                case QmpCommand.Quit c -> Map.of(); // the process ends in afterReply, once the reply is queued
                case QmpCommand.Migrate c -> {
                    migration.migrate(c.uri());
                    yield Map.of();
                }
                case QmpCommand.MigrateIncoming c -> {
                    migration.startIncoming(c.uri(), true);
                    yield Map.of();
                }
                case QmpCommand.MigrateCancel c -> {
                    migration.cancel();
                    yield Map.of();
                }
                case QmpCommand.MigrateSetCapabilities c -> {
                    List<Map.Entry<Capability, Boolean>> caps = new ArrayList<>();
                    for (Map.Entry<String, Boolean> e : c.capabilities()) {
                        Capability cap = Capability.fromQmpName(e.getKey());
                        if (cap == null) {
                            throw QmpError.generic("Parameter 'capability' does not accept value '" + e.getKey() + "'");
                        }
                        caps.add(Map.entry(cap, e.getValue()));
                    }
                    migration.setCapabilities(caps);
                    yield Map.of();
                }
                case QmpCommand.MigrateSetParameters c -> {
                    migration.setParameters(c.parameters());
                    yield Map.of();
                }
                case QmpCommand.QueryMigrate c -> migration.queryMigrate();
                case QmpCommand.QueryMigrateCapabilities c -> migration.queryCapabilities();
                case QmpCommand.QueryMigrateParameters c -> migration.config().parametersAsMap();
                case QmpCommand.ObjectAdd c -> {
                    vm.objectAdd(c.qomType(), c.id(), c.props());
                    yield Map.of();
                }
                case QmpCommand.QomSet c -> {
                    vm.qomSet(c.path(), c.property(), c.value());
                    yield Map.of();
                }
                case QmpCommand.QomGet c -> vm.qomGet(c.path(), c.property());
                case QmpCommand.ObjectDel c -> {
                    vm.objectDel(c.id());
                    yield Map.of();
                }
                case QmpCommand.XJmigrateQueryDigest c -> digests();
                case QmpCommand.XJmigrateQueryJitWarmUp c -> vm.jitWarmUp().info();
                case QmpCommand.XJmigrateQueryWorkload c -> workload();
            };
        } catch (MigrationException e) {
            throw QmpError.of(e);
        }
    }

    /**
     * The digests the last migrations recorded, plus {@code current} and {@code current-devices}:
     * the RAM and each reporting device's state as they are now (read with the workload's vCPUs
     * parked, so a running guest gives a consistent picture). A source whose migration failed
     * must show the same as before it started, when its guest and devices wrote nothing in between.
     */
    private Map<String, Object> digests() {
        Map<String, Object> m = new LinkedHashMap<>(migration.digests());
        Workload w = vm.workload();
        synchronized (vm) {
            boolean pause = w != null && vm.runState().isRunning();
            if (pause) {
                w.pause();
            }
            try {
                m.put("current", vm.ramDigest());
                m.put("current-devices", vm.deviceDigests());
            } finally {
                if (pause) {
                    w.resume();
                }
            }
        }
        return m;
    }

    /**
     * Runs what must follow a command's reply rather than precede it: {@code quit} ends the
     * process only once its {@code {"return": {}}} is queued, so the server's close sends it.
     */
    public void afterReply(QmpCommand cmd) {
        if (cmd instanceof QmpCommand.Quit) {
            quit.run();
        }
    }

    private Map<String, Object> workload() {
        Map<String, Object> m = new LinkedHashMap<>();
        Workload w = vm.workload();
        m.put("enabled", w != null);
        if (w == null) {
            return m;
        }
        m.put("spec", w.spec().toString());
        m.put("pages-touched", w.pagesTouched());
        List<WorkloadChecker.Result> results;
        synchronized (vm) {
            boolean running = vm.runState().isRunning();
            if (running) {
                w.pause();
            }
            try {
                results = w.check();
            } finally {
                if (running) {
                    w.resume();
                }
            }
        }
        boolean ok = results.stream().allMatch(WorkloadChecker.Result::ok);
        m.put("ok", ok);
        List<Map<String, Object>> vcpus = new ArrayList<>();
        for (WorkloadChecker.Result r : results) {
            Map<String, Object> v = new LinkedHashMap<>();
            v.put("ok", r.ok());
            v.put("cursor", r.cursor());
            v.put("value", r.value());
            if (r.error() != null) {
                v.put("error", r.error());
            }
            vcpus.add(v);
        }
        m.put("vcpus", vcpus);
        WorkloadChecker.Result resume = vm.incomingWorkloadCheck();
        if (resume != null) {
            m.put("resume-check-ok", resume.ok());
            if (resume.error() != null) {
                m.put("resume-check-error", resume.error());
            }
        }
        return m;
    }
}
