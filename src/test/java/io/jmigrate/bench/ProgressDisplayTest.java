package io.jmigrate.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

class ProgressDisplayTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final long S = 1_000_000_000L;

    static JsonNode q(String json) throws Exception {
        return JSON.readTree(json);
    }

    static final String ACTIVE = """
            {"status":"active","expected-downtime":38,"ram":{"total":1073741824,"remaining":536870912,"mbps":4210.5}}""";
    static final String DEVICE = """
            {"status":"device","ram":{"total":1073741824,"remaining":0,"mbps":9000},
             "x-jmigrate-device-state":{"devices":[{"id":"vf0","bytes":1048576},{"id":"vf1","bytes":2097152}]}}""";
    static final String DONE = """
            {"status":"completed","downtime":212,"ram":{"total":1073741824,"remaining":4096,"mbps":8000}}""";

    @Test
    void readsQueryMigrate() throws Exception {
        Progress a = Progress.of(q(ACTIVE));
        assertThat(a.phase()).isEqualTo("active");
        assertThat(a.ramPercent()).isEqualTo(50.0);
        assertThat(a.expectedDowntimeMs()).isEqualTo(38);
        assertThat(a.deviceStateBytes()).isZero();
        assertThat(Progress.of(q(DEVICE)).deviceStateBytes()).isEqualTo(3L << 20);
        assertThat(Progress.of(q("""
                {"status":"device","x-jmigrate-device-state":{"devices":{"vf0":{"bytes":5}},"phase":"save"}}""")))
                .satisfies(p -> {
                    assertThat(p.deviceStateBytes()).isEqualTo(5);
                    assertThat(p.phase()).isEqualTo("device/save");
                });
        Progress d = Progress.of(q(DONE));
        assertThat(d.finished()).isTrue();
        assertThat(d.ramPercent()).isEqualTo(100.0);
    }

    @Test
    void terminalRedrawsOneLineWithABarAndEndsIt() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        ProgressDisplay p = new ProgressDisplay(new PrintStream(buf, true, StandardCharsets.UTF_8), true, S, "a→b");
        p.update(Progress.of(q(ACTIVE)), 0);
        p.update(Progress.of(q(DONE)), 1);
        String s = buf.toString(StandardCharsets.UTF_8);
        assertThat(s).startsWith("\ra→b [############............]  active  RAM 50% (512/1024 MiB)  dev 0 B  "
                + "4.21 Gbit/s  exp. downtime 38 ms");
        assertThat(s).contains("\ra→b [########################]  completed  RAM 100%").endsWith("downtime 212 ms"
                + System.lineSeparator());
        assertThat(s.chars().filter(c -> c == '\n').count()).isEqualTo(1);
    }

    @Test
    void plainLinesOnPhaseChangeAndAtMostOncePerInterval() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        ProgressDisplay p = new ProgressDisplay(new PrintStream(buf, true, StandardCharsets.UTF_8), false, S, "");
        p.update(Progress.of(q(ACTIVE)), 0);          // first: printed
        p.update(Progress.of(q(ACTIVE)), S / 2);      // same phase within 1 s: not
        p.update(Progress.of(q(ACTIVE)), S);          // 1 s later: printed
        p.update(Progress.of(q(DEVICE)), S + 1);      // phase change: printed
        p.update(Progress.of(q(DONE)), S + 2);        // end: printed
        String[] lines = buf.toString(StandardCharsets.UTF_8).split("\\R");
        assertThat(lines).hasSize(4);
        assertThat(lines[0]).isEqualTo("active  RAM 50% (512/1024 MiB)  dev 0 B  4.21 Gbit/s  exp. downtime 38 ms");
        assertThat(lines[2]).contains("device", "dev 3.0 MiB", "9.00 Gbit/s");
        assertThat(lines[3]).contains("completed", "downtime 212 ms");
        assertThat(buf.toString(StandardCharsets.UTF_8)).doesNotContain("\r");
    }
}
