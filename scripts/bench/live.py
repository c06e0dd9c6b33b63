#!/usr/bin/env python3
"""Live throughput of `claimcheck serve` (issue 3): three measurements against the release
binary, each on its own fresh store, printed as a Markdown table.

1. tail: simulate's files already on disk, followed from their start with a SQLite store
   (durable state: every batch committed with its file position) -> lines/s until
   claimcheck_ingest_lines_total counts every line.
2. drain: signed Vercel drain bodies (JSON arrays of 500 entries) POSTed over loopback by
   `--clients` keep-alive connections -> accepted entries/s (2xx = durably recorded).
3. latency: one line appended to a followed file at a time, then /metrics polled until its
   dispatch counter moves -> p50/p90/p99/max append->metric delay.

For 1 and 2 it also prints where serve's CPU went, thread by thread (the runtime's workers,
SQLite's writer, ...), and for 2 the CPU this script's own clients used while sending: what
bounds a figure is read off these, not guessed.

usage: scripts/bench/live.py BINARY WORKDIR [--sessions N] [--drain-entries N] [--clients K]
       [--only tail|drain|recovery]

`--only recovery`: the tail's run, then serve started again on the store it left, timed until
ready (every stored line replayed).
"""
import argparse, hashlib, hmac, http.client, json, os, re, shutil, signal, socket, subprocess
import sys, threading, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path); r = c.getresponse(); body = r.read(); c.close()
    return body.decode()

