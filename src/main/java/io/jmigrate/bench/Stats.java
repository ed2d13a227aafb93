package io.jmigrate.bench;

import java.util.Arrays;
import java.util.List;

/**
 * Median and range of a handful of runs. With 3 to a few dozen samples these are exact order
 * statistics of the sorted values (no binning).
 */
public record Stats(int n, double median, double min, double max) {
    public static Stats of(List<Double> values) {
        if (values.isEmpty()) {
            throw new IllegalArgumentException("no values");
        }
        double[] v = values.stream().mapToDouble(Double::doubleValue).toArray();
        Arrays.sort(v);
        int n = v.length;
        double median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        return new Stats(n, median, v[0], v[n - 1]);
    }
}
