package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The objects of one VM process that TLS migration names ({@code --object} and QMP
 * {@code object-add}/{@code object-del}), by id; thread-safe. A migration resolves its
 * {@code tls-creds} and {@code tls-authz} here once, when it starts, and keeps what it got:
 * deleting an object later does not affect a migration in progress.
 */
public final class TlsObjects {
    /** At most this many objects. */
    public static final int MAX_OBJECTS = 64;

    private final Map<String, TlsObject> byId = new LinkedHashMap<>();

    /** {@code object-add}: QEMU's message for a duplicate id. */
    public synchronized void add(TlsObject o) {
        if (byId.containsKey(o.id())) {
            throw new MigrationException(Category.CONFIG, "attempt to add duplicate property '" + o.id()
                    + "' to object (type 'container')");
        }
        if (byId.size() >= MAX_OBJECTS) {
            throw new MigrationException(Category.LIMIT, "at most " + MAX_OBJECTS + " objects may exist");
        }
        byId.put(o.id(), o);
    }

    /** {@code object-del}. */
    public synchronized void delete(String id) {
        if (byId.remove(id) == null) {
            throw new MigrationException(Category.CONFIG, "object '" + id + "' not found");
        }
    }

    public synchronized TlsObject get(String id) {
        return byId.get(id);
    }

    public synchronized List<TlsObject> list() {
        return new ArrayList<>(byId.values());
    }

    /**
     * The credentials {@code tls-creds} names.
     *
     * @throws MigrationException CONFIG if there is no such object or it is not tls-creds-x509
     */
    public TlsCredsX509 creds(String id) {
        TlsObject o = get(id);
        if (o == null) {
            throw new MigrationException(Category.CONFIG, "No TLS credentials with id '" + id + "' (tls-creds; "
                    + "create them with --object tls-creds-x509,id=" + id + ",dir=DIR,endpoint=... or object-add)");
        }
        if (!(o instanceof TlsCredsX509 c)) {
            throw new MigrationException(Category.CONFIG, "Object with id '" + id + "' is a " + o.type()
                    + ", not TLS credentials (tls-creds)");
        }
        return c;
    }

    /** The authorization {@code tls-authz} names. */
    public TlsAuthz authz(String id) {
        TlsObject o = get(id);
        if (o == null) {
            throw new MigrationException(Category.CONFIG, "No authorization object with id '" + id + "' (tls-authz; "
                    + "create it with --object authz-simple,id=" + id + ",identity=DN or object-add)");
        }
        if (!(o instanceof TlsAuthz a)) {
            throw new MigrationException(Category.CONFIG, "Object with id '" + id + "' is a " + o.type()
                    + ", not an authz-simple or authz-list (tls-authz)");
        }
        return a;
    }
}
