package io.jmigrate.memory;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.assertj.core.api.Assertions.assertThat;

class ZeroPagesTest {
    private static final int PS = 4096;
    private static final MemorySegment ZERO = MemorySegment.ofArray(new byte[PS]);

    @Test
    void aPageOfZeroBytesIsZero() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mem = arena.allocate(3L * PS);
            mem.asSlice(0, PS).fill((byte) 1);
            mem.asSlice(2L * PS, PS).fill((byte) 1);
            assertThat(ZeroPages.isZero(mem, PS, PS, ZERO)).isTrue();
            assertThat(ZeroPages.isZero(mem, 0, PS, ZERO)).isFalse();
            assertThat(ZeroPages.isZero(mem, 2L * PS, PS, ZERO)).isFalse();
        }
    }

    /** One non-zero byte anywhere, inside or after the first 8, makes the page not zero. */
    @ParameterizedTest
    @ValueSource(ints = {0, 7, 8, 9, 63, 2048, PS - 1})
    void oneNonZeroByteAnywhereIsNotZero(int at) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mem = arena.allocate(2L * PS);
            mem.set(ValueLayout.JAVA_BYTE, PS + at, (byte) 0x80);
            assertThat(ZeroPages.isZero(mem, PS, PS, ZERO)).isFalse();
            assertThat(ZeroPages.isZero(mem, 0, PS, ZERO)).isTrue();
        }
    }
}
