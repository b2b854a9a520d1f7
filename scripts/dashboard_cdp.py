"""The dashboard page in headless Chromium over the DevTools protocol (Python standard library only;
needs a `chromium` binary, e.g. Debian's `apt-get install chromium`). Shared by
scripts/dashboard-screenshots.py (screenshots by hand) and scripts/dashboard-browser-test.py (the
check in scripts/test.sh).

`Browser(chromium, port)` starts a headless browser with a fresh profile and connects to its tab;
its `page` records what went wrong while it ran: uncaught script errors (`exceptions`),
Content-Security-Policy violations (`security`), console errors (`console_errors`) and requests that
failed or got a 4xx/5xx answer (`failed_requests`).
"""
import base64, json, os, shutil, socket, struct, subprocess, tempfile, time, urllib.request

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
        self.next_id = 0
        self.exceptions, self.security, self.console_errors, self.failed_requests = [], [], [], []
        self._urls = {}  # request id -> URL, for failed requests

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
            if "method" in m:
                self._event(m["method"], m["params"])
            elif m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    def _event(self, method, p):
        if method == "Runtime.exceptionThrown":
            self.exceptions.append("script error: " + json.dumps(p["exceptionDetails"])[:300])
        elif method == "Log.entryAdded" and p["entry"]["source"] == "security":
            self.security.append("security: " + p["entry"]["text"])
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.console_errors.append(f"{p['entry']['source']}: {p['entry']['text']} {p['entry'].get('url', '')}")
        elif method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            self.console_errors.append("console." + p["type"] + ": " + json.dumps(p["args"])[:300])
        elif method == "Network.requestWillBeSent":
            self._urls[p["requestId"]] = p["request"]["url"]
        elif method == "Network.responseReceived" and p["response"]["status"] >= 400:
            self.failed_requests.append(f"{p['response']['status']} {p['response']['url']}")
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            self.failed_requests.append(f"{p['errorText']} {self._urls.get(p['requestId'], p['requestId'])}")

    def problems(self):
        """Everything recorded so far, one line each."""
        return self.exceptions + self.security + self.console_errors + self.failed_requests

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


class Browser:
    """Headless Chromium with a fresh profile and one tab (`page`); a context manager that kills it."""

    def __init__(self, chromium="chromium", port=9322):
        self.profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
        self.process = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={port}",
                                         f"--user-data-dir={self.profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.page = None
        for _ in range(300):
            try:
                tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
                self.page = Page(next(t["webSocketDebuggerUrl"] for t in tabs if t["type"] == "page"))
                break
            except (OSError, StopIteration):
                time.sleep(0.1)
        if self.page is None:
            self.close()
            raise RuntimeError("chromium did not start")
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.page.call(domain + ".enable")

    def close(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
