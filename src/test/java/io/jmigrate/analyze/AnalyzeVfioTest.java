package io.jmigrate.analyze;

import com.fasterxml.jackson.databind.JsonNode;
import io.jmigrate.savevm.SaveStateRegistry;
import io.jmigrate.savevm.SaveVmDriver;
import io.jmigrate.savevm.SaveVmHandlers;
import io.jmigrate.stream.QemuFileWriter;
import io.jmigrate.vfio.EmulatedVf;
import io.jmigrate.vfio.EmulatedVfConfig;
import io.jmigrate.vfio.VfioMigration;
import io.jmigrate.vfio.VfioProperties;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/** {@code jmigrate analyze} decodes VFIO sections: markers, data sizes, config (legacy and multifd bodies). */
class AnalyzeVfioTest {
    @TempDir
    Path dir;

    private Path save(boolean multifd, boolean ack) throws Exception {
        try (EmulatedVf vf = new EmulatedVf(EmulatedVfConfig.parse("vf0", Map.of("state-size", "2M",
                "precopy-size", "1M", "read-rate", "0", "config-size", "256", "dirty-rate", "0")))) {
            VfioMigration m = new VfioMigration("vf0", vf, vf, new VfioProperties(), null);
            SaveStateRegistry<SaveVmHandlers.Save> reg = new SaveStateRegistry<>();
            SaveVmHandlers.Save h = m.saveHandlers(new VfioMigration.Options(multifd, true, ack, null));
            reg.register(m.idstr(), 0, VfioMigration.VERSION, h);
            SaveVmDriver d = new SaveVmDriver(reg.entries(), null, 4096);
            Path f = dir.resolve("vfio-" + multifd + ".bin");
            try (OutputStream out = Files.newOutputStream(f)) {
                QemuFileWriter w = new QemuFileWriter(out, "file");
                d.writeHeader(w, false);
                d.setup(w);
                for (int i = 0; i < 3; i++) {
                    d.iterate(w, SaveVmHandlers.RateLimit.NONE);
                }
                m.vmStateChanged(false);
                if (multifd) {
                    h.saveCompletePrecopyThread(b -> { }, SaveVmHandlers.AbortFlag.NEVER);
                }
                d.complete(w, true, true);
                w.flush();
            }
            h.saveCleanup();
            return f;
        }
    }

    @Test
    void legacySectionsShowMarkersDataAndConfig() throws Exception {
        AnalysisResult res = StreamAnalyzer.analyze(save(false, true));
        JsonNode vf = res.state().get("vf0/vfio (1)");
        assertThat(vf).as(res.state().toString()).isNotNull();
        assertThat(vf.path("sections").path("START").asLong()).isEqualTo(1);
        assertThat(vf.path("sections").path("PART").asLong()).isEqualTo(3);
        assertThat(vf.path("sections").path("END").asLong()).isEqualTo(1);
        assertThat(vf.path("sections").path("FULL").asLong()).isEqualTo(1);
        assertThat(vf.path("markers").path("DEV_SETUP_STATE").asLong()).isEqualTo(1);
        assertThat(vf.path("markers").path("DEV_CONFIG_STATE").asLong()).isEqualTo(1);
        assertThat(vf.path("markers").path("DEV_INIT_DATA_SENT").asLong()).isEqualTo(1);
        long precopy = vf.path("precopy data").path("bytes").asLong();
        long stopCopy = vf.path("stop-copy data").path("bytes").asLong();
        assertThat(precopy).isEqualTo(24 + (1 << 20) + 16);
        assertThat(precopy + stopCopy).isEqualTo(24 + (2 << 20) + 2 * 16);
        assertThat(vf.path("config").path("vmsd").asText()).isEqualTo("VFIOPCIDevice");
        assertThat(vf.path("config").path("config_size").asInt()).isEqualTo(256);
        assertThat(vf.path("transfer").asText()).isEqualTo("main");
        assertThat(res.vmdesc().json().toString()).contains("\"vf0/vfio\"", "\"data\"");
    }

    @Test
    void multifdSectionsCarryMarkersOnly() throws Exception {
        JsonNode vf = StreamAnalyzer.analyze(save(true, false)).state().get("vf0/vfio (1)");
        assertThat(vf.path("stop-copy data").path("bytes").asLong()).isZero();
        assertThat(vf.path("markers").has("DEV_CONFIG_STATE")).isFalse();
        assertThat(vf.path("markers").has("DEV_INIT_DATA_SENT")).isFalse();
        assertThat(vf.path("transfer").asText()).isEqualTo("multifd");
    }
}
