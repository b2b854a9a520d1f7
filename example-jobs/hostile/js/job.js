// hostile in JavaScript: a test guest that misbehaves in the way its parameter names, so the
// host's tests can show a JavaScript job is contained like a Rust one (see ../rust).
//
// | param      | behaviour in `map`                                    |
// |------------|-------------------------------------------------------|
// | `loop`     | spins forever                                         |
// | `memory`   | keeps allocating 1 MiB strings                        |
// | `throw:ID` | throws on the record with id ID (`*`: every record)   |
// | anything   | emits (id, "1") and logs "mapped ID" with console.log |
import { defineJob, emit } from "../../../guest-sdk/js/telemetry-job.js";

export const job = defineJob({
  init: (param) => param,
  map(record, mode) {
    if (mode === "loop") {
      let n = 0;
      for (;;) n = (n + 1) | 0;
    } else if (mode === "memory") {
      const blocks = [];
      for (let i = 0; ; i++) blocks.push("x".repeat(1 << 20) + i);
    } else if (mode.startsWith("throw:")) {
      const target = mode.slice("throw:".length);
      if (target === "*" || target === record.id) throw new Error(`hostile guest throws on record ${record.id}`);
    }
    emit(record.id, "1");
    console.log("mapped", record.id);
  },
});
