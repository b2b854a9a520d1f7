/* Histograms in C jobs: decode the stored compact form with the layout the host gives
 * (`telemetry_job_histograms_layout(record_index, &name, &layout)` of the wit-bindgen C
 * bindings), merge histograms of different layouts by bucket bounds, and read percentiles. The
 * same functions as the Rust, JavaScript and Python SDKs', all tested against
 * guest-sdk/histogram-cases.tsv. Header-only, C99, libc only (malloc, strtod, snprintf).
 *
 * A histogram is bucket lower bounds (strictly ascending), one count each, and the sum of the
 * samples. Merging takes the union of the bounds: each count stays at its own lower bound, so
 * totals and sums add up exactly whatever the two layouts were. Functions return 0 on success,
 * -1 on bad input or allocation failure; free results with telemetry_histogram_free. */
#ifndef TELEMETRY_HISTOGRAM_H
#define TELEMETRY_HISTOGRAM_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Statistics after the buckets of a stored compact histogram. */
#define TELEMETRY_HISTOGRAM_STATS 5

typedef struct {
  int64_t *bounds;   /* bucket lower bounds, strictly ascending */
  uint64_t *counts;  /* one count per bound */
  size_t len;
  int64_t sum;       /* sum of the samples (0 when the stored histogram had none) */
} telemetry_histogram;

static inline void telemetry_histogram_free(telemetry_histogram *h) {
  free(h->bounds);
  free(h->counts);
  h->bounds = NULL;
  h->counts = NULL;
  h->len = 0;
}

/* One number of a flat JSON array: [start, end) of its text, and whether it is an integer. */
typedef struct {
  const char *start, *end;
  int integer;
} telemetry_histogram_token_;

/* Splits `[n, n, …]` into its numbers (*items malloc'd). */
static inline int telemetry_histogram_tokens_(const char *text, size_t len,
                                              telemetry_histogram_token_ **items, size_t *n) {
  const char *p = text, *end = text + len;
  *items = NULL;
  *n = 0;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  if (p == end || *p != '[') return -1;
  p++;
  size_t cap = 16;
  telemetry_histogram_token_ *out = malloc(cap * sizeof *out);
  if (!out) return -1;
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if (p < end && *p == ']' && *n == 0) { p++; break; }
    const char *s = p;
    int integer = 1, digits = 0;
    if (p < end && *p == '-') p++;
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-')) {
      if (*p >= '0' && *p <= '9') digits++;
      else integer = 0;
      p++;
    }
    if (!digits) { free(out); return -1; }
    char buf[64];
    size_t tl = (size_t)(p - s);
    if (tl >= sizeof buf) { free(out); return -1; }
    memcpy(buf, s, tl);
    buf[tl] = 0;
    char *stop;
    strtod(buf, &stop);
    if (*stop) { free(out); return -1; }
    if (*n == cap) {
      cap *= 2;
      telemetry_histogram_token_ *grown = realloc(out, cap * sizeof *out);
      if (!grown) { free(out); return -1; }
      out = grown;
    }
    out[(*n)++] = (telemetry_histogram_token_){s, p, integer};
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if (p < end && *p == ',') { p++; continue; }
    if (p < end && *p == ']') { p++; break; }
    free(out);
    return -1;
  }
  *items = out;
  return 0;
}

static inline int64_t telemetry_histogram_int_(const telemetry_histogram_token_ *t) {
  return strtoll(t->start, NULL, 10);
}

/* Parses a flat JSON array of integers (e.g. bounds) into *values (malloc'd). */
static inline int telemetry_histogram_parse_ints(const char *text, size_t len, int64_t **values, size_t *n) {
  telemetry_histogram_token_ *items;
  if (telemetry_histogram_tokens_(text, len, &items, n)) return -1;
  *values = malloc((*n ? *n : 1) * sizeof **values);
  int bad = *values == NULL;
  for (size_t i = 0; !bad && i < *n; i++) {
    if (!items[i].integer) bad = 1;
    else (*values)[i] = telemetry_histogram_int_(&items[i]);
  }
  free(items);
  if (bad) { free(*values); *values = NULL; return -1; }
  return 0;
}

/* Adds `count` at lower bound `bound` (h has room for one more bucket). */
static inline void telemetry_histogram_add_(telemetry_histogram *h, int64_t bound, uint64_t count) {
  size_t lo = 0, hi = h->len;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (h->bounds[mid] < bound) lo = mid + 1; else hi = mid;
  }
  if (lo < h->len && h->bounds[lo] == bound) { h->counts[lo] += count; return; }
  memmove(h->bounds + lo + 1, h->bounds + lo, (h->len - lo) * sizeof *h->bounds);
  memmove(h->counts + lo + 1, h->counts + lo, (h->len - lo) * sizeof *h->counts);
  h->bounds[lo] = bound;
  h->counts[lo] = count;
  h->len++;
}

/* Decodes a stored compact array (JSON text `[b_0, …, b_n-1, sum, …4 more statistics]`) laid out
 * by `bounds` (n of them, from the host). Buckets with equal bounds are added together; a missing
 * sum (-1) reads as 0, a fractional one is rounded toward zero. */
