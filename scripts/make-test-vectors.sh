#!/usr/bin/env bash
# Regenerates the QEMU migration test vectors in src/test/resources/qemu-testdata from real QEMU,
# and checks them. Needs root (apt-get, debootstrap, chroot).
#
#   scripts/make-test-vectors.sh [--out DIR] make VERSION NAME...   make vectors, then check them
#   scripts/make-test-vectors.sh [--out DIR] check                  check every vector in DIR
#
#   VERSION  7.2   Debian's qemu-system-x86 on this host (bookworm), installed if missing
#            10.0  Debian trixie's, in the chroot of scripts/qemu10-chroot.sh (built if missing)
#   NAME     pc guest (-M pc, TCG, 64 MiB, default devices, paused with -S):
#              stream-zero-ram       migrate "exec:cat > FILE", guest RAM all zero
#              stream-pattern-ram    same, guest RAM = the pattern image
#              multifd2-pattern-ram  multifd, 2 channels, through the recording relay
#            none guest (-M none -nodefaults, 64 MiB = the pattern image, paused with -S):
#              none-stream           migrate "exec:cat > FILE"
#              none-multifd2         multifd, 2 channels, multifd-compression none, through the relay
#              none-multifd2-zlib    same with multifd-compression zlib (level 1, QEMU's default)
#              none-multifd2-zstd    same with multifd-compression zstd (level 1, QEMU's default)
#            all                     every name above
#   --out DIR  the folder holding qemu-VERSION/ (default: src/test/resources/qemu-testdata)
#
# Each vector is written as QEMU sent it, then gzipped (gzip -n -9, so the same bytes give the same
# .gz): a stream as NAME.bin.gz, a capture as NAME/conn-NN.c2s.bin.gz (conn-00 = the main channel,
# then the multifd channels in the order they connected) with NAME/manifest.json (the relay's byte
# counts), plus NAME.info.json (QEMU command lines, capabilities, parameters, query-migrate).
# SHA256SUMS in qemu-VERSION/ gets the sha256 of each new file, gunzipped and gzipped.
#
# check (also run after make): every SHA256SUMS line of a gunzipped file matches, and jmigrate's
# own analyzer (bin/jmigrate analyze) decodes every vector: the RAM it extracts from a stream, or
# rebuilds from a capture's channels, has the sha256 of the guest's RAM (the pattern image, or
# 64 MiB of zeros), and a capture's channels are consumed to exactly the byte counts the relay
# recorded. The files QEMU's own scripts/analyze-migration.py wrote (*.analyze-state.json.gz)
# and channels.json are not remade here.
set -euo pipefail
export LC_ALL=C

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/src/test/resources/qemu-testdata"
if [[ "${1:-}" == "--out" ]]; then
  out="$(mkdir -p "$2" && cd "$2" && pwd)"
  shift 2
fi
helper=(python3 "$repo/scripts/testvectors.py")
chroot_dir="${JMIGRATE_QEMU10:-/var/tmp/jmigrate-trixie}"
pattern_sha=49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf
all_names=(stream-zero-ram stream-pattern-ram multifd2-pattern-ram none-stream none-multifd2
  none-multifd2-zlib none-multifd2-zstd)

die() { echo "make-test-vectors: $*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit 2
}

# ---- QEMU ------------------------------------------------------------------------------------

qemu_chroot=()   # "--chroot DIR" for 10.0
setup_qemu() {
  case "$1" in
    7.2)
      if ! command -v qemu-system-x86_64 >/dev/null; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-system-x86
      fi
      qemu-system-x86_64 --version | head -1 | grep -q 'version 7\.2\.' \
        || die "qemu-system-x86_64 on this host is not QEMU 7.2: $(qemu-system-x86_64 --version | head -1)"
      qemu_chroot=()
      ;;
    10.0)
      bash "$repo/scripts/qemu10-chroot.sh" "$chroot_dir" >/dev/null   # builds it once; mounts /proc, /dev, /dev/shm
      chroot "$chroot_dir" qemu-system-x86_64 --version | head -1 | grep -q 'version 10\.0\.' \
        || die "the chroot $chroot_dir has no QEMU 10.0"
      qemu_chroot=(--chroot "$chroot_dir")
      ;;
    *) die "unknown QEMU version '$1' (7.2 or 10.0)";;
  esac
}

# ---- make ------------------------------------------------------------------------------------

