// telemetry_job.h: write a Telemetry Server MapReduce job in C (header only).
//
// Helpers over the C bindings wit-bindgen generates from wit/job.wit (`mapreduce.h`): field
// access, emit, log, sum, and one macro that registers the job's functions and exports the
// `telemetry:job/job` interface. The same vocabulary as the Rust, JavaScript and Python SDKs:
// init, map, combine, reduce, emit, log, sum, text, first_text, json, payload, combine_threshold,
// histogram_layout, histogram (with telemetry_histogram.h's decode, merge and percentiles).
//
//   #include "telemetry_job.h"
//
//   static const char *map(const tj_record *r) {
//     tj_emit(tj_or(tj_text(r, 0), "UNKNOWN"), tj_cstr("1"));
//     return NULL;                                   // or an error message: fails the record
//   }
//   TELEMETRY_JOB(.fields = TJ_FIELDS("/environment/system/os/name"), .map = map,
//                 .combine = tj_sum, .reduce = tj_sum);
//
// A job has a combine (reduce) phase exactly when it registers a `combine` (`reduce`) function;
// without `reduce` it is map-only. Strings are `tj_str` (pointer + length, not NUL-terminated):
// print them with "%.*s" and TJ_FMT(s). Memory: the SDK frees what the host passed in;
// `combine` and `reduce` return a malloc'd NUL-terminated string (tj_format, tj_sum), which the
// SDK hands to the host and frees. Build: see docs/jobs/c.md (wit-bindgen c, clang --target=wasm32-wasi).
// The contract itself (call order, semantics, sandbox) is documented in wit/job.wit.
#ifndef TELEMETRY_JOB_H
#define TELEMETRY_JOB_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapreduce.h"
#include "telemetry_histogram.h"

/// A string from or to the host: `ptr` + `len` bytes of UTF-8, not NUL-terminated. `ptr` is NULL
/// for "no value" (a missing field in tj_text).
typedef mapreduce_string_t tj_str;
/// One field value as the host extracted it (tags TJ_MISSING … TJ_JSON).
typedef exports_telemetry_job_job_field_t tj_field;

enum { TJ_MISSING = EXPORTS_TELEMETRY_JOB_JOB_FIELD_MISSING, TJ_NULL = EXPORTS_TELEMETRY_JOB_JOB_FIELD_NULL,
       TJ_BOOLEAN = EXPORTS_TELEMETRY_JOB_JOB_FIELD_BOOLEAN, TJ_NUMBER = EXPORTS_TELEMETRY_JOB_JOB_FIELD_NUMBER,
       TJ_TEXT = EXPORTS_TELEMETRY_JOB_JOB_FIELD_TEXT, TJ_JSON = EXPORTS_TELEMETRY_JOB_JOB_FIELD_JSON };

/// Log levels for tj_log.
enum { TJ_ERROR = TELEMETRY_JOB_HOST_LEVEL_ERROR, TJ_WARN = TELEMETRY_JOB_HOST_LEVEL_WARN,
       TJ_INFO = TELEMETRY_JOB_HOST_LEVEL_INFO, TJ_DEBUG = TELEMETRY_JOB_HOST_LEVEL_DEBUG };

/// One stored document as the job sees it.
typedef struct tj_record {
  tj_str id;            ///< The document id.
  const tj_str *dims;   ///< Dimensions of the partition file (reason, appName, channel, version, build id, date).
  size_t ndims;
  const tj_field *fields; ///< One value per pointer declared in `fields`, in that order.
  size_t nfields;
  tj_str payload;       ///< The whole JSON document if `.payload = true`, else empty.
  uint32_t index;       ///< Position of the record in its batch (what the host's histogram lookup takes).
} tj_record;

