package io.jmigrate.multifd;

/**
 * Counters of one multifd channel (either side).
 *
 * @param id                 channel id (from the init packet)
 * @param packets            packets, every kind (SYNC and device-state included)
 * @param syncPackets        packets with the SYNC flag
 * @param deviceStatePackets device-state packets
 * @param normalPages        pages that carried data
 * @param zeroPages          zero pages (offsets without data)
 * @param bytes              bytes on the wire including the 64-byte init record
 */
public record ChannelStats(int id, long packets, long syncPackets, long deviceStatePackets, long normalPages,
                           long zeroPages, long bytes) {
}
