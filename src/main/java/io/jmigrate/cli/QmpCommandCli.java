package io.jmigrate.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import io.jmigrate.qmp.QmpClient;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code jmigrate qmp QMP COMMAND [ARGUMENTS-JSON]}: a tiny QMP client: connects, negotiates,
 * executes one command and prints the raw reply ({@code {"return": …}} or {@code {"error": …}}).
 */
@Command(name = "qmp", mixinStandardHelpOptions = true,
        description = "Execute one QMP command on a VM and print the JSON reply.")
public final class QmpCommandCli implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Parameters(index = "0", paramLabel = "QMP", description = "unix:PATH or tcp:HOST:PORT of the VM")
    String qmp;

    @Parameters(index = "1", paramLabel = "COMMAND", description = "e.g. query-migrate")
    String command;

    @Parameters(index = "2", arity = "0..1", paramLabel = "ARGUMENTS",
            description = "the arguments object as JSON, e.g. '{\"uri\": \"tcp:127.0.0.1:4444\"}'")
    String arguments;

    @Override
    public Integer call() {
        Map<String, Object> args = null;
        if (arguments != null) {
            try {
                JsonNode n = JSON.readTree(arguments);
                if (!n.isObject()) {
                    throw new MigrationException(Category.CONFIG, "ARGUMENTS must be a JSON object, got: " + arguments);
                }
                @SuppressWarnings("unchecked") Map<String, Object> m = JSON.convertValue(n, Map.class);
                args = m;
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new MigrationException(Category.CONFIG, "ARGUMENTS is not valid JSON: " + e.getOriginalMessage());
            }
        }
        try (QmpClient c = QmpClient.connect(qmp)) {
            JsonNode reply = c.call(command, args);
            if (reply instanceof com.fasterxml.jackson.databind.node.ObjectNode o) {
                o.remove("id");
            }
            System.out.println(reply.toPrettyString());
            return reply.has("error") ? 1 : 0;
        }
    }
}
