package io.jmigrate.bench;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What {@code --link RATE[,delay=D]} asks for: a link of {@code bitsPerSecond} with a one-way
 * {@code delay} in each direction (so the round trip is twice it).
 *
 * <p>RATE is a number with tc's units: {@code bit}, {@code kbit}, {@code mbit}, {@code gbit}
 * (powers of 1000, as network rates are quoted: {@code 25gbit} = 25·10^9 bit/s). D is a number
 * with {@code us}, {@code ms} or {@code s}. Examples: {@code 25gbit}, {@code 10gbit,delay=1ms},
 * {@code 100gbit,delay=50us}.
 *
 * @param bitsPerSecond the rate, in bits per second (at least 1 Mbit/s, at most 400 Gbit/s)
 * @param delay         one-way delay added in each direction; zero for none
 */
public record LinkSpec(long bitsPerSecond, Duration delay) {
    public static final long MIN_RATE = 1_000_000L;
    public static final long MAX_RATE = 400_000_000_000L;
    private static final Pattern RATE = Pattern.compile("(\\d+(?:\\.\\d+)?)(bit|kbit|mbit|gbit)");
    private static final Pattern DELAY = Pattern.compile("(\\d+(?:\\.\\d+)?)(us|ms|s)");

    public LinkSpec {
        if (bitsPerSecond < MIN_RATE || bitsPerSecond > MAX_RATE) {
            throw new MigrationException(Category.CONFIG, "--link rate " + bitsPerSecond + " bit/s is outside "
                    + "1mbit..400gbit");
        }
        if (delay.isNegative() || delay.compareTo(Duration.ofSeconds(1)) > 0) {
            throw new MigrationException(Category.CONFIG, "--link delay " + delay.toNanos() / 1000 + " us is "
                    + "outside 0..1s");
        }
    }

    /** Parses {@code 25gbit} or {@code 10gbit,delay=1ms}. */
    public static LinkSpec parse(String text) {
        String[] parts = text.trim().toLowerCase(Locale.ROOT).split(",");
        Matcher r = RATE.matcher(parts[0].trim());
        if (!r.matches()) {
            throw new MigrationException(Category.CONFIG, "--link '" + text + "': the rate '" + parts[0]
                    + "' must be a number with bit, kbit, mbit or gbit, e.g. 25gbit");
        }
        double mult = switch (r.group(2)) {
            case "bit" -> 1;
            case "kbit" -> 1e3;
            case "mbit" -> 1e6;
            default -> 1e9;
        };
        long rate = Math.round(Double.parseDouble(r.group(1)) * mult);
        Duration delay = Duration.ZERO;
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i].trim();
            if (!p.startsWith("delay=")) {
                throw new MigrationException(Category.CONFIG, "--link '" + text + "': unknown option '" + p
                        + "', expected delay=D (e.g. delay=1ms)");
            }
            Matcher d = DELAY.matcher(p.substring(6));
            if (!d.matches()) {
                throw new MigrationException(Category.CONFIG, "--link '" + text + "': the delay '" + p.substring(6)
                        + "' must be a number with us, ms or s, e.g. 1ms");
            }
            double unitNs = switch (d.group(2)) {
                case "us" -> 1e3;
                case "ms" -> 1e6;
                default -> 1e9;
            };
            delay = Duration.ofNanos(Math.round(Double.parseDouble(d.group(1)) * unitNs));
        }
        return new LinkSpec(rate, delay);
    }

    /** Bytes per second. */
    public double bytesPerSecond() {
        return bitsPerSecond / 8.0;
    }

    /** The rate as tc takes it, in bit/s ({@code 25000000000bit}). */
    String tcRate() {
        return bitsPerSecond + "bit";
    }

    /** The delay as tc takes it ({@code 1000us}). */
    String tcDelay() {
        return delay.toNanos() / 1000 + "us";
    }

    /** e.g. "25 Gbit/s" or "10 Gbit/s, 1 ms delay each way". */
    public String describe() {
        String rate = bitsPerSecond % 1_000_000_000L == 0 ? bitsPerSecond / 1_000_000_000L + " Gbit/s"
                : bitsPerSecond % 1_000_000L == 0 ? bitsPerSecond / 1_000_000L + " Mbit/s"
                : String.format(Locale.ROOT, "%.3f Gbit/s", bitsPerSecond / 1e9);
        if (delay.isZero()) {
            return rate;
        }
        long us = delay.toNanos() / 1000;
        return rate + ", " + (us % 1000 == 0 ? us / 1000 + " ms" : us + " us") + " delay each way";
    }
}
