// os-distribution in JavaScript: the same job as ../rust (submissions per OS and application
// version), built with componentize-qjs (QuickJS) by scripts/build-guests.sh.
// Output: `OS,version<TAB>count`.
import { defineJob, emit, sum } from "../../../guest-sdk/js/telemetry-job.js";

export const job = defineJob({
  // v4 pings name the OS under `environment`, classic ones under `info`; likewise the version.
  fields: ["/environment/system/os/name", "/info/OS", "/application/version", "/info/appVersion"],
  map(record) {
    const os = record.firstText(0, 1) ?? "UNKNOWN";
    const version = record.firstText(2, 3) ?? "UNKNOWN";
    emit(`${os},${version}`, "1");
  },
  combine: (key, values) => sum(values),
  reduce: (key, values) => sum(values),
});