/// The job, registered with TELEMETRY_JOB(...). Only `map` is required.
typedef struct tj_job {
  /// JSON pointers to extract from every document, NULL-terminated (TJ_FIELDS(...)).
  const char *const *fields;
  /// Pass the whole document in `record->payload` (slower; prefer fields).
  bool payload;
  /// Values a key collects before `combine` (0 = host default, 50).
  uint32_t combine_threshold;
  /// Checks the job parameter (empty if none): NULL, or an error message that fails the job.
  const char *(*init)(tj_str param);
  /// Maps one record, calling tj_emit for each pair: NULL, or an error message failing the record.
  const char *(*map)(const tj_record *record);
  /// Combines values of one key into one (associative, commutative): a malloc'd string.
  char *(*combine)(tj_str key, const tj_str *values, size_t n);
  /// Reduces all values of one key to the output value: a malloc'd string.
  char *(*reduce)(tj_str key, const tj_str *values, size_t n);
} tj_job;

/// A NULL-terminated list of JSON pointers for `.fields`.
#define TJ_FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})
/// The arguments "%.*s" takes for a tj_str.
#define TJ_FMT(s) (int)(s).len, (const char *)(s).ptr

/// A tj_str over a NUL-terminated C string (not copied).
static inline tj_str tj_cstr(const char *s) {
  return (tj_str){(uint8_t *)s, strlen(s)};
}

/// Whether `s` has a value (tj_text and friends return a NULL `ptr` for none).
static inline bool tj_some(tj_str s) {
  return s.ptr != NULL;
}

/// `s`, or `fallback` when `s` has no value.
static inline tj_str tj_or(tj_str s, const char *fallback) {
  return tj_some(s) ? s : tj_cstr(fallback);
}