# update_sums DIR FILE...: replaces the SHA256SUMS lines of FILE (paths relative to DIR, gzipped
# FILE.gz present) in both sections of DIR/SHA256SUMS, creating the sections if need be.
update_sums() {
  local dir="$1"; shift
  python3 - "$dir" "$@" <<'PY'
import gzip, hashlib, os, sys
d, files = sys.argv[1], sys.argv[2:]
path = os.path.join(d, "SHA256SUMS")
raw_h, gz_h = "# sha256 of uncompressed files", "# sha256 of gzip files"
sections = {raw_h: [], gz_h: []}
cur = None
if os.path.exists(path):
    for line in open(path):
        line = line.rstrip("\n")
        if line in sections:
            cur = line
        elif line and cur:
            sections[cur].append(line)
drop = {"./" + f for f in files} | {"./" + f + ".gz" for f in files}
for h in sections:
    sections[h] = [l for l in sections[h] if l.split(None, 1)[1] not in drop]
for f in files:
    gz = open(os.path.join(d, f + ".gz"), "rb").read()
    sections[raw_h].append(hashlib.sha256(gzip.decompress(gz)).hexdigest() + "  ./" + f)
    sections[gz_h].append(hashlib.sha256(gz).hexdigest() + "  ./" + f + ".gz")
with open(path, "w") as o:
    for h in (raw_h, gz_h):
        o.write(h + "\n")
        for l in sorted(sections[h], key=lambda l: l.split(None, 1)[1]):
            o.write(l + "\n")
PY
}

make_one() {   # make_one VERSION NAME WORKDIR
  local ver="$1" name="$2" work="$3" dest="$out/qemu-$1"
  local machine=pc ram=(--ram-file "$work/guest-ram.bin") comp=()
  [[ "$name" == none-* ]] && machine=none
  [[ "$name" == stream-zero-ram ]] && ram=()
  case "$name" in
    *-zlib) comp=(--compression zlib);;
    *-zstd) comp=(--compression zstd);;
  esac
  echo "make-test-vectors: QEMU $ver: $name" >&2
  mkdir -p "$dest"
  case "$name" in
    stream-zero-ram|stream-pattern-ram|none-stream)
      "${helper[@]}" save "${qemu_chroot[@]}" --machine "$machine" "${ram[@]}" \
        --stream "$work/$name.bin" --info "$work/$name.info.json"
      gzip -n -9 -f "$work/$name.bin"
      mv "$work/$name.bin.gz" "$work/$name.info.json" "$dest/"
      update_sums "$dest" "$name.bin"
      ;;
    multifd2-pattern-ram|none-multifd2|none-multifd2-zlib|none-multifd2-zstd)
      rm -rf "${work:?}/$name"
      "${helper[@]}" capture "${qemu_chroot[@]}" --machine "$machine" "${ram[@]}" --channels 2 "${comp[@]}" \
        --outdir "$work/$name" --info "$work/$name.info.json"
      gzip -n -9 -f "$work/$name"/conn-*.bin
      mkdir -p "$dest/$name"
      rm -f "$dest/$name"/conn-*.bin.gz
      mv "$work/$name"/conn-*.bin.gz "$work/$name/manifest.json" "$dest/$name/"
      mv "$work/$name.info.json" "$dest/"
      local files=()
      for f in "$dest/$name"/conn-*.bin.gz; do files+=("$name/$(basename "${f%.gz}")"); done
      update_sums "$dest" "${files[@]}"
      ;;
    *) die "unknown vector '$name' (one of: ${all_names[*]}, all)";;
  esac
}

