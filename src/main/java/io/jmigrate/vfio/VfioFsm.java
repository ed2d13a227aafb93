package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static io.jmigrate.vfio.VfioDeviceState.ERROR;
import static io.jmigrate.vfio.VfioDeviceState.PRE_COPY;
import static io.jmigrate.vfio.VfioDeviceState.PRE_COPY_P2P;
import static io.jmigrate.vfio.VfioDeviceState.RESUMING;
import static io.jmigrate.vfio.VfioDeviceState.RUNNING;
import static io.jmigrate.vfio.VfioDeviceState.RUNNING_P2P;
import static io.jmigrate.vfio.VfioDeviceState.STOP;
import static io.jmigrate.vfio.VfioDeviceState.STOP_COPY;

/**
 * The VFIO migration uAPI v2 device-state machine as tables (PROTOCOL.md §4.8): the arcs a
 * migration driver implements, the states each {@link VfioMigrationFlag} enables, and the
 * kernel's next-hop table that turns any request into a walk over those arcs.
 *
 * <p>A request from {@code cur} to {@code target} is a <em>combination transition</em>: the
 * kernel looks up {@code NEXT[cur][target]}; while that hop is a state the device does not
 * support (an optional P2P or PRE_COPY state), it looks up {@code NEXT[hop][target]} instead, so
 * the driver sees an arc from {@code cur} straight to the adjacent supported state. It executes
 * that arc and repeats from the new state. A hop of ERROR means the request is forbidden
 * ({@code -EINVAL}); the device state is then unchanged. Forbidden are: requesting ERROR, any
 * request while in ERROR, a state the device does not support, and going back into PRE_COPY or
 * PRE_COPY_P2P from STOP_COPY or RESUMING (a saving or resuming session cannot restart precopy).
 *
 * <pre>
 * next hop NEXT[from][to]          to: STOP       RUNNING     STOP_COPY  RESUMING   RUNNING_P2P PRE_COPY    PRE_COPY_P2P
 * from STOP                            STOP       RUNNING_P2P STOP_COPY  RESUMING   RUNNING_P2P RUNNING_P2P RUNNING_P2P
 * from RUNNING                         RUNNING_P2P RUNNING    RUNNING_P2P RUNNING_P2P RUNNING_P2P PRE_COPY  RUNNING_P2P
 * from STOP_COPY                       STOP       STOP        STOP_COPY  STOP       STOP        ERROR       ERROR
 * from RESUMING                        STOP       STOP        STOP       RESUMING   STOP        ERROR       ERROR
 * from RUNNING_P2P                     STOP       RUNNING     STOP       STOP       RUNNING_P2P RUNNING     PRE_COPY_P2P
 * from PRE_COPY                        RUNNING    RUNNING     PRE_COPY_P2P RUNNING  RUNNING     PRE_COPY    PRE_COPY_P2P
 * from PRE_COPY_P2P                    RUNNING_P2P RUNNING_P2P STOP_COPY RUNNING_P2P RUNNING_P2P PRE_COPY   PRE_COPY_P2P
 * from ERROR                           ERROR everywhere; to ERROR: ERROR from everywhere
 * </pre>
 *
 * <p>Data sessions: entering the saving group (PRE_COPY, PRE_COPY_P2P or STOP_COPY) from outside
 * it, and entering RESUMING, open a new data fd; moves inside the saving group keep the fd;
 * leaving the group or RESUMING ends the session (RESUMING to STOP loads the written state).
 */
public final class VfioFsm {

    /** One arc a migration driver implements. */
    public record Arc(VfioDeviceState from, VfioDeviceState to) {
        @Override
        public String toString() {
            return from + " -> " + to;
        }
    }

    private static final Map<VfioDeviceState, Map<VfioDeviceState, VfioDeviceState>> NEXT =
            new EnumMap<>(VfioDeviceState.class);
    private static final Map<VfioDeviceState, Set<VfioMigrationFlag>> NEEDS = new EnumMap<>(VfioDeviceState.class);

    /**
     * The arcs of the uAPI with every optional state supported. Without P2P the kernel skips the
     * P2P states, which adds the arcs in {@link #arcs(Set)}.
     */
    public static final Set<Arc> FULL_ARCS;

