#!/usr/bin/env bash
# Pins the VM processes of a running `jmigrate bench throughput` to CPUs, both engines alike: every
# source (its command line names `bench-src`) to SRC_CPUS and every destination (`bench-dst`) to
# DST_CPUS, all of its threads, within a few milliseconds of its start. Both engines start paused
# and create their migration threads later, from threads already pinned, so those inherit the pin.
# A thread-placement A/B: run the same bench command once without this and once with it.
#
#   scripts/pin-peers.sh SRC_CPUS DST_CPUS &     e.g. scripts/pin-peers.sh 0 1 &
#   bin/jmigrate bench throughput ...
#   kill %1
#
# CPU lists are taskset's (0, 0-1, 0,2). Needs util-linux's taskset and procps's pgrep.
set -euo pipefail

src_cpus="${1:?usage: pin-peers.sh SRC_CPUS DST_CPUS}"
dst_cpus="${2:?usage: pin-peers.sh SRC_CPUS DST_CPUS}"
for cpus in "$src_cpus" "$dst_cpus"; do
  [[ "$cpus" =~ ^[0-9]+([-,][0-9]+)*$ ]] || { echo "pin-peers.sh: '$cpus' is not a CPU list (0, 0-1, 0,2)" >&2; exit 2; }
done

declare -A pinned=()
while true; do
  for role in src dst; do
    cpus="$src_cpus"; [[ $role == dst ]] && cpus="$dst_cpus"
    for pid in $(pgrep -f -- "--?name bench-$role" || true); do
      [[ -n "${pinned[$pid]:-}" ]] && continue
      if taskset -a -p -c "$cpus" "$pid" >/dev/null 2>&1; then
        pinned[$pid]=1
        echo "pin-peers.sh: $(date +%T.%3N) bench-$role pid $pid ($(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c1-60)...) on CPU $cpus" >&2
      fi
    done
  done
  sleep 0.005
done
