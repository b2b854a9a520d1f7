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
import argparse, os, sys, time

from dashboard_cdp import Browser


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
    with Browser(a.chromium, a.port) as browser:
        page = browser.page
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
        # The bad-token shots answer 401 on purpose: only script and policy errors count here.
        problems = page.exceptions + page.security
        for p in problems:
            print("PROBLEM", p)
        sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
