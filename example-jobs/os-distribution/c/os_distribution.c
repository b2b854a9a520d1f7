// os-distribution in C: the same job as ../rust (submissions per OS and application version),
// on guest-sdk/c/telemetry_job.h. Output: `OS,version<TAB>count`.
#include "telemetry_job.h"

static const char *map(const tj_record *r) {
  tj_str os = tj_or(tj_first_text(r, 0, 1), "UNKNOWN");
  tj_str version = tj_or(tj_first_text(r, 2, 3), "UNKNOWN");
  tj_emitf("1", "%.*s,%.*s", TJ_FMT(os), TJ_FMT(version));
  return NULL;
}

TELEMETRY_JOB(
    // v4 pings name the OS under `environment`, classic ones under `info`; likewise the version.
    .fields = TJ_FIELDS("/environment/system/os/name", "/info/OS", "/application/version", "/info/appVersion"),
    .map = map,
    .combine = tj_sum,
    .reduce = tj_sum)
