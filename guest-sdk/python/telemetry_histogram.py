"""Histograms in jobs: decode the stored compact form with the layout the host gives
(``Record.histogram_layout(name)``), merge histograms of different layouts by bucket bounds, and
read percentiles. The same functions as the Rust, JavaScript and C SDKs', all tested against
guest-sdk/histogram-cases.tsv. Plain Python, no imports from the component bindings.

A histogram is a ``Histogram(bounds, counts, sum)``: bucket lower bounds (strictly ascending),
one count each, and the sum of the samples. Merging takes the union of the bounds: each count
stays at its own lower bound, so totals and sums add up exactly whatever the two layouts were.
"""

import bisect
import json
import math
from typing import List, NamedTuple, Optional, Sequence, Union

#: Statistics after the buckets of a stored compact histogram.
STATS = 5


class Histogram(NamedTuple):
    bounds: List[int]
    counts: List[int]
    sum: int


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def decode_histogram(compact: Union[str, Sequence[float]], bounds: Sequence[int]) -> Histogram:
    """Decodes a stored compact array (``[b_0, …, b_n-1, sum, …4 more statistics]``, parsed or as
    JSON text) laid out by ``bounds``. Buckets with equal bounds are added together; a missing sum
    (-1) reads as 0, a fractional one is rounded toward zero. Raises ValueError on a bad array."""
    items = json.loads(compact) if isinstance(compact, str) else compact
    if not isinstance(items, list) or not all(_is_number(x) for x in items):
        raise ValueError("decode_histogram: the compact form is an array of numbers")
    if len(items) != len(bounds) + STATS:
        raise ValueError(
            f"decode_histogram: {len(items)} entries, the layout has {len(bounds)} buckets + {STATS} statistics"
        )
    if any(a > b for a, b in zip(bounds, bounds[1:])):
        raise ValueError("decode_histogram: bucket bounds are not ascending")
    out_bounds: List[int] = []
    counts: List[int] = []
    for bound, count in zip(bounds, items):
        if isinstance(count, float) or count < 0:
            raise ValueError(f"decode_histogram: bucket count {count} is not a non-negative integer")
        i = bisect.bisect_left(out_bounds, bound)
        if i < len(out_bounds) and out_bounds[i] == bound:
            counts[i] += count
        else:
            out_bounds.insert(i, int(bound))
            counts.insert(i, count)
    s = items[len(bounds)]
    return Histogram(out_bounds, counts, 0 if s == -1 else int(s))


def merge_histograms(a: Histogram, b: Histogram) -> Histogram:
    """Both histograms in one: the union of their bounds, counts added at equal bounds."""
    bounds: List[int] = []
    counts: List[int] = []
    i = j = 0
    while i < len(a.bounds) or j < len(b.bounds):
        x = a.bounds[i] if i < len(a.bounds) else math.inf
        y = b.bounds[j] if j < len(b.bounds) else math.inf
        bound = min(x, y)
        count = 0
        if x == bound:
            count += a.counts[i]
            i += 1
        if y == bound:
            count += b.counts[j]
            j += 1
        bounds.append(bound)
        counts.append(count)
    return Histogram(bounds, counts, a.sum + b.sum)


def histogram_total(h: Histogram) -> int:
    """Number of samples (the sum of the counts)."""
    return sum(h.counts)


def histogram_percentile(h: Histogram, p: float) -> Optional[int]:
    """The lower bound of the bucket holding the ``p``-th percentile (0 ≤ p ≤ 100): the first
    bucket where the running count reaches max(1, ceil(total × p / 100)); None for an empty
    histogram or a ``p`` out of range."""
    total = histogram_total(h)
    if total == 0 or not 0 <= p <= 100:
        return None
    rank = max(1, math.ceil(float(total) * p / 100))
    running = 0
    for bound, count in zip(h.bounds, h.counts):
        running += count
        if running >= rank:
            return bound
    return h.bounds[-1]


def histogram_to_json(h: Histogram) -> str:
    """``{"bounds":[…],"counts":[…],"sum":N}``, the same text in every SDK."""
    return json.dumps({"bounds": h.bounds, "counts": h.counts, "sum": h.sum}, separators=(",", ":"))


def histogram_from_json(text: str) -> Histogram:
    """Reads what ``histogram_to_json`` wrote."""
    v = json.loads(text)
    bounds, counts, s = v.get("bounds"), v.get("counts"), v.get("sum")
    ok = isinstance(bounds, list) and isinstance(counts, list) and len(bounds) == len(counts)
    if not ok or not isinstance(s, int) or any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ValueError("histogram_from_json: expected {bounds (strictly ascending), counts (one each), sum}")
    return Histogram(bounds, counts, s)
