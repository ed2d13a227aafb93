package io.jmigrate.machine;

import io.jmigrate.common.EventSink;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class VfioPciDeviceTest {

    @Test
    void deviceOptionAndQomProperties() {
        VfioEmuSpec spec = VfioEmuSpec.parse("vfio-emu,id=vf0,state-size=64K,read-rate=0,"
                + "x-migration-max-queued-buffers-size=8M,migration-events=on");
        try (VfioPciDevice d = new VfioPciDevice(spec, MachineType.JM_10_1, EventSink.NONE)) {
            assertThat(d.idstr()).isEqualTo("vf0/vfio");
            assertThat(d.qomGet("x-migration-multifd-transfer")).isEqualTo("auto");
            assertThat(d.qomGet("x-migration-max-queued-buffers-size")).isEqualTo(8L << 20);
            assertThat(d.qomGet("migration-events")).isEqualTo(true);
            assertThat(d.qomGet("state-size")).isEqualTo(65536L);
            assertThat(d.qomGet("x-device-state")).isEqualTo("running");
            d.qomSet("x-migration-multifd-transfer", "off");
            assertThat(d.qomGet("x-migration-multifd-transfer")).isEqualTo("off");
            assertThatThrownBy(() -> d.qomSet("x-migration-multifd-transfer", "maybe"))
                    .hasMessageContaining("must be on, off or auto");
            assertThatThrownBy(() -> d.qomSet("state-size", "1M")).hasMessageContaining("cannot be changed");
            assertThatThrownBy(() -> d.qomSet("x-device-state", "stop")).hasMessageContaining("read-only");
            assertThatThrownBy(() -> d.qomGet("bogus")).hasMessageContaining("Property 'vfio-emu.bogus' not found");
        }
    }

    @Test
    void jm92SetsTheCompatValuesAndTheCommandLineWins() {
        try (VfioPciDevice d = new VfioPciDevice(VfioEmuSpec.parse("vfio-emu,id=a,state-size=4K"), MachineType.JM_9_2,
                EventSink.NONE);
             VfioPciDevice e = new VfioPciDevice(VfioEmuSpec.parse(
                     "vfio-emu,id=b,state-size=4K,x-migration-multifd-transfer=on"), MachineType.JM_9_2, EventSink.NONE)) {
            assertThat(d.qomGet("x-migration-multifd-transfer")).isEqualTo("off");
            assertThat(d.qomGet("x-migration-load-config-after-iter")).isEqualTo("off");
            assertThat(e.qomGet("x-migration-multifd-transfer")).isEqualTo("on");
        }
    }

    @Test
    void badOptions() {
        assertThatThrownBy(() -> VfioEmuSpec.parse("vfio-emu,state-size=4K")).hasMessageContaining("needs id=NAME");
        assertThatThrownBy(() -> VfioEmuSpec.parse("vfio-emu,id=x,colour=red")).hasMessageContaining("unknown property 'colour'");
        assertThatThrownBy(() -> VfioEmuSpec.parse("vfio-emu,id=x,x-migration-multifd-transfer=sometimes"))
                .hasMessageContaining("must be on, off or auto");
    }
}
