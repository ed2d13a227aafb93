#!/usr/bin/env bash
# CPU a jmigrate source VM spends per QMP query-migrate while a migration is active.
#
#   scripts/qmp-query-cost.sh LAUNCHER [LABEL]     e.g. scripts/qmp-query-cost.sh bin/jmigrate new
#
# Starts a source (512 MiB of random RAM, memory-backend-file,share=on) and a destination VM with
# LAUNCHER, waits for both JIT warm-ups, starts a 4-channel multifd migration throttled to
# 10 MiB/s so it stays active, then sends 4 batches of 1000 query-migrate and prints the source's
# CPU (user + system, /proc/PID/stat) per query for each batch. Run it for two builds in turn
# (e.g. a clone at the old commit and this one), alternating, to compare them in the same session.
# Needs python3; the work directory goes under /dev/shm and is removed afterwards.
set -euo pipefail
launcher="$(realpath "${1:?usage: qmp-query-cost.sh LAUNCHER [LABEL]}")"
label="${2:-$launcher}"
work="$(mktemp -d /dev/shm/jmigrate-qmp-cost.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
head -c 512M /dev/urandom > "$work/img"
"$launcher" vm --qmp "unix:$work/src.sock" -m 512M --memory-backend "file=$work/img,share=on" > "$work/src.log" 2>&1 &
pids+=($!)
"$launcher" vm --qmp "unix:$work/dst.sock" -m 512M --memory-backend ram,prealloc=on --incoming defer > "$work/dst.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do [[ -S "$work/src.sock" && -S "$work/dst.sock" ]] && break; sleep 0.1; done
python3 - "$work" "$label" "$(pgrep -f -- "unix:$work/src.sock" | head -1)" <<'PY'
import json, os, socket, sys, time
work, label, spid = sys.argv[1], sys.argv[2], int(sys.argv[3])
def conn(path):
    s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile('rwb')
    f.readline(); f.write(b'{"execute":"qmp_capabilities"}\n'); f.flush(); f.readline(); return f
def ex(f, cmd, args=None):
    f.write((json.dumps({"execute": cmd, **({"arguments": args} if args else {})}) + "\n").encode()); f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            return r
def cpu():
    st = open(f"/proc/{spid}/stat").read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf('SC_CLK_TCK')
s, d = conn(f"{work}/src.sock"), conn(f"{work}/dst.sock")
for f in (s, d):
    while ex(f, "x-jmigrate-query-jit-warm-up")["return"]["status"] == "running":
        time.sleep(0.2)
    ex(f, "migrate-set-capabilities", {"capabilities": [{"capability": "multifd", "state": True}]})
    ex(f, "migrate-set-parameters", {"multifd-channels": 4})
ex(s, "migrate-set-parameters", {"max-bandwidth": 10 << 20})
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); port = ls.getsockname()[1]; ls.close()
ex(d, "migrate-incoming", {"uri": f"tcp:127.0.0.1:{port}"})
ex(s, "migrate", {"uri": f"tcp:127.0.0.1:{port}"})
time.sleep(1)
per = []
for _ in range(4):
    c0 = cpu()
    for _ in range(1000):
        r = ex(s, "query-migrate")
    per.append(round((cpu() - c0) / 1000 * 1e6))
print(f"{label}: µs of source CPU per query-migrate, 4 batches of 1000 (status {r['return']['status']}): {per}")
ex(s, "migrate_cancel")
PY