    static {
        row(STOP, STOP, RUNNING_P2P, STOP_COPY, RESUMING, RUNNING_P2P, RUNNING_P2P, RUNNING_P2P);
        row(RUNNING, RUNNING_P2P, RUNNING, RUNNING_P2P, RUNNING_P2P, RUNNING_P2P, PRE_COPY, RUNNING_P2P);
        row(STOP_COPY, STOP, STOP, STOP_COPY, STOP, STOP, ERROR, ERROR);
        row(RESUMING, STOP, STOP, STOP, RESUMING, STOP, ERROR, ERROR);
        row(RUNNING_P2P, STOP, RUNNING, STOP, STOP, RUNNING_P2P, RUNNING, PRE_COPY_P2P);
        row(PRE_COPY, RUNNING, RUNNING, PRE_COPY_P2P, RUNNING, RUNNING, PRE_COPY, PRE_COPY_P2P);
        row(PRE_COPY_P2P, RUNNING_P2P, RUNNING_P2P, STOP_COPY, RUNNING_P2P, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P);
        row(ERROR, ERROR, ERROR, ERROR, ERROR, ERROR, ERROR, ERROR);
        for (Map<VfioDeviceState, VfioDeviceState> r : NEXT.values()) {
            r.put(ERROR, ERROR);
        }

        EnumSet<VfioMigrationFlag> base = EnumSet.of(VfioMigrationFlag.STOP_COPY);
        NEEDS.put(STOP, base);
        NEEDS.put(RUNNING, base);
        NEEDS.put(STOP_COPY, base);
        NEEDS.put(RESUMING, base);
        NEEDS.put(RUNNING_P2P, EnumSet.of(VfioMigrationFlag.STOP_COPY, VfioMigrationFlag.P2P));
        NEEDS.put(PRE_COPY, EnumSet.of(VfioMigrationFlag.STOP_COPY, VfioMigrationFlag.PRE_COPY));
        NEEDS.put(PRE_COPY_P2P, EnumSet.allOf(VfioMigrationFlag.class));

        Set<Arc> arcs = new LinkedHashSet<>();
        arcs.add(new Arc(STOP, RUNNING_P2P));
        arcs.add(new Arc(STOP, STOP_COPY));
        arcs.add(new Arc(STOP, RESUMING));
        arcs.add(new Arc(RUNNING, RUNNING_P2P));
        arcs.add(new Arc(RUNNING, PRE_COPY));
        arcs.add(new Arc(STOP_COPY, STOP));
        arcs.add(new Arc(RESUMING, STOP));
        arcs.add(new Arc(RUNNING_P2P, STOP));
        arcs.add(new Arc(RUNNING_P2P, RUNNING));
        arcs.add(new Arc(RUNNING_P2P, PRE_COPY_P2P));
        arcs.add(new Arc(PRE_COPY, RUNNING));
        arcs.add(new Arc(PRE_COPY, PRE_COPY_P2P));
        arcs.add(new Arc(PRE_COPY_P2P, PRE_COPY));
        arcs.add(new Arc(PRE_COPY_P2P, RUNNING_P2P));
        arcs.add(new Arc(PRE_COPY_P2P, STOP_COPY));
        FULL_ARCS = Collections.unmodifiableSet(arcs);
    }

    private VfioFsm() {
    }

    private static void row(VfioDeviceState from, VfioDeviceState toStop, VfioDeviceState toRunning,
                            VfioDeviceState toStopCopy, VfioDeviceState toResuming, VfioDeviceState toRunningP2p,
                            VfioDeviceState toPreCopy, VfioDeviceState toPreCopyP2p) {
        Map<VfioDeviceState, VfioDeviceState> r = new EnumMap<>(VfioDeviceState.class);
        r.put(STOP, toStop);
        r.put(RUNNING, toRunning);
        r.put(STOP_COPY, toStopCopy);
        r.put(RESUMING, toResuming);
        r.put(RUNNING_P2P, toRunningP2p);
        r.put(PRE_COPY, toPreCopy);
        r.put(PRE_COPY_P2P, toPreCopyP2p);
        NEXT.put(from, r);
    }

    /** The raw table entry {@code NEXT[from][to]}, before unsupported hops are skipped. */
    public static VfioDeviceState tableHop(VfioDeviceState from, VfioDeviceState to) {
        return NEXT.get(from).get(to);
    }

    /** A device with {@code flags} supports {@code s}. ERROR is never a supported (requestable) state. */
    public static boolean supports(Set<VfioMigrationFlag> flags, VfioDeviceState s) {
        return s != ERROR && flags.containsAll(NEEDS.get(s));
    }

    /**
     * The arcs a driver of a device with {@code flags} implements: the full arcs between
     * supported states, plus the arcs that appear when the kernel skips unsupported states.
     */
    public static Set<Arc> arcs(Set<VfioMigrationFlag> flags) {
        Set<Arc> arcs = new LinkedHashSet<>();
        for (VfioDeviceState from : VfioDeviceState.values()) {
            for (VfioDeviceState to : VfioDeviceState.values()) {
                if (from != to && supports(flags, from) && supports(flags, to)) {
                    VfioDeviceState hop = skip(from, to, flags);
                    if (hop != ERROR) {
                        arcs.add(new Arc(from, hop));
                    }
                }
            }
        }
        return arcs;
    }

    /**
     * Why a request from {@code cur} to {@code target} is forbidden, or null if it is allowed
     * (the kernel's {@code vfio_mig_get_next_state} returning -EINVAL).
     */
    public static String forbidden(VfioDeviceState cur, VfioDeviceState target, Set<VfioMigrationFlag> flags) {
        if (!flags.contains(VfioMigrationFlag.STOP_COPY)) {
            return "the device does not support STOP_COPY, which migration requires";
        }
        if (target == ERROR) {
            return "ERROR cannot be requested";
        }
        if (cur == ERROR) {
            return "the device is in ERROR; only VFIO_DEVICE_RESET leaves it";
        }
        if (!supports(flags, target)) {
            return "the device does not support " + target + " (migration flags " + flags + ")";
        }
        if (!supports(flags, cur)) {
            return "the device is in " + cur + ", which it does not support (migration flags " + flags + ")";
        }
        if (cur != target && skip(cur, target, flags) == ERROR) {
            return "the uAPI forbids " + cur + " -> " + target;
        }
        return null;
    }

