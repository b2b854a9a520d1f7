#!/usr/bin/env python3
"""Soak test: `telemetry-server serve` under steady load of mixed real pings (scripts/real_pings.py,
and one of them cut in half; unique document ids) with live conversion and continuous export to a real S3-compatible server
(s3s-fs) on, for DURATION seconds at RATE pings/s. Checks, and exits 1 on any failure:

- no errors: every submission answered 200; no write error, failed log or failed export pass on
  /metrics; no ERROR line in the server's log; exit 0 on SIGTERM;
- memory flat: after the warm-up (the first third of the run, at least 30 s: caches, the dedup
  index and the open partition files fill up first), the lowest RSS of the server (one sample a
  second) over the last third of the remaining samples is within ±10 % of the lowest over the
  first third: RSS swings by a third within seconds as batches are converted and freed, and a leak
  shows as a higher floor;
- backlogs bounded: the conversion backlog age stays under BACKLOG_MAX seconds while loaded;
- threads bounded: the server's `telemetry_process_threads` stays at or under MAX_THREADS (64 + 8
  per core: its pools are bounded; tokio's blocking pool once grew to ~190 threads in 10 min at 1,600/s);
- nothing lost: once the load stops and the backlog drains, every acknowledged id is stored exactly
  once (partition files) or rejected with a reason (the error stream), and every finished partition
  file is on the S3 server with its local size.

    scripts/soak.py --bin target/release/telemetry-server --duration 600 --rate 1600 --raw-logs drop   # by hand
    scripts/soak.sh                                                                     # CI: 60 s
"""
import argparse, collections, http.client, statistics, json, lzma, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time, urllib.request, uuid

from real_pings import load

ACCESS, SECRET = "AKIDSOAK", "SECRETSOAK"


def fail(problems):
    print("soak: FAIL:\n  " + "\n  ".join(problems))
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(base):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))


def wait_until(what, check, timeout):
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            fail([f"timed out after {timeout} s waiting for {what}"])
        time.sleep(0.5)


def drive(base, pings, rate, duration, threads):
    """Sends pings at `rate`/s for `duration` s; returns [(id, status or error text)]."""
    host, port = base.removeprefix("http://").split(":")
    results, lock, counter = [], threading.Lock(), iter(range(10**9))
    start = time.time()

    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                k = next(counter)
            due = start + k / rate
            if due - start >= duration:
                break
            time.sleep(max(0.0, due - time.time()))
            dims, body, headers = pings[k % len(pings)]
            doc_id = str(uuid.uuid4())
            try:
                conn.request("POST", f"/submit/telemetry/{doc_id}/{dims}", body, headers)
                response = conn.getresponse()
                response.read()
                outcome = response.status
            except (OSError, http.client.HTTPException) as e:
                outcome = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            with lock:
                results.append((doc_id, outcome))
        conn.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results


def stored_ids(storage):
    """Document ids of every finished partition file (repeats kept)."""
    ids = []
    for dirpath, _, files in os.walk(storage):
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith(".zst"):
                data = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
            elif name.endswith(".xz"):
                data = lzma.open(path).read()
            else:
                continue  # .partial: not finished
            ids += [line.split(b"\t", 1)[0].decode() for line in data.splitlines() if line]
    return ids