cmd_make() {
  local ver="$1"; shift
  local names=("$@")
  [[ ${#names[@]} -gt 0 ]] || die "make $ver: name the vectors to make (or all)"
  [[ "${names[0]}" == all ]] && names=("${all_names[@]}")
  setup_qemu "$ver"
  # guest RAM image, stream and sockets live in /dev/shm: the same path inside the chroot
  work="$(mktemp -d /dev/shm/jmigrate-vectors.XXXXXX)"
  trap 'rm -rf "$work"' EXIT
  "${helper[@]}" image "$work/guest-ram.bin"
  [[ "$(sha256sum < "$work/guest-ram.bin" | cut -d' ' -f1)" == "$pattern_sha" ]] \
    || die "the pattern image does not have the sha256 $pattern_sha"
  for n in "${names[@]}"; do
    make_one "$ver" "$n" "$work"
  done
  cmd_check
}

# ---- check -----------------------------------------------------------------------------------

zero_sha="$(head -c $((64 << 20)) /dev/zero | sha256sum | cut -d' ' -f1)"
checked=0
failed=0
ok() { checked=$((checked + 1)); }
bad() { checked=$((checked + 1)); failed=$((failed + 1)); echo "FAIL: $*" >&2; }

check_sums() {   # every "uncompressed" line of DIR's SHA256SUMS files whose FILE.gz exists
  local dir="$1" sums line sha f
  for sums in "$dir"/SHA256SUMS "$dir"/none-SHA256SUMS; do
    [[ -f "$sums" ]] || continue
    while read -r sha f; do
      [[ "$sha" =~ ^[0-9a-f]{64}$ && "$f" == *.bin && -f "$dir/$f.gz" ]] || continue
      if [[ "$(gzip -dc "$dir/$f.gz" | sha256sum | cut -d' ' -f1)" == "$sha" ]]; then ok
      else bad "$dir/$f.gz gunzipped does not have the sha256 in $(basename "$sums")"; fi
    done < "$sums"
  done
}

check_stream() {   # check_stream FILE BLOCK-FILE WANT-SHA
  local f="$1" block="$2" want="$3" x
  x="$(mktemp -d)"
  if "$repo/bin/jmigrate" analyze -x "$x" "$f" >/dev/null 2>"$x.err" \
     && [[ "$(sha256sum < "$x/ram/$block" | cut -d' ' -f1)" == "$want" ]]; then ok
  else bad "$f: RAM extracted by jmigrate analyze -x is not the guest's ($(tail -1 "$x.err"))"; fi
  rm -rf "$x" "$x.err"
}

check_capture() {   # check_capture DIR BLOCK
  local d="$1" block="$2" x chans=() c
  for c in "$d"/conn-*.c2s.bin.gz; do [[ "$c" == */conn-00.c2s.bin.gz ]] || chans+=("$c"); done
  x="$(mktemp -d)"
  if "$repo/bin/jmigrate" analyze -x "$x" --ram "$d/conn-00.c2s.bin.gz" --multifd "${chans[@]}" >"$x.out" 2>"$x.err" \
     && grep -qE "^  $block +sha256 $pattern_sha\$" "$x.out" \
     && python3 - "$x/summary.json" "$d/manifest.json" <<'PY'
import json, os, sys
s, m = (json.load(open(p)) for p in sys.argv[1:])
want = {c["index"]: c["c2s_bytes"] for c in m["connections"]}
got = {int(os.path.basename(c["file"])[5:7]): c["bytes"] for c in s["multifd"]["channels"]}
sys.exit(0 if all(want[i] == b for i, b in got.items()) and len(got) == len(want) - 1 else 1)
PY
  then ok
  else bad "$d: jmigrate analyze --multifd did not rebuild the guest's RAM from every byte of every channel" \
    "($(tail -1 "$x.err"))"; fi
  rm -rf "$x" "$x.out" "$x.err"
}

cmd_check() {
  local v d
  for v in "$out"/qemu-*/; do
    v="${v%/}"
    check_sums "$v"
    [[ -f "$v/stream-zero-ram.bin.gz" ]] && check_stream "$v/stream-zero-ram.bin.gz" pc.ram.ram "$zero_sha"
    [[ -f "$v/stream-pattern-ram.bin.gz" ]] && check_stream "$v/stream-pattern-ram.bin.gz" pc.ram.ram "$pattern_sha"
    [[ -f "$v/none-stream.bin.gz" ]] && check_stream "$v/none-stream.bin.gz" ram.ram "$pattern_sha"
    for d in "$v"/multifd2-pattern-ram "$v"/none-multifd2*/; do
      d="${d%/}"
      [[ -f "$d/conn-00.c2s.bin.gz" ]] || continue
      if [[ "$(basename "$d")" == none-* ]]; then check_capture "$d" ram; else check_capture "$d" pc.ram; fi
    done
  done
  echo "make-test-vectors: $((checked - failed)) passed, $failed failed"
  [[ $failed -eq 0 ]]
}

[[ $# -ge 1 ]] || usage
case "$1" in
  make) shift; [[ $# -ge 1 ]] || usage; cmd_make "$@";;
  check) cmd_check;;
  -h|--help) usage;;
  *) usage;;
esac