    /**
     * The next state on the way from {@code cur} to {@code target}, unsupported states skipped.
     *
     * @throws MigrationException (STATE) naming the arc when the request is forbidden
     */
    public static VfioDeviceState nextHop(VfioDeviceState cur, VfioDeviceState target, Set<VfioMigrationFlag> flags) {
        String why = forbidden(cur, target, flags);
        if (why != null) {
            throw new MigrationException(Category.STATE, "VFIO device state " + cur + " -> " + target
                    + " rejected (EINVAL): " + why);
        }
        return cur == target ? cur : skip(cur, target, flags);
    }

    /**
     * Every hop from {@code cur} to {@code target} (the states entered, in order, {@code target}
     * last); empty when {@code cur == target}.
     *
     * @throws MigrationException (STATE) when the request is forbidden
     */
    public static List<VfioDeviceState> path(VfioDeviceState cur, VfioDeviceState target,
                                             Set<VfioMigrationFlag> flags) {
        List<VfioDeviceState> hops = new ArrayList<>();
        nextHop(cur, target, flags); // rejects a forbidden request, also cur == target
        VfioDeviceState s = cur;
        while (s != target) {
            s = nextHop(s, target, flags);
            hops.add(s);
            if (hops.size() > VfioDeviceState.values().length) {
                throw new IllegalStateException("VFIO next-hop table loops from " + cur + " to " + target);
            }
        }
        return hops;
    }

    /** The arc {@code from -> to} opens a new data session (the kernel returns a new data_fd). */
    public static boolean opensDataSession(VfioDeviceState from, VfioDeviceState to) {
        return (to.isSaving() && !from.isSaving()) || to == RESUMING;
    }

    /** The arc {@code from -> to} ends the open data session (its fd reads or writes no more). */
    public static boolean closesDataSession(VfioDeviceState from, VfioDeviceState to) {
        return (from.isSaving() && !to.isSaving()) || from == RESUMING;
    }

    /**
     * One arc of a driver: performs {@code from -> to}. A failure is an {@link ArcFailure}: the
     * driver either restored {@code from} or, unable to restore any valid state, left the device
     * in ERROR.
     */
    @FunctionalInterface
    public interface ArcStep {
        void step(VfioDeviceState from, VfioDeviceState to);
    }

    /**
     * Walks a request hop by hop through {@code step}, as the kernel drives a driver
     * ({@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE} SET).
     *
     * @return {@code target}
     * @throws MigrationException (STATE) when forbidden; nothing was executed, the state is {@code cur}
     * @throws TransitionFailed   when an arc failed: {@link TransitionFailed#state()} is where the
     *                            device now is, the original state or one along the path, or ERROR
     */
    public static VfioDeviceState walk(String device, VfioDeviceState cur, VfioDeviceState target,
                                       Set<VfioMigrationFlag> flags, ArcStep step) {
        List<VfioDeviceState> hops;
        try {
            hops = path(cur, target, flags);
        } catch (MigrationException e) {
            throw new MigrationException(Category.STATE, "VFIO device " + device + ": " + e.getMessage());
        }
        VfioDeviceState s = cur;
        for (VfioDeviceState next : hops) {
            try {
                step.step(s, next);
            } catch (ArcFailure f) {
                VfioDeviceState now = f.leftInError() ? ERROR : s;
                throw new TransitionFailed(now, "VFIO device " + device + ": arc " + s + " -> " + next
                        + " failed on the way from " + cur + " to " + target + "; device now in " + now
                        + ": " + f.getMessage(), f);
            }
            s = next;
        }
        return s;
    }

    private static VfioDeviceState skip(VfioDeviceState cur, VfioDeviceState target, Set<VfioMigrationFlag> flags) {
        VfioDeviceState hop = NEXT.get(cur).get(target);
        while (hop != ERROR && !supports(flags, hop)) {
            hop = NEXT.get(hop).get(target);
        }
        return hop;
    }

    /** A driver's arc failed. */
    public static final class ArcFailure extends MigrationException {
        private final boolean leftInError;

        /**
         * @param leftInError the driver could not restore the arc's starting state, so the device
         *                    is in ERROR
         */
        public ArcFailure(String message, boolean leftInError) {
            super(Category.IO, message);
            this.leftInError = leftInError;
        }

        public boolean leftInError() {
            return leftInError;
        }
    }

    /** A request failed part way; {@link #state()} is the device's state now. */
    public static final class TransitionFailed extends MigrationException {
        private final VfioDeviceState state;

        public TransitionFailed(VfioDeviceState state, String message, Throwable cause) {
            super(Category.IO, message, cause);
            this.state = state;
        }

        public VfioDeviceState state() {
            return state;
        }
    }
}
