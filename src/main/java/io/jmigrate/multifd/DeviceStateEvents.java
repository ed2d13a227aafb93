package io.jmigrate.multifd;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/**
 * JFR events for device-state packets, one per packet (QEMU's trace events
 * {@code multifd_send_...} / {@code qemu_loadvm_load_state_buffer}): the event's duration is the
 * socket write on the source and the handler call on the destination, on the channel thread
 * ({@code mig/src/send_N}, {@code mig/dst/recv_N}), so a recording shows the parallelism per
 * channel. {@code jfr print --events io.jmigrate.DeviceStatePacketSent,io.jmigrate.DeviceStatePacketReceived rec.jfr}.
 */
public final class DeviceStateEvents {
    private DeviceStateEvents() {
    }

    /** Initialises both event classes (their first use is slow), before any migration thread needs them. */
    public static void warmUp() {
        new Sent().shouldCommit();
        new Received().shouldCommit();
    }

    @Name("io.jmigrate.DeviceStatePacketSent")
    @Label("Device-state packet sent")
    @Category({"jmigrate", "multifd"})
    @Description("One multifd device-state packet written to its channel")
    @StackTrace(false)
    public static final class Sent extends Event {
        @Label("Channel")
        public int channel;
        @Label("Device")
        public String device;
        @Label("Instance")
        public int instanceId;
        @Label("Payload size")
        @DataAmount
        public long size;
    }

    @Name("io.jmigrate.DeviceStatePacketReceived")
    @Label("Device-state packet received")
    @Category({"jmigrate", "multifd"})
    @Description("One multifd device-state packet read and handed to its device")
    @StackTrace(false)
    public static final class Received extends Event {
        @Label("Channel")
        public int channel;
        @Label("Device")
        public String device;
        @Label("Instance")
        public int instanceId;
        @Label("Payload size")
        @DataAmount
        public long size;
    }
}
