/* telemetry_decimal.h over the table every SDK shares:
 *   cc -std=c99 -Wall -Wextra -Werror -o test_decimal guest-sdk/c/test_decimal.c
 *   ./test_decimal guest-sdk/decimal-cases.tsv */
#include <math.h>
#include <stdlib.h>

#include "telemetry_decimal.h"

static int failed = 0;

static void expect(double x, size_t places, const char *want, const char *line) {
  char got[400];
  size_t need = telemetry_decimal_format(x, places, got, sizeof got);
  if (need != strlen(want) || strcmp(got, want)) {
    fprintf(stderr, "FAIL %s\n  got %s (length %zu)\n", line, got, need);
    failed++;
  }
}

int main(int argc, char **argv) {
  FILE *f = fopen(argc > 1 ? argv[1] : "guest-sdk/decimal-cases.tsv", "r");
  if (!f) { perror("decimal-cases.tsv"); return 2; }
  static char line[1024];
  int checked = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0] || line[0] == '#') continue;
    char copy[1024], *value = strtok(strcpy(copy, line), "\t"), *places = strtok(NULL, "\t"), *want = strtok(NULL, "\t");
    if (!value || !places || !want) { fprintf(stderr, "bad line: %s\n", line); return 1; }
    expect(strtod(value, NULL), (size_t)strtoul(places, NULL, 10), want, line);
    checked++;
  }
  fclose(f);
  expect(NAN, 2, "NaN", "NaN");
  expect(-INFINITY, 2, "-inf", "-inf");
  /* Like snprintf: a short buffer gets a truncated, terminated prefix and the full length. */
  char small[5];
  size_t need = telemetry_decimal_format(2982.8125, 3, small, sizeof small);
  if (need != 8 || strcmp(small, "2982")) { fprintf(stderr, "FAIL truncation: %s %zu\n", small, need); failed++; }
  printf("test_decimal.c: %d cases, %d failed\n", checked, failed);
  return failed || checked < 20;
}