static inline int telemetry_histogram_decode(const char *compact, size_t compact_len, const int64_t *bounds,
                                             size_t n, telemetry_histogram *out) {
  telemetry_histogram_token_ *items;
  size_t count;
  memset(out, 0, sizeof *out);
  if (telemetry_histogram_tokens_(compact, compact_len, &items, &count)) return -1;
  int bad = count != n + TELEMETRY_HISTOGRAM_STATS;
  for (size_t i = 1; !bad && i < n; i++) bad = bounds[i - 1] > bounds[i];
  if (!bad) {
    out->bounds = malloc((n ? n : 1) * sizeof *out->bounds);
    out->counts = malloc((n ? n : 1) * sizeof *out->counts);
    bad = !out->bounds || !out->counts;
  }
  for (size_t i = 0; !bad && i < n; i++) {
    if (!items[i].integer || items[i].start[0] == '-') bad = 1;
    else telemetry_histogram_add_(out, bounds[i], strtoull(items[i].start, NULL, 10));
  }
  if (!bad) {
    const telemetry_histogram_token_ *s = &items[n];
    int64_t sum = s->integer ? telemetry_histogram_int_(s) : (int64_t)trunc(strtod(s->start, NULL));
    out->sum = sum == -1 ? 0 : sum;
  }
  free(items);
  if (bad) { telemetry_histogram_free(out); return -1; }
  return 0;
}

/* Both histograms in one: the union of their bounds, counts added at equal bounds. */
static inline int telemetry_histogram_merge(const telemetry_histogram *a, const telemetry_histogram *b,
                                            telemetry_histogram *out) {
  size_t cap = a->len + b->len ? a->len + b->len : 1, i = 0, j = 0;
  out->bounds = malloc(cap * sizeof *out->bounds);
  out->counts = malloc(cap * sizeof *out->counts);
  out->len = 0;
  out->sum = a->sum + b->sum;
  if (!out->bounds || !out->counts) { telemetry_histogram_free(out); return -1; }
  while (i < a->len || j < b->len) {
    int take_a = i < a->len && (j >= b->len || a->bounds[i] <= b->bounds[j]);
    int take_b = j < b->len && (i >= a->len || b->bounds[j] <= a->bounds[i]);
    int64_t bound = take_a ? a->bounds[i] : b->bounds[j];
    uint64_t count = 0;
    if (take_a) count += a->counts[i++];
    if (take_b) count += b->counts[j++];
    out->bounds[out->len] = bound;
    out->counts[out->len++] = count;
  }
  return 0;
}

/* Number of samples (the sum of the counts). */
static inline uint64_t telemetry_histogram_total(const telemetry_histogram *h) {
  uint64_t total = 0;
  for (size_t i = 0; i < h->len; i++) total += h->counts[i];
  return total;
}

/* The lower bound of the bucket holding the p-th percentile (0 <= p <= 100) in *bound: the first
 * bucket where the running count reaches max(1, ceil(total * p / 100)). -1 for an empty histogram
 * or a p out of range. */
static inline int telemetry_histogram_percentile(const telemetry_histogram *h, double p, int64_t *bound) {
  uint64_t total = telemetry_histogram_total(h), running = 0;
  if (total == 0 || !(p >= 0 && p <= 100)) return -1;
  uint64_t rank = (uint64_t)ceil((double)total * p / 100.0);
  if (rank < 1) rank = 1;
  for (size_t i = 0; i < h->len; i++) {
    running += h->counts[i];
    if (running >= rank) { *bound = h->bounds[i]; return 0; }
  }
  *bound = h->bounds[h->len - 1];
  return 0;
}

/* Writes `{"bounds":[…],"counts":[…],"sum":N}` (the same text in every SDK) into buf like
 * snprintf: returns the length it needs, writes at most cap bytes including the NUL. */
static inline size_t telemetry_histogram_to_json(const telemetry_histogram *h, char *buf, size_t cap) {
  size_t len = 0;
#define TELEMETRY_HISTOGRAM_PUT_(...) do { \
    int w_ = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, __VA_ARGS__); \
    len += w_ > 0 ? (size_t)w_ : 0; } while (0)
  TELEMETRY_HISTOGRAM_PUT_("{\"bounds\":[");
  for (size_t i = 0; i < h->len; i++) TELEMETRY_HISTOGRAM_PUT_("%s%lld", i ? "," : "", (long long)h->bounds[i]);
  TELEMETRY_HISTOGRAM_PUT_("],\"counts\":[");
  for (size_t i = 0; i < h->len; i++) TELEMETRY_HISTOGRAM_PUT_("%s%llu", i ? "," : "", (unsigned long long)h->counts[i]);
  TELEMETRY_HISTOGRAM_PUT_("],\"sum\":%lld}", (long long)h->sum);
#undef TELEMETRY_HISTOGRAM_PUT_
  return len;
}

/* Reads what telemetry_histogram_to_json wrote (members in any order). */
static inline int telemetry_histogram_from_json(const char *text, telemetry_histogram *out) {
  const char *b = strstr(text, "\"bounds\""), *c = strstr(text, "\"counts\""), *s = strstr(text, "\"sum\"");
  memset(out, 0, sizeof *out);
  if (!b || !c || !s) return -1;
  b = strchr(b, '[');
  c = strchr(c, '[');
  s = strchr(s, ':');
  const char *be = b ? strchr(b, ']') : NULL, *ce = c ? strchr(c, ']') : NULL;
  if (!be || !ce || !s) return -1;
  int64_t *counts;
  size_t nb, nc;
  if (telemetry_histogram_parse_ints(b, (size_t)(be - b + 1), &out->bounds, &nb)) return -1;
  if (telemetry_histogram_parse_ints(c, (size_t)(ce - c + 1), &counts, &nc)) { telemetry_histogram_free(out); return -1; }
  int bad = nb != nc;
  for (size_t i = 0; !bad && i < nb; i++) bad = counts[i] < 0 || (i && out->bounds[i - 1] >= out->bounds[i]);
  out->counts = (uint64_t *)counts; /* same size; non-negative checked */
  out->len = nb;
  out->sum = strtoll(s + 1, NULL, 10);
  if (bad) { telemetry_histogram_free(out); return -1; }
  return 0;
}

#endif
