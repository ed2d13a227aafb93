#!/usr/bin/env python3
"""Helper of scripts/make-test-vectors.sh (Python 3, standard library only).

Drives real QEMU over QMP to make the migration test vectors under
src/test/resources/qemu-testdata, and records multifd migrations per TCP connection.

  testvectors.py image FILE
      writes the 64 MiB guest RAM "pattern" image every pattern vector's guest runs with:
        [0x100000, 0x500000)  each little-endian u64 at RAM offset A holds A ^ 0xA5A5A5A5A5A5A5A5
        [0x800000, 0x840000)  random.Random(20251126).randbytes(256 KiB)
        elsewhere             zero
      (sha256 49baaf9d6125037de8f6b398b7982258d75d6ad048433ad0ac3b3fb236bdb0bf)

  testvectors.py relay --listen PORT --target PORT --outdir DIR --expect N [--timeout S]
      a recording TCP relay on 127.0.0.1: accepts N connections, in accept order, connects each
      to the target before accepting the next (so the destination sees the source's order), and
      forwards both ways, writing each connection's client->server bytes to DIR/conn-NN.c2s.bin
      (server->client bytes to conn-NN.s2c.bin when there are any) and DIR/manifest.json.

  testvectors.py save    --machine pc|none [--ram-file IMG] --stream FILE --info INFO [--chroot DIR]
      a paused guest's whole migration stream, with migrate "exec:cat > FILE".

  testvectors.py capture --machine pc|none --ram-file IMG --channels N [--compression M]
                         --outdir DIR --info INFO [--chroot DIR]
      a multifd migration, source -> relay -> destination, over loopback TCP, recorded by the
      relay above (conn-00 is the main channel, then the multifd channels in connect order).

QEMU runs as `qemu-system-x86_64` (or `chroot DIR qemu-system-x86_64`). Every path given to
QEMU (image, stream, sockets) must mean the same file inside the chroot and outside, so keep
them under /dev/shm, which scripts/qemu10-chroot.sh bind-mounts into the chroot.
"""
import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

MIB = 1 << 20
GUEST_MIB = 64


# ---- the guest RAM image -----------------------------------------------------------------------

