package io.jmigrate.vfio;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;
import org.junit.jupiter.api.Test;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.HashSet;
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
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Acceptance 1 of issue 10: every (from, to) pair, for every combination of the optional
 * features, checked against an oracle written from the uAPI text (the documented arcs, which
 * states each feature enables, which requests are forbidden) rather than from the next-hop
 * table under test.
 */
class VfioFsmTest {

    /** The arcs vfio.h documents, all features on. */
    private static final List<VfioFsm.Arc> UAPI_ARCS = List.of(
            arc(STOP, RUNNING_P2P), arc(STOP, STOP_COPY), arc(STOP, RESUMING),
            arc(RUNNING, RUNNING_P2P), arc(RUNNING, PRE_COPY),
            arc(STOP_COPY, STOP), arc(RESUMING, STOP),
            arc(RUNNING_P2P, STOP), arc(RUNNING_P2P, RUNNING), arc(RUNNING_P2P, PRE_COPY_P2P),
            arc(PRE_COPY, RUNNING), arc(PRE_COPY, PRE_COPY_P2P),
            arc(PRE_COPY_P2P, PRE_COPY), arc(PRE_COPY_P2P, RUNNING_P2P), arc(PRE_COPY_P2P, STOP_COPY));

    private static final List<Set<VfioMigrationFlag>> FEATURE_SETS = List.of(
            EnumSet.of(VfioMigrationFlag.STOP_COPY),
            EnumSet.of(VfioMigrationFlag.STOP_COPY, VfioMigrationFlag.P2P),
            EnumSet.of(VfioMigrationFlag.STOP_COPY, VfioMigrationFlag.PRE_COPY),
            EnumSet.allOf(VfioMigrationFlag.class));

    private static VfioFsm.Arc arc(VfioDeviceState a, VfioDeviceState b) {
        return new VfioFsm.Arc(a, b);
    }

    private static boolean supported(Set<VfioMigrationFlag> f, VfioDeviceState s) {
        return switch (s) {
            case ERROR -> false;
            case STOP, RUNNING, STOP_COPY, RESUMING -> true;
            case RUNNING_P2P -> f.contains(VfioMigrationFlag.P2P);
            case PRE_COPY -> f.contains(VfioMigrationFlag.PRE_COPY);
            case PRE_COPY_P2P -> f.contains(VfioMigrationFlag.P2P) && f.contains(VfioMigrationFlag.PRE_COPY);
        };
    }

    /**
     * The arcs of a device with {@code f}: documented arcs between supported states, plus, for
     * each documented pair of arcs through one skipped P2P state, the arc that skips it (the
     * driver "sees an arc from the original state to a directly adjacent state"): without P2P
     * these are STOP -> RUNNING, RUNNING -> STOP and PRE_COPY -> STOP_COPY.
     */
    private static Set<VfioFsm.Arc> oracleArcs(Set<VfioMigrationFlag> f) {
        Set<VfioFsm.Arc> arcs = new HashSet<>();
        for (VfioFsm.Arc a : UAPI_ARCS) {
            if (!supported(f, a.from())) {
                continue;
            }
            if (supported(f, a.to())) {
                arcs.add(a);
            } else if (skippable(f, a.to())) {
                for (VfioFsm.Arc b : UAPI_ARCS) {
                    if (b.from() == a.to() && b.to() != a.from() && supported(f, b.to())) {
                        arcs.add(arc(a.from(), b.to()));
                    }
                }
            }
        }
        return arcs;
    }

    /**
     * Without P2P the P2P quiesced states are skipped ("the P2P states are then omitted"); a
     * precopy state is never skipped, it just does not exist without PRE_COPY.
     */
    private static boolean skippable(Set<VfioMigrationFlag> f, VfioDeviceState s) {
        return s == RUNNING_P2P || (s == PRE_COPY_P2P && f.contains(VfioMigrationFlag.PRE_COPY));
    }

    private static boolean oracleForbidden(VfioDeviceState from, VfioDeviceState to, Set<VfioMigrationFlag> f) {
        return to == ERROR || from == ERROR || !supported(f, to) || !supported(f, from)
                || ((from == STOP_COPY || from == RESUMING) && to.isPrecopy());
    }

