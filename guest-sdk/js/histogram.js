// Histograms in jobs: decode the stored compact form with the layout the host gives
// (`record.histogramLayout(name)`), merge histograms of different layouts by bucket bounds, and
// read percentiles. The same functions as the Rust, Python and C SDKs', all tested against
// guest-sdk/histogram-cases.tsv. Plain JavaScript, no imports, so node can test it.
//
// A histogram is `{bounds, counts, sum}`: bucket lower bounds (strictly ascending), one count
// each, and the sum of the samples. Merging takes the union of the bounds: each count stays at
// its own lower bound, so totals and sums add up exactly whatever the two layouts were.

/** Statistics after the buckets of a stored compact histogram. */
export const STATS = 5;

function add(h, bound, count) {
  let lo = 0;
  let hi = h.bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (h.bounds[mid] < bound) lo = mid + 1;
    else hi = mid;
  }
  if (h.bounds[lo] === bound) h.counts[lo] += count;
  else {
    h.bounds.splice(lo, 0, bound);
    h.counts.splice(lo, 0, count);
  }
}

/** Decodes a stored compact array (`[b_0, …, b_n-1, sum, …4 more statistics]`, parsed or as
 *  JSON text) laid out by `bounds`. Buckets with equal bounds are added together; a missing sum
 *  (-1) reads as 0, a fractional one is rounded toward zero. Throws on a bad array. */
export function decodeHistogram(compact, bounds) {
  const items = typeof compact === "string" ? JSON.parse(compact) : compact;
  if (!Array.isArray(items) || !items.every((x) => typeof x === "number" && Number.isFinite(x))) {
    throw new TypeError("decodeHistogram: the compact form is an array of numbers");
  }
  if (items.length !== bounds.length + STATS) {
    throw new RangeError(`decodeHistogram: ${items.length} entries, the layout has ${bounds.length} buckets + ${STATS} statistics`);
  }
  for (let i = 1; i < bounds.length; i++) {
    if (bounds[i - 1] > bounds[i]) throw new RangeError("decodeHistogram: bucket bounds are not ascending");
  }
  const h = { bounds: [], counts: [], sum: 0 };
  bounds.forEach((bound, i) => {
    const count = items[i];
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`decodeHistogram: bucket count ${count} is not a non-negative integer`);
    add(h, Number(bound), count);
  });
  const sum = items[bounds.length];
  h.sum = sum === -1 ? 0 : Math.trunc(sum);
  return h;
}

/** Both histograms in one: the union of their bounds, counts added at equal bounds. */
export function mergeHistograms(a, b) {
  const out = { bounds: [], counts: [], sum: a.sum + b.sum };
  let i = 0;
  let j = 0;
  while (i < a.bounds.length || j < b.bounds.length) {
    const x = i < a.bounds.length ? a.bounds[i] : Infinity;
    const y = j < b.bounds.length ? b.bounds[j] : Infinity;
    const bound = Math.min(x, y);
    let count = 0;
    if (x === bound) count += a.counts[i++];
    if (y === bound) count += b.counts[j++];
    out.bounds.push(bound);
    out.counts.push(count);
  }
  return out;
}

/** Number of samples (the sum of the counts). */
export function histogramTotal(h) {
  return h.counts.reduce((s, c) => s + c, 0);
}

/** The lower bound of the bucket holding the `p`-th percentile (0 ≤ p ≤ 100): the first bucket
 *  where the running count reaches max(1, ceil(total × p / 100)); null for an empty histogram
 *  or a `p` out of range. */
export function histogramPercentile(h, p) {
  const total = histogramTotal(h);
  if (total === 0 || !(p >= 0 && p <= 100)) return null;
  const rank = Math.max(1, Math.ceil((total * p) / 100));
  let running = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    running += h.counts[i];
    if (running >= rank) return h.bounds[i];
  }
  return h.bounds[h.bounds.length - 1];
}

/** `{"bounds":[…],"counts":[…],"sum":N}`, the same text in every SDK. */
export function histogramToJson(h) {
  return JSON.stringify({ bounds: h.bounds, counts: h.counts, sum: h.sum });
}

/** Reads what `histogramToJson` wrote. */
export function histogramFromJson(text) {
  const v = JSON.parse(text);
  const ok = Array.isArray(v?.bounds) && Array.isArray(v?.counts) && v.bounds.length === v.counts.length && Number.isInteger(v.sum);
  if (!ok || v.bounds.some((b, i) => i > 0 && v.bounds[i - 1] >= b)) {
    throw new TypeError("histogramFromJson: expected {bounds (strictly ascending), counts (one each), sum}");
  }
  return { bounds: v.bounds, counts: v.counts, sum: v.sum };
}
