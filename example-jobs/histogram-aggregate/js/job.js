// histogram-aggregate in JavaScript: the same job as ../rust (one histogram per channel and
// version, or per channel with `NAME:channel`, or one with `NAME:all`, merged by bucket bounds
// across builds' layouts), built with componentize-qjs by scripts/build-guests.sh; the same output.
import { defineJob, emit, histogramPercentile, mergeHistograms } from "../../../guest-sdk/js/telemetry-job.js";

const KEYS = { "": (channel, version) => `${channel},${version}`, ":channel": (channel) => channel, ":all": () => "all" };

function parse(param) {
  const [, name, by] = /^([^:]*)(:.*)?$/s.exec(param.trim());
  if (!((by ?? "") in KEYS)) throw new Error(`unknown grouping ${JSON.stringify(by.slice(1))}: use :channel or :all`);
  if (!/^\w+$/.test(name)) throw new Error(`parameter must be a histogram name such as CYCLE_COLLECTOR, got ${JSON.stringify(param)}`);
  return { name, key: KEYS[by ?? ""] };
}

export const job = defineJob({
  init: parse,
  fields: (param) => {
    const { name } = parse(param);
    return [`/payload/histograms/${name}`, `/histograms/${name}`, "/application/channel", "/info/appUpdateChannel", "/application/version", "/info/appVersion"];
  },
  map(record, { name, key }) {
    const field = record.json(0) !== null ? 0 : 1;
    const k = key(record.firstText(2, 3) ?? "UNKNOWN", record.firstText(4, 5) ?? "UNKNOWN");
    const histogram = record.histogram(field, name);
    // Unconverted documents hold the histogram as an object: not counted.
    if (histogram !== null) emit(k, JSON.stringify({ submissions: 1, histogram }));
    else if (record.json(field)?.startsWith("[")) emit(k, JSON.stringify({ unknown_layout: 1 }));
  },
  combine: (key, values) => JSON.stringify(merge(values)),
  reduce(key, values) {
    const { submissions, unknown_layout, histogram } = merge(values);
    const [median, p95] = [histogramPercentile(histogram, 50), histogramPercentile(histogram, 95)];
    return JSON.stringify({ histogram, median, p95, submissions, ...(unknown_layout ? { unknown_layout } : {}) });
  },
});

/** Merges partial aggregates: counters add up, histograms merge by bucket bounds. */
function merge(values) {
  const out = { submissions: 0, unknown_layout: 0, histogram: { bounds: [], counts: [], sum: 0 } };
  for (const v of values.map((text) => JSON.parse(text))) {
    out.submissions += v.submissions ?? 0;
    out.unknown_layout += v.unknown_layout ?? 0;
    if (v.histogram) out.histogram = mergeHistograms(out.histogram, v.histogram);
  }
  return out;
}
