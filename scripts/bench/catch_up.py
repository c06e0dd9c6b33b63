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
import argparse, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live import Serve, get, metric_sum, tail_workload  # noqa: E402

def memory(pid):
    """VmRSS and VmHWM of `pid`, in MB."""
    d = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                d[k] = int(v.split()[0]) // 1024
    return d

def minor_faults(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary"); ap.add_argument("work")
    ap.add_argument("--sessions", type=int, default=300_000)
    a = ap.parse_args()
    total, _, store, args = tail_workload(a.binary, a.work, a.sessions, "catch_up.db")
    t0 = time.time()
    serve = Serve(a.binary, args, store)
    try:
        deadline = t0 + 300
        while metric_sum(get(serve.port, "/metrics"), "claimcheck_ingest_lines_total") < total:
            if time.time() > deadline: sys.exit("serve did not count every line within 300 s")
            time.sleep(0.05)
        dt = time.time() - t0
        cpu = serve.cpu()
        faults = minor_faults(serve.p.pid)
        end = memory(serve.p.pid)
        time.sleep(3); idle3 = memory(serve.p.pid)
        time.sleep(3); idle6 = memory(serve.p.pid)
    finally:
        serve.stop()
    print(f"{total / dt:,.0f} lines/s, {cpu:.2f} CPU s ({total / cpu:,.0f} lines per CPU s), {faults:,} page faults; "
          f"RSS {end['VmRSS']} MB when every line is counted (peak {end['VmHWM']} MB), "
          f"{idle3['VmRSS']} MB after 3 s idle, {idle6['VmRSS']} MB after 6 s")

if __name__ == "__main__":
    main()
