package io.jmigrate.bench;

import java.util.Arrays;
import java.util.Collection;

/**
 * The order statistics the downtime benchmark reports, as QEMU's table does (25th percentile of
 * N back-and-forth migrations), plus median and range.
 *
 * <p>Percentiles interpolate linearly between closest ranks (Hyndman and Fan's type 7, the
 * default of R, NumPy and spreadsheets): for sorted values v[0..n-1], the p-th percentile is at
 * rank h = (n−1)·p, between v[⌊h⌋] and v[⌈h⌉]. With n = 1 every statistic is that value.
 */
public record Percentiles(int n, double p25, double median, double min, double max) {
    public static Percentiles of(Collection<? extends Number> values) {
        if (values.isEmpty()) {
            throw new IllegalArgumentException("no values");
        }
        double[] v = values.stream().mapToDouble(Number::doubleValue).toArray();
        Arrays.sort(v);
        return new Percentiles(v.length, at(v, 0.25), at(v, 0.5), v[0], v[v.length - 1]);
    }

    /** The p-th quantile (0..1) of sorted {@code v}, type 7. */
    static double at(double[] v, double p) {
        double h = (v.length - 1) * p;
        int lo = (int) Math.floor(h);
        int hi = (int) Math.ceil(h);
        return v[lo] + (h - lo) * (v[hi] - v[lo]);
    }
}