def write_image(path):
    size = GUEST_MIB * MIB
    with open(path + ".tmp", "wb") as f:
        f.truncate(size)
        base, length = 0x100000, 4 * MIB
        f.seek(base)
        f.write(struct.pack("<%dQ" % (length // 8),
                            *[(base + 8 * i) ^ 0xA5A5A5A5A5A5A5A5 for i in range(length // 8)]))
        f.seek(0x800000)
        f.write(random.Random(20251126).randbytes(256 * 1024))
    os.replace(path + ".tmp", path)


# ---- the recording relay -----------------------------------------------------------------------

class Relay:
    """Loopback TCP relay that records each connection's client->server bytes."""

    def __init__(self, listen_port, target_port, outdir, expect):
        self.target_port = target_port
        self.outdir = outdir
        self.expect = expect
        self.conns = []
        self.threads = []
        self.error = None
        os.makedirs(outdir, exist_ok=True)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", listen_port))   # bound before anyone connects
        self.listener.listen(32)
        self.port = self.listener.getsockname()[1]
        self.acceptor = threading.Thread(target=self._accept_all, name="relay-accept", daemon=True)

    def start(self):
        self.acceptor.start()
        return self

    def _accept_all(self):
        try:
            while len(self.conns) < self.expect:
                client, peer = self.listener.accept()
                # connect upstream before the next accept: the destination sees the source's order
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                idx = len(self.conns)
                info = {"index": idx, "peer": "%s:%d" % peer, "c2s_bytes": 0, "s2c_bytes": 0}
                self.conns.append(info)
                base = os.path.join(self.outdir, "conn-%02d" % idx)
                for src, dst, path, key in ((client, upstream, base + ".c2s.bin", "c2s_bytes"),
                                            (upstream, client, base + ".s2c.bin", "s2c_bytes")):
                    t = threading.Thread(target=self._pump, args=(src, dst, path, info, key),
                                         name="relay-%02d-%s" % (idx, key[:3]), daemon=True)
                    t.start()
                    self.threads.append(t)
        except OSError as e:
            self.error = "relay accept failed after %d connection(s): %s" % (len(self.conns), e)
        finally:
            self.listener.close()

    @staticmethod
    def _pump(src, dst, path, info, key):
        with open(path, "wb") as f:
            while True:
                try:
                    data = src.recv(1 << 20)
                except OSError:
                    data = b""
                if not data:
                    break
                f.write(data)
                info[key] += len(data)
                try:
                    dst.sendall(data)
                except OSError:
                    break
        try:
            dst.shutdown(socket.SHUT_WR)   # pass the half-close on
        except OSError:
            pass

    def finish(self, timeout):
        """Waits until every connection has ended both ways; writes manifest.json."""
        deadline = time.monotonic() + timeout
        self.acceptor.join(max(0.0, deadline - time.monotonic()))
        if self.acceptor.is_alive():
            raise SystemExit("relay: only %d of %d connection(s) came within %ds"
                             % (len(self.conns), self.expect, timeout))
        if self.error:
            raise SystemExit(self.error)
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                raise SystemExit("relay: thread %s still running after %ds" % (t.name, timeout))
        for info in self.conns:
            p = os.path.join(self.outdir, "conn-%02d.s2c.bin" % info["index"])
            if os.path.getsize(p) == 0:
                os.unlink(p)
        with open(os.path.join(self.outdir, "manifest.json"), "w") as f:
            json.dump({"listen": "127.0.0.1:%d" % self.port, "target": "127.0.0.1:%d" % self.target_port,
                       "connections": self.conns}, f, indent=1)
            f.write("\n")
        return self.conns


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- QEMU over QMP -----------------------------------------------------------------------------

class Qmp:
    def __init__(self, path, proc, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise SystemExit("QEMU exited with status %d before its QMP socket %s appeared"
                                 % (proc.returncode, path))
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise SystemExit("QMP socket %s did not appear within %ds" % (path, timeout))
                time.sleep(0.05)   # polling for a socket file that QEMU creates at start-up
        self.file = self.sock.makefile("rwb")
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise SystemExit("no QMP greeting on %s: %r" % (path, greeting))
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise SystemExit("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        self.file.write((json.dumps(msg) + "\n").encode())
        self.file.flush()
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
            elif "error" in r:
                raise SystemExit("QMP %s failed: %s" % (name, r["error"]))
            elif "return" in r:
                return r["return"]

    def wait_migration(self, timeout):
        """Waits for the MIGRATION event with a final status (events capability on)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                while self.events:
                    e = self.events.pop(0)
                    if e["event"] == "MIGRATION" and e["data"]["status"] in ("completed", "failed", "cancelled"):
                        return e["data"]["status"]
                self.events.append(self._read())
        finally:
            self.sock.settimeout(None)


class Qemu:
    def __init__(self, name, args, workdir, chroot):
        self.qmp_path = os.path.join(workdir, "qmp-%s.sock" % name)
        if os.path.exists(self.qmp_path):
            os.unlink(self.qmp_path)
        self.cmdline = (["chroot", chroot] if chroot else []) + ["qemu-system-x86_64"] + args + [
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path, "-name", name]
        self.log = open(os.path.join(workdir, "qemu-%s.log" % name), "wb")
        self.proc = subprocess.Popen(self.cmdline, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.qmp = Qmp(self.qmp_path, self.proc)

    def describe(self):
        return {"cmdline": self.cmdline,
                "capabilities": {c["capability"]: c["state"] for c in self.qmp.cmd("query-migrate-capabilities")},
                "parameters": self.qmp.cmd("query-migrate-parameters")}

    def stop(self):
        try:
            self.qmp.cmd("quit")
        except SystemExit:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def machine_args(machine, ram_file, incoming):
    if ram_file:
        backend = "memory-backend-file,id=%%s,size=%dM,mem-path=%s,share=off" % (GUEST_MIB, ram_file)
    else:
        backend = "memory-backend-ram,id=%%s,size=%dM" % GUEST_MIB
    if machine == "none":
        a = ["-machine", "none,memory-backend=ram", "-nodefaults", "-m", "%dM" % GUEST_MIB,
             "-object", backend % "ram", "-nographic", "-S"]
    else:
        a = ["-machine", "pc,accel=tcg,memory-backend=pc.ram", "-m", "%dM" % GUEST_MIB,
             "-object", backend % "pc.ram", "-nographic", "-serial", "null", "-monitor", "none", "-S"]
    return a + (["-incoming", "defer"] if incoming else [])


def setup(q, channels, compression, source):
    caps = [{"capability": "events", "state": True}]
    if channels:
        caps.append({"capability": "multifd", "state": True})
    q.qmp.cmd("migrate-set-capabilities", {"capabilities": caps})
    params = {}
    if channels:
        params["multifd-channels"] = channels
        if compression:
            params["multifd-compression"] = compression
    if source:
        params["max-bandwidth"] = 100 * 10 ** 9   # no throttling: one pass over a paused guest
    q.qmp.cmd("migrate-set-parameters", params)


def qemu_version(chroot):
    out = subprocess.run((["chroot", chroot] if chroot else []) + ["qemu-system-x86_64", "--version"],
                         check=True, capture_output=True, text=True).stdout
    return out.splitlines()[0]


def write_info(path, info):
    with open(path, "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


def cmd_save(a):
    workdir = os.path.dirname(os.path.abspath(a.stream))
    src = Qemu("src", machine_args(a.machine, a.ram_file, False), workdir, a.chroot)
    try:
        setup(src, 0, None, True)
        desc = src.describe()
        uri = "exec:cat > %s" % a.stream
        src.qmp.cmd("migrate", {"uri": uri})
        status = src.qmp.wait_migration(a.timeout)
        info = src.qmp.cmd("query-migrate")
    finally:
        src.stop()
    write_info(a.info, {"migrate_uri": uri, "source": desc, "query_migrate_src": info,
                        "qemu_version": qemu_version(a.chroot)})
    if status != "completed":
        raise SystemExit("migration to %s ended %s" % (a.stream, status))


def cmd_capture(a):
    workdir = os.path.dirname(os.path.abspath(a.outdir))
    dst_port = free_port()
    relay = Relay(0, dst_port, a.outdir, a.channels + 1)
    dst = src = None
    try:
        dst = Qemu("dst", machine_args(a.machine, None, True), workdir, a.chroot)
        src = Qemu("src", machine_args(a.machine, a.ram_file, False), workdir, a.chroot)
        setup(dst, a.channels, a.compression, False)
        setup(src, a.channels, a.compression, True)
        dsrc, ddst = src.describe(), dst.describe()
        dst.qmp.cmd("migrate-incoming", {"uri": "tcp:127.0.0.1:%d" % dst_port})
        relay.start()
        src.qmp.cmd("migrate", {"uri": "tcp:127.0.0.1:%d" % relay.port})
        st_src = src.qmp.wait_migration(a.timeout)
        st_dst = dst.qmp.wait_migration(a.timeout)
        info = {"migrate_uri": "tcp:127.0.0.1:%d (relay) -> dst tcp:127.0.0.1:%d" % (relay.port, dst_port),
                "relay": "scripts/testvectors.py relay (in process)", "source": dsrc, "destination": ddst,
                "query_migrate_src": src.qmp.cmd("query-migrate"), "query_migrate_dst": dst.qmp.cmd("query-migrate"),
                "dst_status": dst.qmp.cmd("query-status"), "qemu_version": qemu_version(a.chroot)}
    finally:
        for q in (src, dst):
            if q:
                q.stop()
    conns = relay.finish(a.timeout)
    info["connections"] = conns
    write_info(a.info, info)
    if st_src != "completed" or st_dst != "completed":
        raise SystemExit("multifd migration ended %s (source) / %s (destination)" % (st_src, st_dst))


def cmd_relay(a):
    relay = Relay(a.listen, a.target, a.outdir, a.expect).start()
    print(json.dumps(relay.finish(a.timeout)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("image")
    i.add_argument("file")
    r = sub.add_parser("relay")
    r.add_argument("--listen", type=int, required=True)
    r.add_argument("--target", type=int, required=True)
    r.add_argument("--outdir", required=True)
    r.add_argument("--expect", type=int, required=True)
    r.add_argument("--timeout", type=float, default=120)
    for name in ("save", "capture"):
        s = sub.add_parser(name)
        s.add_argument("--machine", choices=["pc", "none"], required=True)
        s.add_argument("--ram-file", default=None)
        s.add_argument("--info", required=True)
        s.add_argument("--chroot", default=None)
        s.add_argument("--timeout", type=float, default=300)
        if name == "save":
            s.add_argument("--stream", required=True)
        else:
            s.add_argument("--channels", type=int, default=2)
            s.add_argument("--compression", choices=["none", "zlib", "zstd"], default=None)
            s.add_argument("--outdir", required=True)
    a = p.parse_args()
    if a.cmd == "image":
        write_image(a.file)
    elif a.cmd == "relay":
        cmd_relay(a)
    elif a.cmd == "save":
        cmd_save(a)
    else:
        cmd_capture(a)


if __name__ == "__main__":
    sys.exit(main())
