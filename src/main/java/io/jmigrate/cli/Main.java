package io.jmigrate.cli;

import io.jmigrate.qmp.QmpSchema;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code jmigrate} command: wiring and presentation only. */
@Command(name = "jmigrate", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Live migration of virtual machines, wire-compatible with QEMU.",
        subcommands = {CommandLine.HelpCommand.class, AnalyzeCommand.class, VmCommand.class, MigrateCommand.class,
            InfoCommand.class, QmpCommandCli.class, BenchCommand.class, DemoCommand.class, TlsCommand.class,
            AotTrainCommand.class})
public final class Main implements Runnable {

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    /** Builds the command line with every subcommand registered. */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        // Errors are for people: a MigrationException prints its message, not a stack trace.
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            if (ex instanceof io.jmigrate.common.MigrationException) {
                cmd.getErr().println("jmigrate " + cmd.getCommandName() + ": " + ex.getMessage());
                return 1;
            }
            throw ex;
        });
        return cl;
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"jmigrate " + QmpSchema.jmigrateVersion() + " (Java "
                    + Runtime.version() + ")"};
        }
    }
}
