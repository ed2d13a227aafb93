package io.jmigrate.multifd;

/**
 * Where the destination's receive threads put RAM pages: finds a RAMBlock by the idstr named in
 * a packet. Implemented by the RAM loader (or a test); multifd never imports {@code ram}.
 * Called from the {@code mig/dst/recv_N} threads, so implementations must be thread safe
 * (a map filled before the channels start is).
 */
@FunctionalInterface
public interface PageSink {
    /** The block named {@code idstr}, or null if the destination has no such block. */
    MultifdBlock block(String idstr);
}