def metric_sum(text, name, flt=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and flt in line:
            total += float(line.rsplit(" ", 1)[1])
    return total

def stat_cpu(path):
    """A process's or thread's name and CPU seconds (user + system), from its `stat` file."""
    with open(path) as f:
        s = f.read()
    fields = s.rsplit(")", 1)[1].split()
    return s[s.index("(") + 1:s.rindex(")")], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

class Serve:
    def __init__(self, binary, args, store):
        self.port = free_port()
        cmd = [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--store", store] + args
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Ready, not only live: until the store is replayed, ingest is refused (503 recovering),
        # which a loaded machine made the first drain bodies meet.
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                c.request("GET", "/readyz"); r = c.getresponse(); r.read(); c.close()
                if r.status == 200: return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("serve did not become ready")
    def cpu(self):
        """CPU seconds (user + system) the server has used so far: on a loaded machine the
        wall time says more about the neighbours than about serve."""
        return stat_cpu(f"/proc/{self.p.pid}/stat")[1]
    def threads(self):
        """CPU seconds so far of each of the server's threads, by thread name, largest first."""
        by_name = {}
        for t in os.listdir(f"/proc/{self.p.pid}/task"):
            try:
                name, cpu = stat_cpu(f"/proc/{self.p.pid}/task/{t}/stat")
            except OSError:
                continue  # the thread ended meanwhile
            by_name.setdefault(name, []).append(cpu)
        return sorted(((n, sorted(c, reverse=True)) for n, c in by_name.items()),
                      key=lambda nc: -sum(nc[1]))
    def stop(self):
        self.p.send_signal(signal.SIGTERM); self.p.wait(30)

def threads_text(threads):
    """`name a · b; name c` for threads that used at least 0.05 CPU s."""
    parts = []
    for name, cpus in threads:
        kept = [c for c in cpus if c >= 0.05]
        if kept:
            parts.append(f"{name} {' · '.join(f'{c:.2f}' for c in kept)}")
    return "; ".join(parts)

def lines_in(path):
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

def tail_workload(binary, work, sessions, store_name):
    """The tail benchmark's files (simulate's, made once in WORKDIR/sim) and a fresh SQLite
    store: (lines, bytes, the store's path, serve's `--file` arguments)."""
    sim = os.path.join(work, "sim")
    if not os.path.exists(os.path.join(sim, "truth.json")):
        subprocess.run([binary, "simulate", "--out", sim, "--sessions", str(sessions), "--seed", "3"],
                       check=True, stdout=subprocess.DEVNULL)
    files = [("dispatch.log", ""), ("vercel-drain.ndjson", ""), ("go-daemon.log", "go="), ("ts-worker.log", "ts=")]
    total = sum(lines_in(os.path.join(sim, f)) for f, _ in files)
    nbytes = sum(os.path.getsize(os.path.join(sim, f)) for f, _ in files)
    store = os.path.join(work, store_name)
    for ext in ("", "-wal", "-shm"):
        if os.path.exists(store + ext): os.remove(store + ext)
    args = []
    for f, rt in files:
        args += ["--file", rt + os.path.join(sim, f)]
    return total, nbytes, store, args

def bench_tail(binary, work, sessions):
    total, nbytes, store, args = tail_workload(binary, work, sessions, "tail.db")
    dt, cpu, threads = follow_all(binary, total, store, args)
    return total, nbytes, dt, cpu, threads

def follow_all(binary, total, store, args):
    """serve on `args`' files and `store` until it has read all `total` lines: seconds, serve's
    CPU s, and its CPU s by thread."""
    t0 = time.time()
    s = Serve(binary, args, store)
    while True:
        read = metric_sum(get(s.port, "/metrics"), "claimcheck_ingest_lines_total")
        if read >= total: break
        time.sleep(0.05)
    dt = time.time() - t0
    cpu, threads = s.cpu(), s.threads()
    s.stop()
    return dt, cpu, threads

def bench_recovery(binary, work, sessions):
    """A tail run's store (every line followed and committed), then serve started again on
    it: seconds and serve's CPU s until ready (`/readyz` 200: every stored line replayed)."""
    total, _, store, args = tail_workload(binary, work, sessions, "tail.db")
    follow_all(binary, total, store, args)
    t0 = time.time()
    s = Serve(binary, args, store)
    ready = time.time() - t0
    cpu = s.cpu()
    s.stop()
    return total, ready, cpu

def drain_bodies(n_entries, per_body, secret):
    bodies = []
    t = 1795428000000
    for b in range(0, n_entries, per_body):
        entries = []
        for i in range(b, min(b + per_body, n_entries)):
            msg = json.dumps({"event": "dispatch", "sessionId": f"d{i}", "organizationId": "org_bench",
                              "resolvedProfile": {"runner": "go"}})
            entries.append({"id": f"e{i}", "message": msg, "timestamp": t + i, "source": "lambda",
                            "projectId": "p", "deploymentId": "d", "requestId": f"r{i}"})
        body = json.dumps(entries).encode()
        sig = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        bodies.append((body, sig, len(entries)))
    return bodies

def bench_drain(binary, work, n_entries, clients):
    secret = "bench-secret"
    store = os.path.join(work, "drain.db")
    for ext in ("", "-wal", "-shm"):
        if os.path.exists(store + ext): os.remove(store + ext)
    bodies = drain_bodies(n_entries, 500, secret)
    s = Serve(binary, ["--vercel-secret", secret], store)
    accepted = [0] * clients
    def client(k):
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        for body, sig, n in bodies[k::clients]:
            c.request("POST", "/ingest/vercel", body=body,
                      headers={"x-vercel-signature": sig, "content-type": "application/json"})
            r = c.getresponse(); r.read()
            if 200 <= r.status < 300: accepted[k] += n
        c.close()
    t0, c0 = time.time(), os.times()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in threads: th.start()
    for th in threads: th.join()
    dt, c1 = time.time() - t0, os.times()
    # This process's CPU while it sent (its threads are the clients; the bodies were built
    # and signed before): on two shared cores, what the sender takes from serve.
    client_cpu = (c1.user - c0.user) + (c1.system - c0.system)
    cpu, serve_threads = s.cpu(), s.threads()
    s.stop()
    return sum(accepted), dt, cpu, serve_threads, client_cpu

def bench_latency(binary, work, samples):
    d = os.path.join(work, "latency"); shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
    log = os.path.join(d, "dispatch.log"); open(log, "w").close()
    s = Serve(binary, ["--file", log], os.path.join(d, "state.db"))
    delays = []
    with open(log, "a") as f:
        for i in range(samples):
            before = metric_sum(get(s.port, "/metrics"), "claimcheck_dispatches_total")
            line = json.dumps({"event": "dispatch", "sessionId": f"l{i}", "time": "2026-11-23T10:00:00Z",
                               "resolvedProfile": {"runner": "go"}}) + "\n"
            t0 = time.perf_counter()
            f.write(line); f.flush()
            while metric_sum(get(s.port, "/metrics"), "claimcheck_dispatches_total") <= before:
                pass
            delays.append((time.perf_counter() - t0) * 1000)
    s.stop()
    delays.sort()
    q = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))]
    return q(0.5), q(0.9), q(0.99), delays[-1]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary"); ap.add_argument("work")
    ap.add_argument("--sessions", type=int, default=300000)
    ap.add_argument("--drain-entries", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--only", choices=["tail", "drain", "recovery"],
                    help="run one measurement alone (several quick rounds of it, alternating binaries)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    if a.only == "tail":
        total, nbytes, dt, tcpu, tthreads = bench_tail(a.binary, a.work, a.sessions)
        print(f"tail: {total/dt:,.0f} lines/s ({total:,} lines in {dt:.2f} s; serve used {tcpu:.2f} CPU s; {threads_text(tthreads)})")
        return
    if a.only == "recovery":
        total, ready, cpu = bench_recovery(a.binary, a.work, a.sessions)
        print(f"recovery: ready {ready:.2f} s after a restart on the tail's store ({total:,} lines followed; serve used {cpu:.2f} CPU s)")
        return
    if a.only == "drain":
        n, ddt, dcpu, dthreads, client_cpu = bench_drain(a.binary, a.work, a.drain_entries, a.clients)
        print(f"drain: {n/ddt:,.0f} entries/s ({n:,} entries, {a.clients} clients, {ddt:.2f} s; serve used {dcpu:.2f} CPU s, {n/dcpu:,.0f} entries per CPU s; the clients used {client_cpu:.2f} CPU s; {threads_text(dthreads)})")
        return
    total, nbytes, dt, tcpu, tthreads = bench_tail(a.binary, a.work, a.sessions)
    n, ddt, dcpu, dthreads, client_cpu = bench_drain(a.binary, a.work, a.drain_entries, a.clients)
    p50, p90, p99, mx = bench_latency(a.binary, a.work, a.samples)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; store: SQLite (WAL, synchronous=NORMAL)\n")
    print("| measurement | result | target |")
    print("|---|---|---|")
    print(f"| tail → parse → correlate → store → metrics | {total/dt:,.0f} lines/s ({total:,} lines, {nbytes/1e6:,.0f} MB in {dt:.2f} s; serve used {tcpu:.1f} CPU s, {total/tcpu:,.0f} lines per CPU s) | ≥ 500,000 lines/s |")
    print(f"| signed Vercel drain over loopback | {n/ddt:,.0f} entries/s ({n:,} entries, {a.clients} clients, 500/body, {ddt:.2f} s; serve used {dcpu:.1f} CPU s, {n/dcpu:,.0f} entries per CPU s) | ≥ 250,000 entries/s |")
    print(f"| append → metric (one line at a time, {a.samples} samples) | p50 {p50:.1f} ms · p90 {p90:.1f} ms · p99 {p99:.1f} ms · max {mx:.1f} ms | p99 ≤ 5 ms |")
    print(f"\nserve's CPU s by thread, tail ({dt:.2f} s): {threads_text(tthreads)}")
    print(f"serve's CPU s by thread, drain ({ddt:.2f} s): {threads_text(dthreads)}; "
          f"the {a.clients} clients used {client_cpu:.2f} CPU s")

if __name__ == "__main__":
    main()