/// Whether `s` equals the C string `c`.
static inline bool tj_eq(tj_str s, const char *c) {
  return tj_some(s) && s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

/// Field `i` as text: a JSON string, or a number/boolean as written; no value (NULL `ptr`) if
/// missing, null, an object or an array.
static inline tj_str tj_text(const tj_record *r, size_t i) {
  static const char yes[] = "true", no[] = "false";
  if (i >= r->nfields) return (tj_str){NULL, 0};
  const tj_field *f = &r->fields[i];
  switch (f->tag) {
  case TJ_TEXT: return f->val.text;
  case TJ_NUMBER: return f->val.number;
  case TJ_BOOLEAN: return f->val.boolean ? tj_cstr(yes) : tj_cstr(no);
  default: return (tj_str){NULL, 0};
  }
}

/// The first of fields `indexes` that has a text value (for data whose shape changed over time,
/// e.g. `/info/OS` in classic pings and `/environment/system/os/name` in v4).
static inline tj_str tj_first_text_of(const tj_record *r, const size_t *indexes, size_t n) {
  for (size_t k = 0; k < n; k++) {
    tj_str s = tj_text(r, indexes[k]);
    if (tj_some(s)) return s;
  }
  return (tj_str){NULL, 0};
}
/// tj_first_text(r, 0, 1): the first of the fields given that has a text value.
#define tj_first_text(r, ...) \
  tj_first_text_of((r), (const size_t[]){__VA_ARGS__}, sizeof((const size_t[]){__VA_ARGS__}) / sizeof(size_t))

/// Field `i` as raw JSON text when it is an object or an array, else no value.
static inline tj_str tj_json(const tj_record *r, size_t i) {
  if (i < r->nfields && r->fields[i].tag == TJ_JSON) return r->fields[i].val.json;
  return (tj_str){NULL, 0};
}

/// How histogram `name` is laid out in this record (kind, bucket lower bounds), from the
/// definitions of the build that sent it: true and *layout filled (free it with
/// telemetry_job_histograms_histogram_layout_free), or false if the host knows none.
static inline bool tj_histogram_layout(const tj_record *r, const char *name,
                                       telemetry_job_histograms_histogram_layout_t *layout) {
  tj_str n = tj_cstr(name);
  return telemetry_job_histograms_layout(r->index, &n, layout);
}

/// Histogram `name` whose stored compact array is field `i`, decoded with this record's layout
/// into *h (free it with telemetry_histogram_free): 1 when decoded; 0 when the field is not an
/// array (absent, or an unconverted document) or no layout is known; -1 when the array does not
/// fit the layout.
static inline int tj_histogram(const tj_record *r, size_t i, const char *name, telemetry_histogram *h) {
  tj_str compact = tj_json(r, i);
  size_t at = 0;
  while (at < compact.len && strchr(" \t\r\n", compact.ptr[at])) at++;
  if (at == compact.len || compact.ptr[at] != '[') return 0;
  telemetry_job_histograms_histogram_layout_t layout;
  if (!tj_histogram_layout(r, name, &layout)) return 0;
  int bad = telemetry_histogram_decode((const char *)compact.ptr, compact.len, layout.bounds.ptr, layout.bounds.len, h);
  telemetry_job_histograms_histogram_layout_free(&layout);
  return bad ? -1 : 1;
}

/// printf into a malloc'd string (aborts if out of memory).
static inline char *tj_vformat(const char *fmt, va_list args) {
  va_list again;
  va_copy(again, args);
  int n = vsnprintf(NULL, 0, fmt, args);
  char *s = n < 0 ? NULL : malloc((size_t)n + 1);
  if (!s) abort();
  vsnprintf(s, (size_t)n + 1, fmt, again);
  va_end(again);
  return s;
}

/// printf into a malloc'd string: what `combine` and `reduce` return.
static inline char *tj_format(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  char *s = tj_vformat(fmt, args);
  va_end(args);
  return s;
}

/// Produces one intermediate `(key, value)` pair (only valid inside `map`).
static inline void tj_emit(tj_str key, tj_str value) {
  telemetry_job_host_emit(&key, &value);
}

/// tj_emit with the key built by printf: `tj_emitf("1", "%.*s,%.*s", TJ_FMT(os), TJ_FMT(v))`.
static inline void tj_emitf(const char *value, const char *key_fmt, ...) {
  va_list args;
  va_start(args, key_fmt);
  char *key = tj_vformat(key_fmt, args);
  va_end(args);
  tj_emit(tj_cstr(key), tj_cstr(value));
  free(key);
}

/// `{"bounds":[…],"counts":[…],"sum":N}` of `h` (telemetry_histogram_to_json) as a malloc'd string.
static inline char *tj_histogram_json(const telemetry_histogram *h) {
  size_t n = telemetry_histogram_to_json(h, NULL, 0);
  char *s = malloc(n + 1);
  if (!s) abort();
  telemetry_histogram_to_json(h, s, n + 1);
  return s;
}

/// Appends a printf-formatted line to the job log at `level` (TJ_ERROR … TJ_DEBUG).
static inline void tj_log(int level, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  char *line = tj_vformat(fmt, args);
  va_end(args);
  tj_str message = tj_cstr(line);
  telemetry_job_host_log((telemetry_job_host_level_t)level, &message);
  free(line);
}

/// Sum of decimal integer values as a malloc'd decimal string; values that are not
/// non-negative integers count as 0. Fits `.combine` and `.reduce` as it is.
static inline char *tj_sum(tj_str key, const tj_str *values, size_t n) {
  (void)key;
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t v = 0;
    size_t j = 0;
    for (; j < values[i].len && values[i].ptr[j] >= '0' && values[i].ptr[j] <= '9'; j++)
      v = v * 10 + (uint64_t)(values[i].ptr[j] - '0');
    if (j == values[i].len && j > 0) total += v;
  }
  return tj_format("%" PRIu64, total);
}

// --- the `telemetry:job/job` export (used by TELEMETRY_JOB) -----------------------------------

