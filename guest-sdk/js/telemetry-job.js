// telemetry-job: write a Telemetry Server MapReduce job in JavaScript.
//
// A job module exports `job = defineJob({...})`; componentize-qjs turns it into a component of
// the `telemetry:job/mapreduce` world (wit/job.wit). This module wraps the generated bindings:
// records become `Record` objects, exceptions become the job's errors (naming the record), and
// `console.*` goes to the job log (the component has no stdout: WASI is stubbed out).
//
//   import { defineJob, emit, sum } from "./telemetry-job.js";
//   export const job = defineJob({
//     fields: ["/environment/system/os/name"],
//     map(record) { emit(record.text(0) ?? "UNKNOWN", "1"); },
//     combine: (key, values) => sum(values),
//     reduce: (key, values) => sum(values),
//   });
//
// The contract itself (call order, semantics, sandbox) is documented in wit/job.wit.
import host from "telemetry:job/host@0.2.0";
import histograms from "telemetry:job/histograms@0.2.0";
import { decodeHistogram } from "./histogram.js";
export { formatDecimal } from "./decimal.js";
export { decodeHistogram, mergeHistograms, histogramPercentile, histogramTotal, histogramToJson, histogramFromJson } from "./histogram.js";

/** Produces one intermediate `(key, value)` pair (only valid inside `map`). */
export function emit(key, value) {
  if (typeof key !== "string" || typeof value !== "string") {
    throw new TypeError(`emit(key, value) takes two strings, got ${typeof key} and ${typeof value}; convert them, e.g. emit(String(k), String(v))`);
  }
  host.emit(key, value);
}

/** Appends a line to the job log; `level` is "error", "warn", "info" or "debug". */
export function log(level, message) {
  host.log(level, String(message));
}

/** A field as text: a JSON string, or a number/boolean as written; null if missing, null or
 *  an object/array (like the Rust SDK's `Record::text`). */
export function text(field) {
  switch (field?.tag) {
    case "text":
    case "number":
      return field.val;
    case "boolean":
      return field.val ? "true" : "false";
    default:
      return null;
  }
}

/** One stored document as the job sees it. */
export class Record {
  constructor(id, dims, fields, payload) {
    /** The document id. */
    this.id = id;
    /** Dimensions of the partition file (reason, appName, channel, version, build id, date). */
    this.dims = dims;
    /** One `{tag, val}` per pointer declared in `fields` (tags: missing, null, boolean,
     *  number, text, json). */
    this.fields = fields;
    /** The whole JSON document if `payload: true` was declared, else "". */
    this.payload = payload;
  }
  /** Field `i` as text (see `text`). */
  text(i) {
    return text(this.fields[i]);
  }
  /** The first of fields `indexes` that has a text value, or null (for data whose shape changed
   *  over time, e.g. `/info/OS` in classic pings and `/environment/system/os/name` in v4). */
  firstText(...indexes) {
    for (const i of indexes) {
      const t = text(this.fields[i]);
      if (t !== null) return t;
    }
    return null;
  }
  /** Field `i` as raw JSON text when it is an object or an array, else null. */
  json(i) {
    const f = this.fields[i];
    return f?.tag === "json" ? f.val : null;
  }
  /** How histogram `name` is laid out in this record, from the definitions of the build that
   *  sent it: `{kind, low, high, bounds, source}` (bounds: bucket lower bounds, as BigInts from
   *  the host, here Numbers), or null if the host knows none. */
  histogramLayout(name) {
    const layout = histograms.layout(this.index ?? 0, name);
    if (layout == null) return null;
    return { ...layout, low: Number(layout.low), high: Number(layout.high), bounds: Array.from(layout.bounds, Number) };
  }
  /** Histogram `name` whose stored compact array is field `i`, decoded with this record's
   *  layout (see histogram.js); null when the field is not an array or no layout is known. */
  histogram(i, name) {
    const compact = this.json(i);
    if (compact === null || !compact.trimStart().startsWith("[")) return null;
    const layout = this.histogramLayout(name);
    return layout === null ? null : decodeHistogram(JSON.parse(compact), layout.bounds);
  }
}

/** Sum of decimal integer values as a decimal string; values that are not non-negative
 *  integers count as 0. */
export function sum(values) {
  let total = 0;
  for (const v of values) {
    const n = Number(v);
    if (Number.isSafeInteger(n) && n >= 0) total += n;
  }
  return String(total);
}

function message(e) {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Runs `f`, which must return a string (the WIT result type; anything else would trap without a
 *  word); an exception is logged at level error (so the host's error names it) and rethrown. */
function logged(what, f) {
  try {
    const result = f();
    if (typeof result !== "string") {
      const shown = String(typeof result === "object" ? JSON.stringify(result) : result).slice(0, 40);
      throw new TypeError(`${what} must return a string, but returned ${typeof result} ${shown}; convert it, e.g. return String(...)`);
    }
    return result;
  } catch (e) {
    host.log("error", `${what}: ${message(e)}`);
    throw e;
  }
}

/**
 * Builds the `telemetry:job/job` export from a job description:
 *
 * - `fields`: JSON pointers to extract from every document, or a function `(param) => pointers`;
 * - `payload`: pass the whole document in `record.payload` (slower; prefer fields);
 * - `init(param)`: optional; checks the job parameter (throw to reject it) and returns a state
 *   passed to every later call;
 * - `map(record, state)`: required; calls `emit` for each pair (throw to fail the record);
 * - `combine(key, values, state)` / `reduce(key, values, state)`: optional; return a string
 *   (without `reduce` the job is map-only);
 * - `combineThreshold`: values a key collects before `combine` (0 = host default, 50).
 */
export function defineJob({ fields = [], payload = false, init, map, combine, reduce, combineThreshold = 0 }) {
  if (typeof map !== "function") throw new TypeError("defineJob: `map(record, state)` is required");
  let state;
  return {
    init(param) {
      let pointers;
      try {
        state = init ? init(param) : undefined;
        pointers = typeof fields === "function" ? fields(param) : fields;
      } catch (e) {
        throw message(e);
      }
      return {
        fields: Array.from(pointers, String),
        wantsPayload: Boolean(payload),
        hasCombine: typeof combine === "function",
        combineThreshold,
        hasReduce: typeof reduce === "function",
      };
    },
    mapBatch(dims, records) {
      for (const [index, r] of records.entries()) {
        try {
          const record = new Record(r.id, dims, r.fields, r.payload);
          record.index = index;
          map(record, state);
        } catch (e) {
          throw `record ${r.id}: ${message(e)}`;
        }
      }
    },
    combine(key, values) {
      return logged("combine", () => (combine ? combine(key, values, state) : values.join(",")));
    },
    reduce(key, values) {
      return logged("reduce", () => (reduce ? reduce(key, values, state) : values.join(",")));
    },
  };
}

// The component has no stdout/stderr (WASI is stubbed): send console output to the job log.
const toLog = (level) => (...args) => host.log(level, args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
globalThis.console = { log: toLog("info"), info: toLog("info"), debug: toLog("debug"), warn: toLog("warn"), error: toLog("error") };
