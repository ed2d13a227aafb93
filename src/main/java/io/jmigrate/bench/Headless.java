package io.jmigrate.bench;

/** Charts are drawn without a display: sets {@code java.awt.headless=true} unless something chose already. */
final class Headless {
    private Headless() {
    }

    static void ensure() {
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
    }
}
