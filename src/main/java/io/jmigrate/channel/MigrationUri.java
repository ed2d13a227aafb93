package io.jmigrate.channel;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;

/**
 * A migration address as QMP's {@code migrate uri=...} takes it: {@code tcp:HOST:PORT}
 * ({@code tcp:[::1]:PORT} for IPv6), {@code unix:PATH} or {@code file:PATH}. Multifd channels
 * go to exactly the same address as the main channel (PROTOCOL.md §2.2).
 */
public sealed interface MigrationUri {
    /** The text form, parseable by {@link #parse}. */
    String text();

    record Tcp(String host, int port) implements MigrationUri {
        public Tcp {
            if (host == null || host.isEmpty()) {
                throw new IllegalArgumentException("tcp host must not be empty");
            }
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("tcp port must be 0..65535: " + port);
            }
        }

        public InetSocketAddress address() {
            return new InetSocketAddress(host, port);
        }

        @Override
        public String text() {
            return "tcp:" + (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
        }
    }

    record Unix(Path path) implements MigrationUri {
        public UnixDomainSocketAddress address() {
            return UnixDomainSocketAddress.of(path);
        }

        @Override
        public String text() {
            return "unix:" + path;
        }
    }

    record File(Path path) implements MigrationUri {
        @Override
        public String text() {
            return "file:" + path;
        }
    }

    /** The socket address for tcp and unix URIs. */
    default SocketAddress socketAddress() {
        return switch (this) {
            case Tcp t -> t.address();
            case Unix u -> u.address();
            case File f -> throw new MigrationException(Category.CONFIG, "file: URIs have no socket address: " + f.text());
        };
    }

    /**
     * Parses a URI; errors say what was wrong and what is expected.
     *
     * @throws MigrationException CONFIG
     */
    static MigrationUri parse(String uri) {
        if (uri == null || uri.isBlank()) {
            throw bad(uri, "empty migration URI");
        }
        int colon = uri.indexOf(':');
        if (colon < 0) {
            throw bad(uri, "missing transport prefix");
        }
        String scheme = uri.substring(0, colon);
        String rest = uri.substring(colon + 1);
        switch (scheme) {
            case "tcp" -> {
                String host;
                String port;
                if (rest.startsWith("[")) {
                    int end = rest.indexOf(']');
                    if (end < 0 || end + 1 >= rest.length() || rest.charAt(end + 1) != ':') {
                        throw bad(uri, "IPv6 host must be written as [ADDR]:PORT");
                    }
                    host = rest.substring(1, end);
                    port = rest.substring(end + 2);
                } else {
                    int c = rest.lastIndexOf(':');
                    if (c < 0) {
                        throw bad(uri, "tcp needs HOST:PORT");
                    }
                    host = rest.substring(0, c);
                    port = rest.substring(c + 1);
                    if (host.contains(":")) {
                        throw bad(uri, "IPv6 host must be written as [ADDR]:PORT");
                    }
                }
                if (host.isEmpty()) {
                    throw bad(uri, "tcp host is empty");
                }
                int p;
                try {
                    p = Integer.parseInt(port);
                } catch (NumberFormatException e) {
                    throw bad(uri, "tcp port '" + port + "' is not a number");
                }
                if (p < 0 || p > 65535) {
                    throw bad(uri, "tcp port " + p + " is outside 0..65535");
                }
                return new Tcp(host, p);
            }
            case "unix" -> {
                if (rest.isEmpty()) {
                    throw bad(uri, "unix needs a socket path");
                }
                return new Unix(Path.of(rest));
            }
            case "file" -> {
                if (rest.isEmpty()) {
                    throw bad(uri, "file needs a path");
                }
                if (rest.contains(",")) {
                    throw bad(uri, "file options (e.g. offset=) are not supported");
                }
                return new File(Path.of(rest));
            }
            default -> throw bad(uri, "unsupported transport '" + scheme + "'");
        }
    }

    private static MigrationException bad(String uri, String what) {
        return new MigrationException(Category.CONFIG, "invalid migration URI '" + uri + "': " + what
                + " (expected tcp:HOST:PORT, unix:PATH or file:PATH)");
    }
}
