#!/usr/bin/env python3
"""Where each engine's CPU goes during its migrations, from one system-wide perf recording.

Record a throughput benchmark system-wide, then read the recording back:

    perf record -a -F 999 -o /tmp/all.data -- sleep 600 &
    bin/jmigrate bench throughput --ram 2G --channels 4 --no-precopy --runs 3 --no-qemu \
        --qemu10 /var/tmp/jmigrate-trixie --dst-memory prealloc --compression none \
        --jvm-arg=-Xmx256m --jvm-arg=-XX:+UnlockDiagnosticVMOptions --jvm-arg=-XX:+DumpPerfMapAtExit
    pkill -INT -f 'perf record -a'
    perf script -i /tmp/all.data -F comm,pid,tid,time,ip,sym,dso > /tmp/all.txt
    scripts/perf-window.py /tmp/all.txt

Each jmigrate VM (a process with mig/ threads) and each QEMU process is a source or a
destination by which kernel copy dominates its samples: _copy_from_iter (into the socket) or
_copy_to_iter (out of it). Its migration window is the largest burst of those copy samples
(gaps under 30 ms), which leaves out the JIT warm-up's training migration, RAM preallocation
and the digest after completion. Every sample of the process inside the window counts.

Prints, per engine and side: the samples, the windows, the split into kernel and user space,
the threads, the user-space symbols with the most samples, and the kernel symbols whose sample
counts differ most between the engines.
"""
import collections
import re
import sys

LINE = re.compile(r'^\s*(.*?)\s+(\d+)/(\d+)\s+([\d.]+):\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$')
COPY = {'src': '_copy_from_iter', 'dst': '_copy_to_iter'}


def bursts(times, gap=0.03):
    times = sorted(times)
    out, cur = [], [times[0]]
    for t in times[1:]:
        if t - cur[-1] > gap:
            out.append(cur)
            cur = []
        cur.append(t)
    out.append(cur)
    return out


def main(path, top=15):
    by_pid = collections.defaultdict(list)
    with open(path, errors='replace') as f:
        for line in f:
            m = LINE.match(line)
            if m:
                comm, pid, _tid, t, _ip, sym, dso = m.groups()
                by_pid[int(pid)].append((float(t), comm, sym, dso))
    groups = collections.defaultdict(list)  # (engine, side) -> [(window s, samples)]
    for pid, samples in by_pid.items():
        comms = {s[1] for s in samples}
        engine = 'jmigrate' if any(c.startswith('mig/') for c in comms) \
            else 'qemu' if 'qemu-system-x86' in comms else None
        if engine is None:
            continue
        best = None
        for side, sym in COPY.items():
            times = [s[0] for s in samples if s[2] == sym]
            for b in bursts(times) if times else []:
                if best is None or len(b) > len(best[1]):
                    best = (side, b)
        if best is None or len(best[1]) < 20:
            continue
        side, b = best
        window = [s for s in samples if b[0] <= s[0] <= b[-1]]
        groups[(engine, side)].append((b[-1] - b[0], window))
        print(f'pid {pid}: {engine} {side}, window {b[-1] - b[0]:.3f} s, {len(window)} samples')
    kernel = {}
    for (engine, side), runs in sorted(groups.items()):
        samples = [s for _, w in runs for s in w]
        n = len(samples)
        space = collections.Counter('kernel' if 'kallsyms' in s[3] else 'user' for s in samples)
        threads = collections.Counter(re.sub(r'_\d+$', '_N', s[1]) for s in samples)
        kernel[(engine, side)] = collections.Counter(s[2] for s in samples if 'kallsyms' in s[3])
        print(f'\n== {engine} {side}: {n} samples in {len(runs)} windows '
              f'({", ".join(f"{d:.3f}" for d, _ in runs)} s); kernel {space["kernel"]}, user {space["user"]}')
        for t, c in threads.most_common(6):
            print(f'   thread {c:6d} {100 * c / n:5.1f}%  {t}')
        user = collections.Counter((re.sub(r'_\d+$', '_N', s[1]), s[2]) for s in samples if 'kallsyms' not in s[3])
        for (t, sym), c in user.most_common(8):
            print(f'   user   {c:6d} {100 * c / n:5.1f}%  {t}: {sym[:100]}')
    for side in COPY:
        a, q = kernel.get(('jmigrate', side)), kernel.get(('qemu', side))
        if a is None or q is None:
            continue
        print(f'\n== {side}: kernel symbols, jmigrate against qemu (samples; most extra first)')
        for sym in sorted(set(a) | set(q), key=lambda k: q[k] - a[k])[:top]:
            print(f'   {a[sym]:6d} {q[sym]:6d} {a[sym] - q[sym]:+6d}  {sym}')


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15)