    /** Shortest walk over {@code arcs} whose intermediate hops never open a data session. */
    private static int shortest(VfioDeviceState from, VfioDeviceState to, Set<VfioFsm.Arc> arcs) {
        Map<VfioDeviceState, Integer> dist = new EnumMap<>(VfioDeviceState.class);
        dist.put(from, 0);
        ArrayDeque<VfioDeviceState> q = new ArrayDeque<>(List.of(from));
        while (!q.isEmpty()) {
            VfioDeviceState s = q.poll();
            if (s == to) {
                return dist.get(s);
            }
            for (VfioFsm.Arc a : arcs) {
                if (a.from() == s && !dist.containsKey(a.to())
                        && (a.to() == to || !VfioFsm.opensDataSession(a.from(), a.to()))) {
                    dist.put(a.to(), dist.get(s) + 1);
                    q.add(a.to());
                }
            }
        }
        return -1;
    }

    @Test
    void everyPairForEveryFeatureSet() {
        int allowed = 0;
        int forbidden = 0;
        for (Set<VfioMigrationFlag> f : FEATURE_SETS) {
            Set<VfioFsm.Arc> arcs = oracleArcs(f);
            assertThat(VfioFsm.arcs(f)).as("arcs for %s", f).containsExactlyInAnyOrderElementsOf(arcs);
            for (VfioDeviceState from : VfioDeviceState.values()) {
                for (VfioDeviceState to : VfioDeviceState.values()) {
                    List<VfioFsm.Arc> executed = new ArrayList<>();
                    String what = from + " -> " + to + " with " + f;
                    if (oracleForbidden(from, to, f)) {
                        forbidden++;
                        assertThat(VfioFsm.forbidden(from, to, f)).as(what).isNotNull();
                        assertThatThrownBy(() -> VfioFsm.walk("vf0", from, to, f, (a, b) -> executed.add(arc(a, b))))
                                .as(what).isInstanceOf(MigrationException.class)
                                .isNotInstanceOf(VfioFsm.TransitionFailed.class)
                                .hasMessageContaining("VFIO device vf0: VFIO device state " + from + " -> " + to)
                                .hasMessageContaining("EINVAL")
                                .satisfies(e -> assertThat(((MigrationException) e).category()).isEqualTo(Category.STATE));
                        assertThat(executed).as("nothing executed for forbidden " + what).isEmpty();
                        continue;
                    }
                    allowed++;
                    VfioDeviceState end = VfioFsm.walk("vf0", from, to, f, (a, b) -> executed.add(arc(a, b)));
                    assertThat(end).as(what).isEqualTo(to);
                    if (from == to) {
                        assertThat(executed).as(what).isEmpty();
                        continue;
                    }
                    assertThat(arcs).as("every hop of " + what + " is an arc: " + executed).containsAll(executed);
                    assertThat(executed.getFirst().from()).isEqualTo(from);
                    assertThat(executed.getLast().to()).isEqualTo(to);
                    for (int i = 1; i < executed.size(); i++) {
                        assertThat(executed.get(i).from()).isEqualTo(executed.get(i - 1).to());
                    }
                    for (int i = 0; i < executed.size() - 1; i++) {
                        VfioFsm.Arc a = executed.get(i);
                        assertThat(VfioFsm.opensDataSession(a.from(), a.to()))
                                .as("intermediate hop %s of %s opens no data session", a, what).isFalse();
                        assertThat(a.to()).as(what).isNotEqualTo(ERROR);
                    }
                    assertThat(executed).as("shortest walk for " + what).hasSize(shortest(from, to, arcs));
                    assertThat(VfioFsm.path(from, to, f)).isEqualTo(executed.stream().map(VfioFsm.Arc::to).toList());
                }
            }
        }
        assertThat(allowed + forbidden).isEqualTo(4 * 64);
        // requestable states squared, minus STOP_COPY/RESUMING back into a precopy state
        assertThat(allowed).isEqualTo(4 * 4 + 5 * 5 + (5 * 5 - 2) + (7 * 7 - 4));
    }

    @Test
    void kernelPathsWithAllFeatures() {
        Set<VfioMigrationFlag> all = EnumSet.allOf(VfioMigrationFlag.class);
        assertThat(VfioFsm.path(RUNNING, STOP_COPY, all)).containsExactly(RUNNING_P2P, STOP, STOP_COPY);
        assertThat(VfioFsm.path(RUNNING, RESUMING, all)).containsExactly(RUNNING_P2P, STOP, RESUMING);
        assertThat(VfioFsm.path(PRE_COPY, STOP_COPY, all)).containsExactly(PRE_COPY_P2P, STOP_COPY);
        assertThat(VfioFsm.path(PRE_COPY, STOP, all)).containsExactly(RUNNING, RUNNING_P2P, STOP);
        assertThat(VfioFsm.path(STOP_COPY, RUNNING, all)).containsExactly(STOP, RUNNING_P2P, RUNNING);
        assertThat(VfioFsm.path(STOP, PRE_COPY, all)).containsExactly(RUNNING_P2P, RUNNING, PRE_COPY);
        assertThat(VfioFsm.path(RESUMING, RUNNING, all)).containsExactly(STOP, RUNNING_P2P, RUNNING);
        Set<VfioMigrationFlag> noP2p = EnumSet.of(VfioMigrationFlag.STOP_COPY, VfioMigrationFlag.PRE_COPY);
        assertThat(VfioFsm.path(PRE_COPY, STOP_COPY, noP2p)).containsExactly(STOP_COPY);
        assertThat(VfioFsm.path(RUNNING, STOP_COPY, noP2p)).containsExactly(STOP, STOP_COPY);
        assertThat(VfioFsm.path(STOP, PRE_COPY, noP2p)).containsExactly(RUNNING, PRE_COPY);
    }

