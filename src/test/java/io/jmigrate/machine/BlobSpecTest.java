package io.jmigrate.machine;

import io.jmigrate.common.MigrationException;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class BlobSpecTest {
    @Test
    void mutateIsOnByDefaultAndCanBeSwitchedOff() {
        assertThat(BlobSpec.parse("blob,id=b0,size=64K").mutate()).isTrue();
        assertThat(BlobSpec.parse("blob,id=b0,size=64K,mutate=on").mutate()).isTrue();
        assertThat(BlobSpec.parse("blob,id=b0,size=64K,mutate=off").mutate()).isFalse();
        assertThatThrownBy(() -> BlobSpec.parse("blob,id=b0,size=64K,mutate=maybe"))
                .isInstanceOf(MigrationException.class).hasMessage("--device blob,id=b0: mutate must be on or off");
    }

    @Test
    void aRunningBlobWithMutateOffKeepsItsState() {
        BlobDevice d = new BlobDevice(BlobSpec.parse("blob,id=b0,size=64K,seed=7,mutate=off"));
        try {
            String filled = d.stateDigest();
            d.runStateChanged(true);
            assertThat(d.mutations()).isZero();
            assertThat(d.stateDigest()).isEqualTo(filled);
        } finally {
            d.close();
        }
    }
}
