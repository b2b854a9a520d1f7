// A test guest whose reduce returns a number, not a string (see ../../README.md).
import { defineJob, emit } from "../../../../../guest-sdk/js/telemetry-job.js";

export const job = defineJob({
  map(record) {
    emit(record.dims[2] ?? "none", "1");
  },
  reduce: (key, values) => values.length,
});
