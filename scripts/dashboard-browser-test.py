#!/usr/bin/env python3
"""The dashboard in a real browser, as scripts/test.sh runs it: headless Chromium (over the DevTools
protocol, scripts/dashboard_cdp.py) against a real `telemetry-server serve` that received real pings
(../shared/data/pings, scripts/real_pings.py), converted them live, and ran a real job (target/jobs/os-distribution-rust.wasm)
over them. At a desktop and a phone width the page must show the ingest figures the server reports
(records written, the 200 count, the rate line), list the job as succeeded, and draw its result
chart when clicked; with no script error, console error, policy violation or failed request, and no
horizontal scrolling of the page.

    scripts/dashboard-browser-test.py --bin target/debug/telemetry-server [--out DIR for screenshots]
"""
import argparse, hashlib, json, os, re, secrets, shutil, subprocess, sys, tempfile, time, urllib.request, uuid

from dashboard_cdp import Browser
from real_pings import PINGS, ROOT, SHARED, load
JOB = "os-distribution-rust"
WIDTHS = [("desktop", 1280), ("phone", 390)]
DEADLINE_S = 90


def fail(msg):
    sys.exit(f"dashboard-browser-test: FAIL: {msg}")


def http(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def metric(base, name):
    text = http(base + "/metrics")[1].decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_for(what, check, deadline):
    while not check():
        if time.time() > deadline:
            fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def submit_job(base, token):
    with open(os.path.join(SHARED, "data/seed/mapreduce-filters/examples-v2/filter_include_all.json")) as f:
        manifest = json.dumps({"name": JOB, "filter": json.load(f)}).encode()
    with open(os.path.join(ROOT, "target/jobs", JOB + ".wasm"), "rb") as f:
        component = f.read()
    boundary = "----" + secrets.token_hex(12)
    body = b"".join([
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"manifest\"\r\nContent-Type: application/json\r\n\r\n".encode(), manifest,
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"component\"; filename=\"{JOB}.wasm\"\r\n"
        "Content-Type: application/wasm\r\n\r\n".encode(), component, f"\r\n--{boundary}--\r\n".encode()])
    status, answer = http(base + "/api/v1/jobs", body, {"Authorization": "Bearer " + token,
                                                         "Content-Type": "multipart/form-data; boundary=" + boundary})
    if status != 202:
        fail(f"job submission answered {status}")
    return json.loads(answer)["id"]


def check_page(page, base, token, width, expected_records, out):
    """The page at `width`: figures, job list, chart, layout. Returns a one-line summary."""
    page.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=width < 600)
    page.open(base + "/dashboard", token)
    deadline = time.time() + 20
    shown = lambda: page.eval("""(() => {
        const cell = [...document.querySelectorAll('#stats tr')].find((tr) => tr.cells[0].textContent === 'Records written');
        const ok = [...document.querySelectorAll('#codes tr')].find((tr) => tr.cells[0].textContent === '200');
        const job = [...document.querySelectorAll('#jobs tbody tr')].find((tr) => tr.cells[0].textContent === %s);
        return { records: cell ? cell.cells[1].textContent : null, ok: ok ? ok.cells[1].textContent : null,
                 job: job ? job.cells[1].textContent : null, rate: document.getElementById('rate-note').textContent,
                 rateDrawn: !!document.querySelector('#rate svg') };
    })()""" % json.dumps(JOB))
    while True:
        s = shown()
        if s["records"] and s["job"] and s["ok"]:
            break
        if time.time() > deadline:
            fail(f"{width}px: the page never showed the figures and the job: {s}")
        time.sleep(0.2)
    if s["records"] != f"{expected_records:,}":
        fail(f"{width}px: 'Records written' shows {s['records']!r}, the server wrote {expected_records}")
    if int(s["ok"].replace(",", "")) < len(PINGS):
        fail(f"{width}px: '200' count {s['ok']} is below the {len(PINGS)} pings accepted")
    if s["job"] != "succeeded" or not s["rateDrawn"] or not s["rate"].startswith("Records written per second"):
        fail(f"{width}px: {s}")
    chart = page.click_job(JOB)
    m = re.match(r"chart (\d+)x(\d+)$", chart)
    if not m or int(m.group(1)) == 0:
        fail(f"{width}px: the result chart did not load: {chart}")
    overflow = page.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 0:
        fail(f"{width}px: the page scrolls sideways by {overflow}px")
    if out:
        page.screenshot(os.path.join(out, f"dashboard-{width}.png"), width)
    return f"{width}px: records written {s['records']}, 200s {s['ok']}, job {s['job']}, {chart}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/debug/telemetry-server"))
    ap.add_argument("--chromium", default="chromium")
    ap.add_argument("--port", type=int, default=9323, help="DevTools port")
    ap.add_argument("--out", help="save a screenshot per width here")
    a = ap.parse_args()
    started = time.time()
    deadline = started + DEADLINE_S
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="dashboard-browser-")
    token = secrets.token_hex(16)
    with open(os.path.join(work, "server.toml"), "w") as f:
        f.write(f"""data_dir = "{work}/data"
[server]
listen = "127.0.0.1:0"
[ingest]
shards = 1
max_log_age_ms = 300
[convert]
scan_interval_secs = 1
flush_secs = 1
[[jobs.tokens]]
name = "ci"
sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"
role = "submit"
""")
    log = open(os.path.join(work, "server.log"), "w+")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    server = subprocess.Popen([a.bin, "serve", "--config", os.path.join(work, "server.toml")], stderr=log, env=env)
    try:
        def address():
            log.seek(0)
            m = re.search(r"^listening on (\S+)$", log.read(), re.M)
            return m and m.group(1)
        wait_for("the server to listen", lambda: address() or server.poll() is not None, deadline)
        if server.poll() is not None:
            log.seek(0)
            fail("the server exited:\n" + log.read())
        base = "http://" + address()
        for dims, body, headers in load():
            status, _ = http(f"{base}/submit/telemetry/{uuid.uuid4()}/{dims}", body, headers)
            if status != 200:
                fail(f"{dims} answered {status}")
        converted = lambda: (metric(base, "telemetry_convert_records_read_total") or 0) >= len(PINGS) \
            and metric(base, "telemetry_convert_pending_logs") == 0
        wait_for("live conversion of the pings", converted, deadline)
        job = submit_job(base, token)
        def job_state():
            state = json.loads(http(f"{base}/api/v1/jobs/{job}", headers={"Authorization": "Bearer " + token})[1])["state"]
            if state in ("failed", "cancelled"):
                fail(f"the job {state}")
            return state == "succeeded"
        wait_for("the job", job_state, deadline)
        written = int(metric(base, "telemetry_ingest_written_records_total"))
        if written != len(PINGS):
            fail(f"the server wrote {written} records for {len(PINGS)} pings")
        with Browser(a.chromium, a.port) as browser:
            page = browser.page
            for label, width in WIDTHS:
                print(f"dashboard-browser-test: {label} {check_page(page, base, token, width, written, a.out)}")
            page.eval("1")  # reads the events still queued
            problems = page.problems()
        if problems:
            fail("the page reported:\n  " + "\n  ".join(problems))
        print(f"dashboard-browser-test: ok in {time.time() - started:.1f} s (no script, console, policy or request errors)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
