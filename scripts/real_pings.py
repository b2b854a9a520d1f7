"""The real pings of ../shared/data/pings that scripts send to a server (the dashboard browser test,
the soak test): each file with the URL dimensions its contents name (docType/app/version/channel/
buildId), whether it is sent gzip-compressed as Firefox does, and only files under the server's
200 KB body limit. `.tsv` files hold `id<TAB>json`; the JSON is sent.
"""
import gzip, os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("TELEMETRY_SHARED_DIR", os.path.join(os.path.dirname(ROOT), "shared"))

PINGS = [
    ("v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json", "saved-session/Firefox/40.0a2/aurora/20150522004047", True),
    ("v4.main.min.pipeline-schemas.json", "main/Firefox/60.0/release/20180101000000", False),
    ("v4.main.Fx60.0a1-nightly.2018-03.gc_sample.pipeline-schemas.json", "main/Firefox/60.0a1/nightly/20180308100151", False),
    ("v4.crash.Fx61.0a1-nightly.2018-04.pipeline-schemas.json", "crash/Firefox/61.0a1/nightly/20180401000000", False),
    ("classic-v1.saved-session.Fx13.0-beta.2012.akela.json", "saved-session/Firefox/13.0/beta/20120516113045", False),
    ("classic-v1.idle-daily.Fx8.0a1.2011.akela.json", "idle-daily/Firefox/8.0a1/nightly/20110809030751", True),
    ("classic-v1.saved-session.Fx21.0a1-nightly.with_hangs.toolbox.tsv", "saved-session/Firefox/21.0a1/nightly/20130108033457", True),
    ("classic-v1.saved-session.Fx21.0a1-default.late_writes.toolbox.tsv", "saved-session/Firefox/21.0a1/default/20130118003332", False),
]


def load():
    """[(dims, body, headers)] for every ping in PINGS."""
    out = []
    for name, dims, compress in PINGS:
        with open(os.path.join(SHARED, "data/pings", name), "rb") as f:
            body = f.read()
        if name.endswith(".tsv"):
            body = body.split(b"\t", 1)[1].rstrip(b"\n")
        headers = {"Content-Type": "application/json"}
        if compress:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        out.append((dims, body, headers))
    return out
