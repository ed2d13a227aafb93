package io.jmigrate.multifd;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.time.Duration;

/**
 * Multifd settings of one migration, validated once before any thread starts.
 *
 * @param channels            multifd-channels, 1..255; both sides must agree
 * @param pageSize            target page size (4096 on x86); fixes the RAM packet length
 * @param compression         multifd-compression
 * @param level               multifd-zlib-level (0..9) or multifd-zstd-level (0..20); ignored for none
 * @param zeroPageDetection   zero-page-detection; MULTIFD makes the sender threads find zero pages
 * @param uuid                16-byte VM UUID put in (source) or expected in (destination) every init packet
 * @param maxDeviceStatePacket largest device-state payload a destination accepts
 * @param timeout             how long to wait for channels to connect, and for a stalled peer
 */
public record MultifdConfig(int channels, int pageSize, MultifdCompression compression, int level,
                            ZeroPageDetection zeroPageDetection, byte[] uuid, int maxDeviceStatePacket,
                            Duration timeout) {
    public static final int DEFAULT_PAGE_SIZE = 4096;
    public static final int DEFAULT_MAX_DEVICE_STATE_PACKET = 64 << 20;
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);

    public MultifdConfig {
        if (channels < 1 || channels > 255) {
            throw new MigrationException(Category.CONFIG, "multifd-channels must be between 1 and 255, got " + channels);
        }
        try {
            RamPacket.checkPageSize(pageSize);
        } catch (IllegalArgumentException e) {
            throw new MigrationException(Category.CONFIG, e.getMessage());
        }
        if (compression == null || zeroPageDetection == null || timeout == null || timeout.isNegative()
                || timeout.isZero()) {
            throw new MigrationException(Category.CONFIG, "multifd compression, zero-page-detection and a positive "
                    + "timeout are required");
        }
        if (compression != MultifdCompression.NONE && (level < 0 || level > compression.maxLevel())) {
            throw new MigrationException(Category.CONFIG, "multifd-" + compression.parameter() + "-level must be 0.."
                    + compression.maxLevel() + ", got " + level);
        }
        if (uuid == null) {
            uuid = new byte[MultifdInit.UUID_LEN];
        } else if (uuid.length != MultifdInit.UUID_LEN) {
            throw new MigrationException(Category.CONFIG, "VM UUID must be 16 bytes, got " + uuid.length);
        } else {
            uuid = uuid.clone();
        }
        if (maxDeviceStatePacket <= 0) {
            throw new MigrationException(Category.CONFIG, "maximum device-state packet must be positive");
        }
    }

    /** QEMU's defaults for {@code channels} channels: 4 KiB pages, no compression, zero pages on the channels. */
    public static MultifdConfig defaults(int channels) {
        return new MultifdConfig(channels, DEFAULT_PAGE_SIZE, MultifdCompression.NONE, 1, ZeroPageDetection.MULTIFD,
                null, DEFAULT_MAX_DEVICE_STATE_PACKET, DEFAULT_TIMEOUT);
    }

    public MultifdConfig withCompression(MultifdCompression c, int lvl) {
        return new MultifdConfig(channels, pageSize, c, lvl, zeroPageDetection, uuid, maxDeviceStatePacket, timeout);
    }

    public MultifdConfig withZeroPageDetection(ZeroPageDetection z) {
        return new MultifdConfig(channels, pageSize, compression, level, z, uuid, maxDeviceStatePacket, timeout);
    }

    public MultifdConfig withUuid(byte[] u) {
        return new MultifdConfig(channels, pageSize, compression, level, zeroPageDetection, u, maxDeviceStatePacket,
                timeout);
    }

    public MultifdConfig withTimeout(Duration t) {
        return new MultifdConfig(channels, pageSize, compression, level, zeroPageDetection, uuid, maxDeviceStatePacket,
                t);
    }

    public MultifdConfig withMaxDeviceStatePacket(int max) {
        return new MultifdConfig(channels, pageSize, compression, level, zeroPageDetection, uuid, max, timeout);
    }

    @Override
    public byte[] uuid() {
        return uuid.clone();
    }

    /** Pages per RAM packet (512 KiB / page size). */
    public int pageCount() {
        return RamPacket.PACKET_DATA_SIZE / pageSize;
    }
}