def rejected_ids(errors):
    """{id: reason} of every rejected record in the error stream."""
    out = {}
    for dirpath, _, files in os.walk(errors):
        for name in files:
            if name.endswith(".ndjson"):
                for line in open(os.path.join(dirpath, name), encoding="utf-8", errors="replace"):
                    entry = json.loads(line)
                    out[(entry.get("path") or "").split("/", 1)[0]] = entry["kind"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--rate", type=float, default=100, help="pings per second")
    ap.add_argument("--threads", type=int, default=8, help="client connections")
    # The server's pools follow the cores (async threads, conversion workers, log shards) or are
    # fixed (32 blocking threads, the job service's few): 30-40 threads on 2 cores.
    ap.add_argument("--max-threads", type=int, default=64 + 8 * (os.cpu_count() or 1),
                    help="most server threads allowed (telemetry_process_threads); default 64 + 8 per core")
    ap.add_argument("--backlog-max", type=float, default=60, help="largest conversion backlog age allowed, seconds")
    ap.add_argument("--raw-logs", choices=("export", "drop"), default="export",
                    help="export converted raw logs to S3 too (the default), or delete them once converted: "
                         "raw logs are most of the bytes, so long runs at high rates need `drop` to fit a disk")
    a = ap.parse_args()
    if a.duration < 60:
        # The memory check compares floors of thirds of the samples after a 30 s warm-up: under
        # 60 s a third holds a few samples, and one swing reads as a trend.
        ap.error(f"--duration {a.duration:g}: at least 60 s, so the memory check has 10 samples a third")
    work = tempfile.mkdtemp(prefix="soak-")
    s3_root, data = os.path.join(work, "s3"), os.path.join(work, "data")
    os.makedirs(s3_root)
    s3_port = free_port()
    s3 = subprocess.Popen([shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs"), "--host", "127.0.0.1",
                           "--port", str(s3_port), "--access-key", ACCESS, "--secret-key", SECRET, s3_root],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        with open(os.path.join(work, "server.toml"), "w") as f:
            f.write(f"""data_dir = "{data}"
[server]
listen = "127.0.0.1:0"
[ingest]
durability = "batch"
max_log_age_ms = 2000
[convert]
scan_interval_secs = 1
flush_secs = 5
keep_raw = {str(a.raw_logs == "export").lower()}
[s3]
endpoint = "http://127.0.0.1:{s3_port}"
bucket = "telemetry"
prefix = "published/"
raw_logs = {str(a.raw_logs == "export").lower()}
interval_secs = 2
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEMETRY_", "AWS_"))}
        env.update(AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1", RUST_LOG="info")
        log = open(os.path.join(work, "server.log"), "w+")
        server = subprocess.Popen([a.bin, "serve", "--config", os.path.join(work, "server.toml")], stderr=log, env=env)

        def address():
            log.seek(0)
            m = re.search(r"^listening on (\S+)$", log.read(), re.M)
            return m and m.group(1)
        wait_until("the server to listen", lambda: address() or server.poll() is not None, 30)
        if server.poll() is not None:
            log.seek(0)
            fail(["the server exited at start:\n" + log.read()])
        base = "http://" + address()
        pings = load()
        # One in len(pings) + 1 is a real ping cut in half (a broken upload): rejected with a reason.
        dims, body, headers = next(p for p in pings if "Content-Encoding" not in p[2] and len(p[1]) > 1000)
        pings.append((dims, body[: len(body) // 2], headers))

        samples, stop = [], threading.Event()  # (seconds since start, rss KiB, backlog age s, pending logs, threads)
        started = time.time()

        def sample():
            while not stop.wait(1.0):
                m = metrics(base)
                samples.append((time.time() - started, rss_kib(server.pid),
                                m.get("telemetry_convert_backlog_age_seconds", 0), m.get("telemetry_convert_pending_logs", 0),
                                m.get("telemetry_process_threads", 0)))
        sampler = threading.Thread(target=sample)
        sampler.start()
        results = drive(base, pings, a.rate, a.duration, a.threads)
        stop.set()
        sampler.join()
        loaded_for = time.time() - started
        acked = [i for i, outcome in results if outcome == 200]
        problems = [f"{n} submissions answered {outcome}" for outcome, n in
                    collections.Counter(o for _, o in results if o != 200).items()]

        # Drain: conversion, then one clean export pass covering every finished file.
        wait_until("conversion to catch up", lambda: metrics(base).get("telemetry_convert_records_read_total", 0) >= len(acked)
                   and metrics(base)["telemetry_convert_pending_logs"] == 0, 180)
        drained = time.time()
        wait_until("an export pass after the drain", lambda: time.time() - metrics(base)["telemetry_export_lag_seconds"] > drained + 1, 60)
        final = metrics(base)
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=120)
        if code != 0:
            problems.append(f"server exited {code} on SIGTERM")
        for name in ("telemetry_ingest_write_errors_total", "telemetry_convert_failed_logs_total", "telemetry_export_failed_passes_total"):
            if final.get(name, 0) != 0:
                problems.append(f"{name} = {final[name]}")
        log.seek(0)
        errors_logged = [line for line in log if " ERROR " in line or '"level":"ERROR"' in line]
        problems += [f"server log: {line.strip()[:300]}" for line in errors_logged[:5]]

        # Memory: flat after the warm-up.
        warm_end = max(a.duration / 3, 30)
        loaded = [s for s in samples if s[0] <= a.duration]
        after = [s for s in loaded if s[0] >= warm_end]
        if len(after) < 9:
            problems.append(f"only {len(after)} RSS samples after the warm-up")
        else:
            # RSS swings by a third within seconds as batches of logs are inflated, converted and
            # freed; what a leak raises is the floor the server returns to between batches. So
            # compare the lowest sample of the first third after the warm-up with the lowest of
            # the last third (each third spans two or more batch cycles). Two windows' medians, and
            # a line fitted through every sample, both mistook a swing for a trend.
            third = len(after) // 3
            first = min(s[1] for s in after[:third])
            last = min(s[1] for s in after[-third:])
            drift = (last - first) / first
            if abs(drift) > 0.10:
                problems.append(f"RSS moved {drift:+.1%} after the warm-up (floor {first / 1024:.0f} MiB "
                                f"at {after[0][0]:.0f}-{after[third - 1][0]:.0f} s, {last / 1024:.0f} MiB at {after[-third][0]:.0f}-{after[-1][0]:.0f} s)")
        backlog_max = max((s[2] for s in loaded), default=0)
        threads_max = max((s[4] for s in loaded), default=0)
        if not 0 < threads_max <= a.max_threads:
            problems.append(f"server threads reached {threads_max:.0f} (telemetry_process_threads; limit {a.max_threads})")
        if backlog_max > a.backlog_max:
            problems.append(f"conversion backlog reached {backlog_max:.0f} s (limit {a.backlog_max:.0f} s)")

        # Every acknowledged id stored once or rejected with a reason; every finished file exported.
        stored = collections.Counter(stored_ids(os.path.join(data, "storage")))
        rejected = rejected_ids(os.path.join(data, "errors"))
        twice = [i for i in acked if stored[i] > 1]
        lost = [i for i in acked if i not in stored and i not in rejected]
        if twice:
            problems.append(f"{len(twice)} ids stored more than once, e.g. {twice[:3]}")
        if lost:
            problems.append(f"{len(lost)} acknowledged ids neither stored nor rejected, e.g. {lost[:3]}")
        unexported = []
        for dirpath, _, files in os.walk(os.path.join(data, "storage")):
            for name in files:
                if name.endswith((".zst", ".xz")):
                    local = os.path.join(dirpath, name)
                    remote = os.path.join(s3_root, "telemetry", "published", os.path.relpath(local, os.path.join(data, "storage")))
                    if not os.path.exists(remote) or os.path.getsize(remote) != os.path.getsize(local):
                        unexported.append(os.path.relpath(local, data))
        if unexported:
            problems.append(f"{len(unexported)} partition files not on S3, e.g. {unexported[:3]}")

        rss = [s[1] for s in after] or [0]
        reasons = collections.Counter(rejected[i] for i in acked if i in rejected and i not in stored)
        print(f"soak: {len(results)} submissions in {loaded_for:.0f} s ({len(results) / a.duration:.0f}/s asked {a.rate:.0f}/s), "
              f"{len(acked)} acknowledged; stored {sum(1 for i in acked if i in stored)}, rejected {sum(reasons.values())} "
              f"({', '.join(f'{k} {v}' for k, v in sorted(reasons.items())) or 'none'}); "
              f"converted and exported {time.time() - started - loaded_for:.0f} s after the load")
        print(f"soak: RSS after warm-up {min(rss) / 1024:.0f}-{max(rss) / 1024:.0f} MiB (the check: {drift if len(after) >= 9 else float('nan'):+.1%} between the floors of the first and last thirds); backlog age max {backlog_max:.0f} s, "
              f"pending logs max {max((s[3] for s in loaded), default=0):.0f}, threads max {threads_max:.0f}; exported {final.get('telemetry_export_uploaded_files_total', 0):.0f} files, "
              f"{final.get('telemetry_export_uploaded_bytes_total', 0) / 1e6:.1f} MB")
        print("soak: RSS MiB every 10 s: " + " ".join(f"{s[1] / 1024:.0f}" for s in loaded[::10]))
        if problems:
            fail(problems)
        print("soak: ok")
    finally:
        if server and server.poll() is None:
            server.kill()
            server.wait()
        s3.kill()
        s3.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
