package io.jmigrate.migration;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.nio.file.Path;

/**
 * A migration URI: {@code tcp:HOST:PORT}, {@code unix:PATH} or {@code file:PATH}. Parsed and
 * checked before any thread starts; a bad URI is a CONFIG error naming what was expected.
 */
public sealed interface MigrationUri {
    record Tcp(String host, int port) implements MigrationUri {
        public Tcp {
            if (port < 0 || port > 65535) {
                throw new MigrationException(Category.CONFIG, "tcp port " + port + " out of range 0..65535");
            }
        }

        @Override
        public String toString() {
            return "tcp:" + host + ":" + port;
        }
    }

    record Unix(Path path) implements MigrationUri {
        @Override
        public String toString() {
            return "unix:" + path;
        }
    }

    record File(Path path) implements MigrationUri {
        @Override
        public String toString() {
            return "file:" + path;
        }
    }

    static MigrationUri parse(String uri) {
        if (uri == null || uri.isEmpty()) {
            throw new MigrationException(Category.CONFIG, "empty migration URI");
        }
        if (uri.startsWith("tcp:")) {
            String rest = uri.substring(4);
            int colon = rest.lastIndexOf(':');
            if (colon < 0) {
                throw new MigrationException(Category.CONFIG, "tcp URI '" + uri + "' needs tcp:HOST:PORT");
            }
            String host = rest.substring(0, colon);
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
            try {
                return new Tcp(host.isEmpty() ? "0.0.0.0" : host, Integer.parseInt(rest.substring(colon + 1)));
            } catch (NumberFormatException e) {
                throw new MigrationException(Category.CONFIG, "tcp URI '" + uri + "' has a bad port");
            }
        }
        if (uri.startsWith("unix:")) {
            String p = uri.substring(5);
            if (p.isEmpty()) {
                throw new MigrationException(Category.CONFIG, "unix URI needs a path: unix:PATH");
            }
            return new Unix(Path.of(p));
        }
        if (uri.startsWith("file:")) {
            String p = uri.substring(5);
            if (p.contains(",")) {
                throw new MigrationException(Category.CONFIG, "file URI options (" + p.substring(p.indexOf(',') + 1)
                        + ") are not supported: use file:PATH");
            }
            if (p.isEmpty()) {
                throw new MigrationException(Category.CONFIG, "file URI needs a path: file:PATH");
            }
            return new File(Path.of(p));
        }
        throw new MigrationException(Category.CONFIG, "unsupported migration URI '" + uri
                + "': expected tcp:HOST:PORT, unix:PATH or file:PATH");
    }
}
