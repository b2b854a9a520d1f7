// histogram-aggregate in C: the same job as ../rust (one histogram per channel and version, or
// per channel with `NAME:channel`, or one with `NAME:all`, merged by bucket bounds across
// builds' layouts), on guest-sdk/c/telemetry_job.h, with the same output. Between map, combine
// and reduce a value travels as `SUBMISSIONS UNKNOWN_LAYOUT [HISTOGRAM_JSON]`.
#include <ctype.h>

#include "telemetry_job.h"

static char name[100], payload_field[128], classic_field[128], error[200];
static const char *fields[] = {payload_field, classic_field, "/application/channel", "/info/appUpdateChannel",
                               "/application/version", "/info/appVersion", NULL};
static enum { CHANNEL_VERSION, CHANNEL, ALL, UNKNOWN_GROUPING } by;

static const char *init(tj_str param) {
  while (param.len && isspace(param.ptr[0])) param.ptr++, param.len--;
  while (param.len && isspace(param.ptr[param.len - 1])) param.len--;
  const uint8_t *colon = memchr(param.ptr, ':', param.len);
  size_t n = colon ? (size_t)(colon - param.ptr) : param.len;
  tj_str group = colon ? (tj_str){(uint8_t *)colon + 1, param.len - n - 1} : tj_cstr("");
  by = !colon ? CHANNEL_VERSION : tj_eq(group, "channel") ? CHANNEL : tj_eq(group, "all") ? ALL : UNKNOWN_GROUPING;
  if (by == UNKNOWN_GROUPING)
    return snprintf(error, sizeof error, "unknown grouping \"%.*s\": use :channel or :all", TJ_FMT(group)), error;
  int ok = n > 0 && n < sizeof name;
  for (size_t i = 0; i < n; i++) ok = ok && (isalnum(param.ptr[i]) || param.ptr[i] == '_');
  if (!ok)
    return snprintf(error, sizeof error, "parameter must be a histogram name such as CYCLE_COLLECTOR, got \"%.*s\"",
                    TJ_FMT(param)), error;
  snprintf(name, sizeof name, "%.*s", (int)n, (const char *)param.ptr);
  snprintf(payload_field, sizeof payload_field, "/payload/histograms/%s", name);
  snprintf(classic_field, sizeof classic_field, "/histograms/%s", name);
  return NULL;
}

static const char *map(const tj_record *r) {
  size_t field = tj_some(tj_json(r, 0)) ? 0 : 1;
  tj_str channel = tj_or(tj_first_text(r, 2, 3), "UNKNOWN"), version = tj_or(tj_first_text(r, 4, 5), "UNKNOWN");
  char *key = by == ALL       ? tj_format("all")
              : by == CHANNEL ? tj_format("%.*s", TJ_FMT(channel))
                              : tj_format("%.*s,%.*s", TJ_FMT(channel), TJ_FMT(version));
  telemetry_histogram h;
  int got = tj_histogram(r, field, name, &h);
  if (got == 1) {
    char *json = tj_histogram_json(&h), *value = tj_format("1 0 %s", json);
    tj_emit(tj_cstr(key), tj_cstr(value));
    free(value), free(json), telemetry_histogram_free(&h);
  } else if (got == 0 && tj_some(tj_json(r, field)) && tj_json(r, field).ptr[0] == '[') {
    tj_emit(tj_cstr(key), tj_cstr("0 1")); // no layout known; unconverted objects are not counted
  }
  free(key);
  return got < 0 ? "the histogram array does not fit its layout" : NULL;
}

typedef struct {
  uint64_t submissions, unknown;
  telemetry_histogram histogram;
} partial;

// Merges partial aggregates: counters add up, histograms merge by bucket bounds.
static partial merge(const tj_str *values, size_t n) {
  partial p = {0};
  for (size_t i = 0; i < n; i++) {
    char *v = tj_format("%.*s", TJ_FMT(values[i])), *end;
    p.submissions += strtoull(v, &end, 10);
    p.unknown += strtoull(end, &end, 10);
    telemetry_histogram h, merged;
    if (*end == ' ' && !telemetry_histogram_from_json(end + 1, &h)) {
      if (telemetry_histogram_merge(&p.histogram, &h, &merged)) abort();
      telemetry_histogram_free(&p.histogram), telemetry_histogram_free(&h);
      p.histogram = merged;
    }
    free(v);
  }
  return p;
}

static char *combine(tj_str key, const tj_str *values, size_t n) {
  (void)key;
  partial p = merge(values, n);
  char *json = tj_histogram_json(&p.histogram);
  char *out = tj_format("%" PRIu64 " %" PRIu64 " %s", p.submissions, p.unknown, json);
  free(json), telemetry_histogram_free(&p.histogram);
  return out;
}

// The lower bound of the p-th percentile's bucket as JSON (null when empty).
static void percentile(const telemetry_histogram *h, double p, char out[24]) {
  int64_t bound;
  if (telemetry_histogram_percentile(h, p, &bound)) strcpy(out, "null");
  else snprintf(out, 24, "%" PRId64, bound);
}

static char *reduce(tj_str key, const tj_str *values, size_t n) {
  (void)key;
  partial p = merge(values, n);
  char *json = tj_histogram_json(&p.histogram), median[24], p95[24], unknown[48] = "";
  percentile(&p.histogram, 50, median), percentile(&p.histogram, 95, p95);
  if (p.unknown) snprintf(unknown, sizeof unknown, ",\"unknown_layout\":%" PRIu64, p.unknown);
  char *out = tj_format("{\"histogram\":%s,\"median\":%s,\"p95\":%s,\"submissions\":%" PRIu64 "%s}", json, median,
                        p95, p.submissions, unknown);
  free(json), telemetry_histogram_free(&p.histogram);
  return out;
}

TELEMETRY_JOB(.fields = fields, .init = init, .map = map, .combine = combine, .reduce = reduce)