    @Test
    void dataSessions() {
        assertThat(VfioFsm.opensDataSession(RUNNING, PRE_COPY)).isTrue();
        assertThat(VfioFsm.opensDataSession(RUNNING_P2P, PRE_COPY_P2P)).isTrue();
        assertThat(VfioFsm.opensDataSession(STOP, STOP_COPY)).isTrue();
        assertThat(VfioFsm.opensDataSession(STOP, RESUMING)).isTrue();
        assertThat(VfioFsm.opensDataSession(PRE_COPY_P2P, STOP_COPY)).isFalse();
        assertThat(VfioFsm.opensDataSession(PRE_COPY, PRE_COPY_P2P)).isFalse();
        assertThat(VfioFsm.closesDataSession(STOP_COPY, STOP)).isTrue();
        assertThat(VfioFsm.closesDataSession(PRE_COPY, RUNNING)).isTrue();
        assertThat(VfioFsm.closesDataSession(RESUMING, STOP)).isTrue();
        assertThat(VfioFsm.closesDataSession(PRE_COPY_P2P, STOP_COPY)).isFalse();
    }

    /**
     * ERROR rules (vfio.h, MIG_DEVICE_STATE SET): a failed arc leaves the device in the state
     * before it (the original or one along the path), or in ERROR when the driver could not
     * restore any; every hop of every allowed multi-hop walk is failed in turn.
     */
    @Test
    void failedArcLeavesTheLastStateReachedOrError() {
        Set<VfioMigrationFlag> all = EnumSet.allOf(VfioMigrationFlag.class);
        int cases = 0;
        for (VfioDeviceState from : VfioDeviceState.values()) {
            for (VfioDeviceState to : VfioDeviceState.values()) {
                if (VfioFsm.forbidden(from, to, all) != null || from == to) {
                    continue;
                }
                List<VfioDeviceState> path = VfioFsm.path(from, to, all);
                for (int fail = 0; fail < path.size(); fail++) {
                    for (boolean toError : new boolean[]{false, true}) {
                        int failAt = fail;
                        int[] hop = {0};
                        VfioDeviceState before = fail == 0 ? from : path.get(fail - 1);
                        assertThatThrownBy(() -> VfioFsm.walk("vf1", from, to, all, (a, b) -> {
                            if (hop[0]++ == failAt) {
                                throw new VfioFsm.ArcFailure("device said no", toError);
                            }
                        })).isInstanceOfSatisfying(VfioFsm.TransitionFailed.class, e -> {
                            assertThat(e.state()).isEqualTo(toError ? ERROR : before);
                            assertThat(e.getMessage()).contains("VFIO device vf1: arc " + before + " -> "
                                    + path.get(failAt), "device now in " + e.state(), "device said no");
                        });
                        cases++;
                    }
                }
            }
        }
        assertThat(cases).isGreaterThan(100);
        for (VfioDeviceState to : VfioDeviceState.values()) {
            assertThat(VfioFsm.forbidden(ERROR, to, all)).isNotNull();
        }
    }

    @Test
    void stateValuesAreTheUapis() {
        assertThat(VfioDeviceState.values()).extracting(VfioDeviceState::value).containsExactly(0, 1, 2, 3, 4, 5, 6, 7);
        assertThat(VfioDeviceState.of(6)).isEqualTo(PRE_COPY);
        assertThatThrownBy(() -> VfioDeviceState.of(8)).hasMessageContaining("unknown VFIO device state 8");
        assertThat(VfioMigrationFlag.toBits(EnumSet.allOf(VfioMigrationFlag.class))).isEqualTo(7);
        assertThat(VfioMigrationFlag.fromBits(5)).containsExactly(VfioMigrationFlag.STOP_COPY, VfioMigrationFlag.PRE_COPY);
        assertThat(STOP_COPY.qapiName()).isEqualTo("stop-copy");
    }
}
