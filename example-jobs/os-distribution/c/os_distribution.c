// os-distribution in C: the same job as ../rust (submissions per OS and application version),
// built with wit-bindgen's C bindings, clang-19 and wasi-libc. Output: `OS,version<TAB>count`.
//
// wit-bindgen C conventions: exported functions own their arguments (free them); returned
// strings and lists must be malloc'd (the bindings free them after the host has copied them).
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapreduce.h"

typedef exports_telemetry_job_job_field_t field_t;

// v4 pings name the OS under `environment`, classic ones under `info`; likewise the version.
static const char *FIELDS[] = {"/environment/system/os/name", "/info/OS", "/application/version",
                               "/info/appVersion"};
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])

bool exports_telemetry_job_job_init(mapreduce_string_t *param, exports_telemetry_job_job_job_spec_t *ret,
                                    mapreduce_string_t *err) {
  (void)err;
  mapreduce_string_free(param);
  ret->fields.len = NFIELDS;
  ret->fields.ptr = malloc(NFIELDS * sizeof(mapreduce_string_t));
  for (size_t i = 0; i < NFIELDS; i++) mapreduce_string_dup(&ret->fields.ptr[i], FIELDS[i]);
  ret->wants_payload = false;
  ret->has_combine = true;
  ret->combine_threshold = 0;
  ret->has_reduce = true;
  return true;
}

// The field as text (a JSON string, a number or boolean as written), or NULL; like the Rust SDK's
// `Record::text`.
static const mapreduce_string_t *text(const field_t *f) {
  static mapreduce_string_t yes = {(uint8_t *)"true", 4}, no = {(uint8_t *)"false", 5};
  switch (f->tag) {
  case EXPORTS_TELEMETRY_JOB_JOB_FIELD_TEXT: return &f->val.text;
  case EXPORTS_TELEMETRY_JOB_JOB_FIELD_NUMBER: return &f->val.number;
  case EXPORTS_TELEMETRY_JOB_JOB_FIELD_BOOLEAN: return f->val.boolean ? &yes : &no;
  default: return NULL;
  }
}

static const mapreduce_string_t *first_text(const field_t *fields, size_t a, size_t b) {
  const mapreduce_string_t *s = text(&fields[a]);
  return s ? s : text(&fields[b]);
}

bool exports_telemetry_job_job_map_batch(mapreduce_list_string_t *dims,
                                         exports_telemetry_job_job_list_data_record_t *records,
                                         mapreduce_string_t *err) {
  (void)err;
  static const mapreduce_string_t unknown = {(uint8_t *)"UNKNOWN", 7};
  mapreduce_string_t one = {(uint8_t *)"1", 1};
  char *buf = NULL;
  size_t cap = 0;
  for (size_t r = 0; r < records->len; r++) {
    const field_t *fields = records->ptr[r].fields.ptr;
    const mapreduce_string_t *os = first_text(fields, 0, 1), *version = first_text(fields, 2, 3);
    if (!os) os = &unknown;
    if (!version) version = &unknown;
    size_t len = os->len + 1 + version->len;
    if (len > cap) {
      cap = len * 2;
      buf = realloc(buf, cap);
      if (!buf) abort();
    }
    memcpy(buf, os->ptr, os->len);
    buf[os->len] = ',';
    memcpy(buf + os->len + 1, version->ptr, version->len);
    mapreduce_string_t key = {(uint8_t *)buf, len};
    telemetry_job_host_emit(&key, &one);
  }
  free(buf);
  mapreduce_list_string_free(dims);
  exports_telemetry_job_job_list_data_record_free(records);
  return true;
}

static void sum(mapreduce_string_t *key, mapreduce_list_string_t *values, mapreduce_string_t *ret) {
  uint64_t total = 0;
  char digits[24];
  for (size_t i = 0; i < values->len; i++) {
    size_t n = values->ptr[i].len < sizeof digits - 1 ? values->ptr[i].len : sizeof digits - 1;
    memcpy(digits, values->ptr[i].ptr, n);
    digits[n] = 0;
    total += strtoull(digits, NULL, 10);
  }
  snprintf(digits, sizeof digits, "%" PRIu64, total);
  mapreduce_string_dup(ret, digits);
  mapreduce_string_free(key);
  mapreduce_list_string_free(values);
}

void exports_telemetry_job_job_combine(mapreduce_string_t *key, mapreduce_list_string_t *values,
                                       mapreduce_string_t *ret) {
  sum(key, values, ret);
}

void exports_telemetry_job_job_reduce(mapreduce_string_t *key, mapreduce_list_string_t *values,
                                      mapreduce_string_t *ret) {
  sum(key, values, ret);
}
