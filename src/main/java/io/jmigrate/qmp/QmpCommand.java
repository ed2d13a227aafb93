package io.jmigrate.qmp;

import java.util.List;
import java.util.Map;

/**
 * Every QMP command jmigrate accepts, decoded and type-checked ({@link QmpSchema} builds them
 * from JSON). The dispatcher switches over this sealed family without a default branch, so a
 * new command does not compile until it is handled.
 */
public sealed interface QmpCommand {
    record QmpCapabilities() implements QmpCommand { }

    record QueryCommands() implements QmpCommand { }

    record QueryVersion() implements QmpCommand { }

    record QueryStatus() implements QmpCommand { }

    record Stop() implements QmpCommand { }

    record Cont() implements QmpCommand { }

    record Quit() implements QmpCommand { }

    record Migrate(String uri) implements QmpCommand { }

    record MigrateIncoming(String uri) implements QmpCommand { }

    record MigrateCancel() implements QmpCommand { }

    /** @param capabilities capability name → state, in the order given */
    record MigrateSetCapabilities(List<Map.Entry<String, Boolean>> capabilities) implements QmpCommand { }

    /** @param parameters QMP parameter name → Long or String */
    record MigrateSetParameters(Map<String, Object> parameters) implements QmpCommand { }

    record QueryMigrate() implements QmpCommand { }

    record QueryMigrateCapabilities() implements QmpCommand { }

    record QueryMigrateParameters() implements QmpCommand { }

    record XJmigrateQueryDigest() implements QmpCommand { }

    record XJmigrateQueryWorkload() implements QmpCommand { }

    record XJmigrateQueryJitWarmUp() implements QmpCommand { }

    /**
     * @param qomType tls-creds-x509, authz-simple or authz-list
     * @param props   the other arguments in keyval form (lists as {@code rules.N.key}, booleans on/off)
     */
    record ObjectAdd(String qomType, String id, Map<String, String> props) implements QmpCommand { }

    record ObjectDel(String id) implements QmpCommand { }

    /** @param value the new value in text form (on/off for booleans) */
    record QomSet(String path, String property, String value) implements QmpCommand { }

    record QomGet(String path, String property) implements QmpCommand { }
}