static inline bool tj__init(const tj_job *job, tj_str *param, exports_telemetry_job_job_job_spec_t *ret, tj_str *err) {
  const char *failed = job->init ? job->init(*param) : NULL;
  mapreduce_string_free(param);
  if (failed) {
    mapreduce_string_dup(err, failed);
    return false;
  }
  size_t n = 0;
  while (job->fields && job->fields[n]) n++;
  ret->fields.len = n;
  ret->fields.ptr = n ? malloc(n * sizeof(tj_str)) : NULL;
  if (n && !ret->fields.ptr) abort();
  for (size_t i = 0; i < n; i++) mapreduce_string_dup(&ret->fields.ptr[i], job->fields[i]);
  ret->wants_payload = job->payload;
  ret->has_combine = job->combine != NULL;
  ret->combine_threshold = job->combine_threshold;
  ret->has_reduce = job->reduce != NULL;
  return true;
}

static inline bool tj__map_batch(const tj_job *job, mapreduce_list_string_t *dims,
                                 exports_telemetry_job_job_list_data_record_t *records, tj_str *err) {
  bool ok = true;
  for (size_t i = 0; i < records->len && ok; i++) {
    const exports_telemetry_job_job_data_record_t *d = &records->ptr[i];
    tj_record r = {d->id, dims->ptr, dims->len, d->fields.ptr, d->fields.len, d->payload, (uint32_t)i};
    const char *failed = job->map(&r);
    if (failed) {
      char *message = tj_format("record %.*s: %s", TJ_FMT(d->id), failed);
      *err = tj_cstr(message); // the bindings free it
      ok = false;
    }
  }
  mapreduce_list_string_free(dims);
  exports_telemetry_job_job_list_data_record_free(records);
  return ok;
}

/// Calls `f` (or joins the values with "," when the job has none, like the other SDKs).
static inline void tj__fold(char *(*f)(tj_str, const tj_str *, size_t), const char *what, tj_str *key,
                            mapreduce_list_string_t *values, tj_str *ret) {
  char *out;
  if (f) {
    out = f(*key, values->ptr, values->len);
    if (!out) {
      tj_log(TJ_ERROR, "%s(%.*s) returned NULL", what, TJ_FMT(*key));
      abort();
    }
  } else {
    size_t len = 0;
    for (size_t i = 0; i < values->len; i++) len += values->ptr[i].len + 1;
    out = malloc(len + 1);
    if (!out) abort();
    size_t at = 0;
    for (size_t i = 0; i < values->len; i++) {
      if (i) out[at++] = ',';
      memcpy(out + at, values->ptr[i].ptr, values->ptr[i].len);
      at += values->ptr[i].len;
    }
    out[at] = 0;
  }
  *ret = tj_cstr(out); // the bindings free it
  mapreduce_string_free(key);
  mapreduce_list_string_free(values);
}

/// Registers the job (fields of tj_job, designated: `.fields = ..., .map = ...`) and exports the
/// component's `telemetry:job/job` functions. Use once per job, in one .c file.
#define TELEMETRY_JOB(...)                                                                                 \
  static const tj_job tj_the_job = {__VA_ARGS__};                                                         \
  bool exports_telemetry_job_job_init(tj_str *param, exports_telemetry_job_job_job_spec_t *ret, tj_str *err) { \
    return tj__init(&tj_the_job, param, ret, err);                                                        \
  }                                                                                                        \
  bool exports_telemetry_job_job_map_batch(mapreduce_list_string_t *dims,                                  \
                                           exports_telemetry_job_job_list_data_record_t *records, tj_str *err) { \
    return tj__map_batch(&tj_the_job, dims, records, err);                                                \
  }                                                                                                        \
  void exports_telemetry_job_job_combine(tj_str *key, mapreduce_list_string_t *values, tj_str *ret) {     \
    tj__fold(tj_the_job.combine, "combine", key, values, ret);                                            \
  }                                                                                                        \
  void exports_telemetry_job_job_reduce(tj_str *key, mapreduce_list_string_t *values, tj_str *ret) {      \
    tj__fold(tj_the_job.reduce, "reduce", key, values, ret);                                              \
  }

#endif
