#!/usr/bin/env bash
# Fetches QEMU's own stream analyzer, scripts/analyze-migration.py, from Debian's qemu source
# package of SUITE (default trixie: QEMU 10.0, whose analyzer knows MIG_CMD_SWITCHOVER_START;
# bookworm's 7.2 analyzer rejects every QEMU_VM_COMMAND), for the interop tests.
# Nothing is committed: the script lands in DIR (default target/qemu-analyzer).
#
#   [SUITE=trixie] scripts/fetch-qemu-analyzer.sh [DIR]    prints the path of analyze-migration.py
#
# Uses a private apt state directory with a deb-src entry; the host's apt configuration is not
# changed. Idempotent.
set -euo pipefail
dir="${1:-target/qemu-analyzer}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
out="$dir/analyze-migration.py"
if [[ -s "$out" ]]; then echo "$out"; exit 0; fi

state="$dir/apt"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/src"
cat > "$state/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${SUITE:-trixie} main
SRC
apt_opts=(-o "Dir::Etc::SourceList=$state/sources.list" -o "Dir::Etc::SourceParts=-"
          -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
          -o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" -qq update >&2
cd "$state/src"
apt-get "${apt_opts[@]}" -qq source --download-only qemu >&2
tarball="$(ls qemu_*.orig.tar.* | head -1)"
tar -xf "$tarball" --wildcards --no-anchored 'scripts/analyze-migration.py' -O > "$out"
[[ -s "$out" ]] || { echo "fetch-qemu-analyzer.sh: analyze-migration.py not found in $tarball" >&2; exit 1; }
rm -rf "$state/src"
echo "$out"
