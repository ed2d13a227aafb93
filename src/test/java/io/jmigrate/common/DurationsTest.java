package io.jmigrate.common;

import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;

class DurationsTest {
    @Test
    void readsLikePeopleWrite() {
        assertThat(Durations.human(Duration.ofMillis(250))).isEqualTo("250 ms");
        assertThat(Durations.human(Duration.ofMillis(1500))).isEqualTo("1.5 s");
        assertThat(Durations.human(Duration.ofSeconds(5))).isEqualTo("5 s");
        assertThat(Durations.human(Duration.ofSeconds(30))).isEqualTo("30 s");
        assertThat(Durations.human(Duration.ofSeconds(150))).isEqualTo("2 min 30 s");
        assertThat(Durations.human(Duration.ofMinutes(10))).isEqualTo("10 min");
    }
}
