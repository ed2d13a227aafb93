package io.jmigrate.memory;

import io.jmigrate.common.MigrationException;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class MemoryBackendTest {
    @Test
    void hugePagesFollowPreallocUnlessGiven() {
        assertThat(MemoryBackend.parse("ram").thp()).isEqualTo(MemoryBackend.defaultThp(false));
        assertThat(MemoryBackend.parse("ram,prealloc=on").thp()).isEqualTo(MemoryBackend.defaultThp(true));
        assertThat(MemoryBackend.defaultThp(true)).isTrue();
        assertThat(MemoryBackend.defaultThp(false)).isFalse();
        assertThat(MemoryBackend.parse("ram,prealloc=on,thp=off").thp()).isFalse();
        assertThat(MemoryBackend.parse("ram,thp=off,prealloc=on").thp()).isFalse();
        assertThat(MemoryBackend.parse("ram,thp=on").thp()).isTrue();
        assertThat(MemoryBackend.parse("memfd,prealloc=off").thp()).isFalse();
    }

    @Test
    void describeSaysWhatWasChosenAndParsesBackToTheSame() {
        for (String spec : new String[] {"ram", "ram,prealloc=on", "ram,prealloc=on,thp=off", "ram,thp=on",
                "memfd,share=off,prealloc=on", "file=/dev/shm/x,share=on,thp=on"}) {
            MemoryBackend b = MemoryBackend.parse(spec);
            assertThat(MemoryBackend.parse(b.describe())).as(spec).isEqualTo(b);
        }
        assertThat(MemoryBackend.parse("file=/dev/shm/x,share=on,thp=on").path()).isEqualTo(Path.of("/dev/shm/x"));
    }

    @Test
    void badSpecsNameWhatIsWrong() {
        assertThatThrownBy(() -> MemoryBackend.parse("ram,thp=maybe")).isInstanceOf(MigrationException.class)
                .hasMessageContaining("'thp=maybe' must be on or off");
        assertThatThrownBy(() -> MemoryBackend.parse("ram,share=on")).hasMessageContaining("share=on needs a file");
        assertThatThrownBy(() -> MemoryBackend.parse("disk")).hasMessageContaining("must start with ram");
        assertThatThrownBy(() -> MemoryBackend.parse("ram,huge=on")).hasMessageContaining("unknown option 'huge=on'");
    }
}
