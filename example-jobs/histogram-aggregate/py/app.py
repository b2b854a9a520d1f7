"""histogram-aggregate in Python: the same job as ../rust (one histogram per channel and version,
or per channel with ``NAME:channel``, or one with ``NAME:all``, merged by bucket bounds across
builds' layouts), built with componentize-py by scripts/build-guests.sh; the same output."""

import json
import re

from telemetry_job import Histogram, MapReduceJob, emit, histogram_percentile, merge_histograms

KEYS = {None: lambda c, v: f"{c},{v}", "channel": lambda c, v: c, "all": lambda c, v: "all"}


class Job(MapReduceJob):
    def init(self, param):
        self.name, _, by = param.strip().partition(":")
        by = by if ":" in param else None
        if by not in KEYS:
            raise ValueError(f"unknown grouping {json.dumps(by)}: use :channel or :all")
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.name):
            raise ValueError(f"parameter must be a histogram name such as CYCLE_COLLECTOR, got {json.dumps(param)}")
        self.key = KEYS[by]
        self.fields = [f"/payload/histograms/{self.name}", f"/histograms/{self.name}", "/application/channel",
                       "/info/appUpdateChannel", "/application/version", "/info/appVersion"]

    def map(self, record):
        field = 0 if record.json(0) is not None else 1
        key = self.key(record.first_text(2, 3) or "UNKNOWN", record.first_text(4, 5) or "UNKNOWN")
        histogram = record.histogram(field, self.name)
        # Unconverted documents hold the histogram as an object: not counted.
        if histogram is not None:
            emit(key, json.dumps({"submissions": 1, "histogram": histogram._asdict()}))
        elif (record.json(field) or "").startswith("["):
            emit(key, json.dumps({"unknown_layout": 1}))

    def combine(self, key, values):
        submissions, unknown, histogram = merge(values)
        return json.dumps({"submissions": submissions, "unknown_layout": unknown, "histogram": histogram._asdict()})

    def reduce(self, key, values):
        submissions, unknown, histogram = merge(values)
        out = {"histogram": histogram._asdict(), "median": histogram_percentile(histogram, 50),
               "p95": histogram_percentile(histogram, 95), "submissions": submissions}
        if unknown:
            out["unknown_layout"] = unknown
        return json.dumps(out, separators=(",", ":"))


def merge(values):
    """Merges partial aggregates: counters add up, histograms merge by bucket bounds."""
    submissions, unknown, histogram = 0, 0, Histogram([], [], 0)
    for v in map(json.loads, values):
        submissions += v.get("submissions", 0)
        unknown += v.get("unknown_layout", 0)
        if "histogram" in v:
            histogram = merge_histograms(histogram, Histogram(**v["histogram"]))
    return submissions, unknown, histogram
