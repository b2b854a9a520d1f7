// A test guest exported the wrong way (see ../../README.md): the host calls the export named
// `job`, so the build must refuse this module.
import { defineJob, emit } from "../../../../../guest-sdk/js/telemetry-job.js";

export default defineJob({
  map(record) {
    emit(record.id, "1");
  },
});
