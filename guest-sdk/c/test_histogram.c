/* telemetry_histogram.h over the table every SDK shares:
 *   cc -std=c99 -Wall -Werror -o test_histogram guest-sdk/c/test_histogram.c -lm
 *   ./test_histogram guest-sdk/histogram-cases.tsv */
#include "telemetry_histogram.h"

static int decode(const char *compact, const char *bounds_json, telemetry_histogram *h) {
  int64_t *bounds;
  size_t n;
  if (telemetry_histogram_parse_ints(bounds_json, strlen(bounds_json), &bounds, &n)) return -1;
  int r = telemetry_histogram_decode(compact, strlen(compact), bounds, n, h);
  free(bounds);
  return r;
}

static int same(const telemetry_histogram *a, const telemetry_histogram *b) {
  return a->len == b->len && a->sum == b->sum && !memcmp(a->bounds, b->bounds, a->len * sizeof *a->bounds) &&
         !memcmp(a->counts, b->counts, a->len * sizeof *a->counts);
}

int main(int argc, char **argv) {
  FILE *f = fopen(argc > 1 ? argv[1] : "guest-sdk/histogram-cases.tsv", "r");
  if (!f) { perror("histogram-cases.tsv"); return 2; }
  static char line[8192];
  int checked = 0, failed = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0] || line[0] == '#') continue;
    char *cols[8];
    int n = 0;
    char copy[8192];
    strcpy(copy, line);
    for (char *p = strtok(copy, "\t"); p && n < 8; p = strtok(NULL, "\t")) cols[n++] = p;
    char got[8192] = "error";
    telemetry_histogram a, b, m, back;
    if (!strcmp(cols[0], "decode")) {
      if (!decode(cols[1], cols[2], &a)) { telemetry_histogram_to_json(&a, got, sizeof got); telemetry_histogram_free(&a); }
    } else if (!strcmp(cols[0], "merge")) {
      if (decode(cols[1], cols[2], &a) || decode(cols[3], cols[4], &b)) { fprintf(stderr, "bad merge input: %s\n", line); return 1; }
      telemetry_histogram m2;
      telemetry_histogram_merge(&a, &b, &m);
      telemetry_histogram_merge(&b, &a, &m2);
      telemetry_histogram_to_json(&m, got, sizeof got);
      if (!same(&m, &m2) || telemetry_histogram_from_json(got, &back) || !same(&m, &back)) {
        fprintf(stderr, "merge is not symmetric or does not round-trip: %s\n", line);
        failed++;
      } else telemetry_histogram_free(&back);
      telemetry_histogram_free(&a); telemetry_histogram_free(&b); telemetry_histogram_free(&m); telemetry_histogram_free(&m2);
    } else if (!strcmp(cols[0], "percentile")) {
      int64_t bound;
      if (decode(cols[1], cols[2], &a)) { fprintf(stderr, "bad percentile input: %s\n", line); return 1; }
      if (telemetry_histogram_percentile(&a, strtod(cols[3], NULL), &bound)) strcpy(got, "none");
      else snprintf(got, sizeof got, "%lld", (long long)bound);
      telemetry_histogram_free(&a);
    } else {
      fprintf(stderr, "unknown operation %s\n", cols[0]);
      return 1;
    }
    if (strcmp(got, cols[n - 1])) { fprintf(stderr, "FAIL %s\n  got %s\n", line, got); failed++; }
    checked++;
  }
  fclose(f);
  printf("test_histogram.c: %d cases, %d failed\n", checked, failed);
  return failed || checked < 15;
}
