#!/usr/bin/env python3
"""Manual check of the /dashboard page in a real browser: screenshots of its states, wide and narrow.

Drives headless Chromium over the DevTools protocol (Python standard library only; needs a
`chromium` binary, e.g. Debian's `apt-get install chromium`). For each width it saves
  notoken-W.png    no token saved
  badtoken-W.png   a token the server refuses
  jobs-W.png       the job list for --token
  job-N-W.png      each --job NAME clicked (a chart, a "no chart" text result, a failure, ...)
and exits 1 if the page threw a script error or broke its Content-Security-Policy.

  scripts/dashboard-screenshots.py --url http://127.0.0.1:8080/dashboard --token "$T" \\
      --job os-distribution-rust --job simple-counter-rust --out /tmp/dash
"""
import argparse, base64, json, os, shutil, socket, struct, subprocess, sys, tempfile, time, urllib.request

TOKEN_KEY = "telemetry-server-token"  # the localStorage key the page reads


class Page:
    """One browser tab over a minimal WebSocket client (text frames, client-masked)."""

    def __init__(self, ws_url):
        hostport, path = ws_url.removeprefix("ws://").split("/", 1)
        host, port = hostport.split(":")
        self.sock = socket.create_connection((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self._exact(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("DevTools refused the connection: " + head.decode(errors="replace"))
        self.next_id, self.problems = 0, []

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("browser closed the connection")
            buf += chunk
        return buf

    def _send(self, text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 \
            else bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(b"\x81" + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _recv(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            n = struct.unpack(">H", self._exact(2))[0] if n == 126 else struct.unpack(">Q", self._exact(8))[0] if n == 127 else n
            message += self._exact(n)
            if b0 & 0x80:
                return json.loads(message)

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            m = self._recv()
            if m.get("method") == "Runtime.exceptionThrown":
                self.problems.append("script error: " + json.dumps(m["params"]["exceptionDetails"])[:300])
            elif m.get("method") == "Log.entryAdded" and m["params"]["entry"]["source"] == "security":
                self.problems.append("security: " + m["params"]["entry"]["text"])
            elif m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, url, token):
        """Loads the page with `token` saved (None: none), as a user who pressed Save would have it."""
        self.call("Page.navigate", url=url)
        time.sleep(0.5)
        self.eval("localStorage.clear()" if token is None else f"localStorage.setItem({TOKEN_KEY!r}, {json.dumps(token)})")
        self.call("Page.navigate", url=url)
        time.sleep(1.5)  # the first stats and jobs polls

    def click_job(self, name):
        """Clicks the job row named `name` and waits for its chart or message."""
        return self.eval(f"""new Promise((done) => {{
          const tr = [...document.querySelectorAll('#jobs tbody tr')].find((t) => t.cells[0].textContent === {json.dumps(name)});
          if (!tr) return done('no job named ' + {json.dumps(name)});
          tr.click();
          const start = Date.now();
          (function wait() {{
            const img = document.querySelector('#chart img'), note = document.getElementById('chart-note').textContent;
            if (img && img.complete) return done('chart ' + img.naturalWidth + 'x' + img.naturalHeight);
            if (note && note !== 'Loading…' && !note.startsWith('No chart')) return done(note);
            if (document.querySelector('#chart pre')) return done(note);
            if (Date.now() - start > 10000) return done('timed out: ' + note);
            setTimeout(wait, 50);
          }})();
        }})""")

    def screenshot(self, path, width):
        """The whole page at `width` CSS pixels."""
        height = 900
        for _ in range(3):  # the height depends on the width (wrapping), so settle it
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            time.sleep(0.3)
            needed = self.eval("document.documentElement.scrollHeight")
            if needed <= height:
                break
            height = needed
        self.eval("window.scrollTo(0, 0)")  # a click may have scrolled the result into view
        time.sleep(0.2)
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        print("wrote", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080/dashboard")
    ap.add_argument("--token", help="a job-service token that lists jobs")
    ap.add_argument("--job", action="append", default=[], help="name of a job to click (repeatable)")
    ap.add_argument("--out", default="dashboard-screenshots")
    ap.add_argument("--watch", type=float, default=0, help="seconds to let the page poll before the job shots (rate line)")
    ap.add_argument("--widths", default="1280,420")
    ap.add_argument("--chromium", default="chromium")
    ap.add_argument("--port", type=int, default=9322, help="DevTools port")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
    browser = subprocess.Popen([a.chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={a.port}",
                                f"--user-data-dir={profile}", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = None
        for _ in range(100):
            try:
                tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{a.port}/json/list"))
                page = Page(next(t["webSocketDebuggerUrl"] for t in tabs if t["type"] == "page"))
                break
            except (OSError, StopIteration):
                time.sleep(0.1)
        if page is None:
            sys.exit("chromium did not start")
        for domain in ("Page", "Runtime", "Log"):
            page.call(domain + ".enable")
        for width in map(int, a.widths.split(",")):
            page.open(a.url, None)
            page.screenshot(f"{a.out}/notoken-{width}.png", width)
            page.open(a.url, "not-a-valid-token")
            page.screenshot(f"{a.out}/badtoken-{width}.png", width)
            if a.token:
                page.open(a.url, a.token)
                time.sleep(a.watch)
                page.screenshot(f"{a.out}/jobs-{width}.png", width)
                for i, name in enumerate(a.job, 1):
                    print(f"{name}: {page.click_job(name)}")
                    page.screenshot(f"{a.out}/job-{i}-{width}.png", width)
        print(page.eval("document.getElementById('rate-note').textContent"))
        for p in page.problems:
            print("PROBLEM", p)
        sys.exit(1 if page.problems else 0)
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
