#!/usr/bin/env bash
# Runs the default suite (mvn -B verify) COUNT times in a row on fresh clones of this repository's
# main branch, pulling main before each run, as issue 8's determinism check does. Run two of these
# at once (NAME A and B) to load a 2-core machine. One line per run goes to WORKDIR/log.txt; a
# failing run keeps its Maven log and its surefire/failsafe reports in WORKDIR. `touch WORKDIR/STOP`
# ends the loop after the run in progress.
#   usage: scripts/suite-loop.sh NAME [COUNT] [WORKDIR]     (defaults: 20, /var/tmp/jmigrate-suite-loop)
set -uo pipefail
name=${1:?usage: scripts/suite-loop.sh NAME [COUNT] [WORKDIR]}; count=${2:-20}; work=${3:-/var/tmp/jmigrate-suite-loop}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$work"; dir=$work/$name
rm -rf "$dir"; git clone -q --branch main "$repo" "$dir" || exit 1
cd "$dir" || exit 1
for i in $(seq 1 "$count"); do
  [[ -e $work/STOP ]] && break
  git fetch -q origin main && git reset -q --hard origin/main
  commit=$(git rev-parse --short HEAD); start=$(date +%s)
  if mvn -B verify > "$work/$name-run$i.log" 2>&1; then result=PASS; else result=FAIL; fi
  first=$(grep -E '<<< (FAIL|ERR)' "$work/$name-run$i.log" | head -3 | tr '\n' ' ')
  echo "$(date +%T) $name run$i $commit $result $(( $(date +%s) - start ))s load=$(cut -d' ' -f1 /proc/loadavg) $first" >> "$work/log.txt"
  if [[ $result == PASS ]]; then
    rm -f "$work/$name-run$i.log"
  else
    mkdir -p "$work/$name-run$i-reports" && cp -r target/surefire-reports target/failsafe-reports "$work/$name-run$i-reports/" 2>/dev/null
  fi
done
