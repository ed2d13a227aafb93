package io.jmigrate.vfio;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jmigrate.savevm.SectionType;
import io.jmigrate.stream.QemuFileReader;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Decodes the main-channel bodies of one VFIO device's sections (PROTOCOL.md §4.1) for
 * {@code jmigrate analyze}, on the tag walk the loader shares ({@link VfioMarkerWalk}): the be64 markers, the DEV_DATA_STATE chunk sizes (the opaque device
 * data is skipped), and the config VMState. One decoder per device accumulates over all its
 * sections; {@link #summary()} is its entry in the analyzer's state output.
 *
 * <pre>
 * {"sections": {"START": 1, "PART": 40, "END": 1, "FULL": 1},
 *  "markers": {"DEV_SETUP_STATE": 1, "DEV_DATA_STATE": 60, "END_OF_STATE": 42, "DEV_INIT_DATA_SENT": 1, ...},
 *  "precopy data": {"chunks": 40, "bytes": 41943040},
 *  "stop-copy data": {"chunks": 24, "bytes": 25165880},
 *  "config": {"vmsd": "VFIOPCIDevice", "version": 1, "config_size": 4096},
 *  "transfer": "main"}          (or "multifd": END holds no data and FULL no config)
 * </pre>
 */
public final class VfioSectionDecoder {
    private final String idstr;
    private final Map<String, Long> sections = new LinkedHashMap<>();
    private final Map<String, Long> markers = new LinkedHashMap<>();
    private long precopyChunks;
    private long precopyBytes;
    private long stopCopyChunks;
    private long stopCopyBytes;
    private Integer configSize;
    private boolean loadReady;
    private boolean sawEnd;

    public VfioSectionDecoder(String idstr) {
        this.idstr = idstr;
    }

    /** True for VFIO section idstrs: {@code <id>/vfio} or {@code vfio}. */
    public static boolean isVfio(String idstr) {
        return idstr.equals("vfio") || idstr.endsWith("/vfio");
    }

    public static String markerName(long tag) {
        return VfioMarkerWalk.markerName(tag);
    }

    /** Reads one section body of {@code type}, up to (not including) its footer. */
    public void section(QemuFileReader r, SectionType type, String where) {
        sections.merge(type.name(), 1L, Long::sum);
        if (type == SectionType.END) {
            sawEnd = true;
        }
        VfioMarkerWalk.section(r, type, where, new VfioMarkerWalk.Visitor() {
            @Override
            public void marker(long tag, long at) {
                markers.merge(markerName(tag), 1L, Long::sum);
            }

            @Override
            public void data(QemuFileReader r, long size) {
                r.skip(size, where + ": " + size + " bytes of VFIO device data");
                if (type == SectionType.END) {
                    stopCopyChunks++;
                    stopCopyBytes += size;
                } else {
                    precopyChunks++;
                    precopyBytes += size;
                }
            }

            @Override
            public void config(byte[] config, long at) {
                configSize = config.length;
            }

            @Override
            public void loadReady(QemuFileReader r, long at) {
                loadReady = true;
            }
        });
    }

    public ObjectNode summary() {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        ObjectNode s = o.putObject("sections");
        sections.forEach(s::put);
        ObjectNode m = o.putObject("markers");
        markers.forEach(m::put);
        ObjectNode p = o.putObject("precopy data");
        p.put("chunks", precopyChunks);
        p.put("bytes", precopyBytes);
        ObjectNode sc = o.putObject("stop-copy data");
        sc.put("chunks", stopCopyChunks);
        sc.put("bytes", stopCopyBytes);
        if (configSize != null) {
            ObjectNode c = o.putObject("config");
            c.put("vmsd", VfioConfigVmsd.NAME);
            c.put("version", VfioConfigVmsd.VERSION);
            c.put("config_size", configSize);
        } else if (loadReady) {
            o.put("config", "after iterables (DEV_CONFIG_LOAD_READY), over multifd");
        } else {
            o.put("config", "over multifd (FULL holds END_OF_STATE only)");
        }
        o.put("transfer", configSize != null ? "main" : "multifd");
        return o;
    }

    public String idstr() {
        return idstr;
    }

    /** Whether an END section was seen. */
    public boolean sawEnd() {
        return sawEnd;
    }
}
