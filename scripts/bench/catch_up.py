#!/usr/bin/env python3
"""Memory and CPU of `claimcheck serve` catching up a backlog: the tail benchmark of
`live.py` (simulate's files already on disk, followed from their start with a SQLite store),
measured for what it costs rather than how fast it goes.

Prints one line: lines/s, serve's CPU seconds (user + system), its page faults (minor), and
its RSS when every line is counted, its peak, and after 3 s and 6 s with nothing to read (what
the allocator gives back once every thread idles).

usage: scripts/bench/catch_up.py BINARY WORKDIR [--sessions N]
(WORKDIR/sim is simulate's output, made if missing: the same files `live.py` tails.)
"""
import argparse, os, socket, subprocess, sys, time, http.client

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path); r = c.getresponse(); body = r.read(); c.close()
    return body.decode()

def metric_sum(text, name):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{"))

def memory(pid):
    """VmRSS and VmHWM of `pid`, in MB."""
    d = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                d[k] = int(v.split()[0]) // 1024
    return d

def cpu_and_faults(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])

def lines_in(path):
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary"); ap.add_argument("work")
    ap.add_argument("--sessions", type=int, default=300_000)
    a = ap.parse_args()
    sim = os.path.join(a.work, "sim")
    if not os.path.exists(os.path.join(sim, "truth.json")):
        subprocess.run([a.binary, "simulate", "--out", sim, "--sessions", str(a.sessions), "--seed", "3"],
                       check=True, stdout=subprocess.DEVNULL)
    files = [("dispatch.log", ""), ("vercel-drain.ndjson", ""), ("go-daemon.log", "go="), ("ts-worker.log", "ts=")]
    total = sum(lines_in(os.path.join(sim, f)) for f, _ in files)
    store = os.path.join(a.work, "catch_up.db")
    for ext in ("", "-wal", "-shm"):
        if os.path.exists(store + ext): os.remove(store + ext)
    port = free_port()
    cmd = [a.binary, "serve", "--listen", f"127.0.0.1:{port}", "--store", store]
    for f, rt in files:
        cmd += ["--file", rt + os.path.join(sim, f)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        deadline = t0 + 300
        while True:
            try:
                if metric_sum(get(port, "/metrics"), "claimcheck_ingest_lines_total") >= total: break
            except OSError:
                pass
            if time.time() > deadline: sys.exit("serve did not count every line within 300 s")
            time.sleep(0.05)
        dt = time.time() - t0
        cpu, faults = cpu_and_faults(p.pid)
        end = memory(p.pid)
        time.sleep(3); idle3 = memory(p.pid)
        time.sleep(3); idle6 = memory(p.pid)
    finally:
        p.terminate(); p.wait()
    print(f"{total / dt:,.0f} lines/s, {cpu:.2f} CPU s ({total / cpu:,.0f} lines per CPU s), {faults:,} page faults; "
          f"RSS {end['VmRSS']} MB when every line is counted (peak {end['VmHWM']} MB), "
          f"{idle3['VmRSS']} MB after 3 s idle, {idle6['VmRSS']} MB after 6 s")

if __name__ == "__main__":
    main()
