package io.jmigrate.bench;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.SplittableRandom;

/**
 * A process for {@link LinkEmulationTest}, started inside one of the namespaces:
 * {@code listen ADDR} prints "listening PORT", accepts one connection, reads a length-prefixed
 * payload and prints "received N SHA256"; {@code send ADDR PORT N SEED} sends N seeded bytes and
 * prints "sent N SHA256".
 */
public final class LinkProbe {
    private LinkProbe() {
    }

    public static void main(String[] args) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        byte[] buf = new byte[1 << 16];
        if (args[0].equals("listen")) {
            try (ServerSocket ss = new ServerSocket()) {
                ss.bind(new InetSocketAddress(InetAddress.getByName(args[1]), 0));
                System.out.println("listening " + ss.getLocalPort());
                System.out.flush();
                try (Socket s = ss.accept(); InputStream in = s.getInputStream()) {
                    long n = new DataInputStream(in).readLong();
                    long got = 0;
                    while (got < n) {
                        int r = in.read(buf, 0, (int) Math.min(buf.length, n - got));
                        if (r < 0) {
                            throw new IllegalStateException("EOF after " + got + " of " + n + " bytes");
                        }
                        sha.update(buf, 0, r);
                        got += r;
                    }
                    System.out.println("received " + got + " " + HexFormat.of().formatHex(sha.digest()));
                }
            }
        } else {
            long n = Long.parseLong(args[3]);
            SplittableRandom rnd = new SplittableRandom(Long.parseLong(args[4]));
            try (Socket s = new Socket(InetAddress.getByName(args[1]), Integer.parseInt(args[2]));
                 OutputStream out = s.getOutputStream()) {
                new DataOutputStream(out).writeLong(n);
                long sent = 0;
                while (sent < n) {
                    int len = (int) Math.min(buf.length, n - sent);
                    for (int i = 0; i < len; i++) {
                        buf[i] = (byte) rnd.nextInt();
                    }
                    sha.update(buf, 0, len);
                    out.write(buf, 0, len);
                    sent += len;
                }
                out.flush();
                s.shutdownOutput();
                // wait for the peer to close: every byte was read
                s.getInputStream().read();
            }
            System.out.println("sent " + n + " " + HexFormat.of().formatHex(sha.digest()));
        }
    }
}
