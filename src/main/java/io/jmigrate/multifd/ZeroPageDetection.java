package io.jmigrate.multifd;

/** The {@code zero-page-detection} parameter (PROTOCOL.md §2.1). */
public enum ZeroPageDetection {
    /** No detection: every page is sent as a normal page. */
    NONE,
    /** The main thread detects zero pages and sends them on the main channel (QEMU &lt; 9.0 behaviour). */
    LEGACY,
    /** The sender threads detect zero pages and send them as offsets without data (the default). */
    MULTIFD
}
