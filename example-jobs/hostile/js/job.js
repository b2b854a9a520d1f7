// hostile in JavaScript: a test guest that misbehaves in the way its parameter names, so the
// host's tests can show a JavaScript job is contained like a Rust one (see ../rust). It also
// exercises the SDK's parameter handling.
//
// | param       | behaviour                                                        |
// |-------------|------------------------------------------------------------------|
// | `loop`      | `map` spins forever                                              |
// | `memory`    | `map` keeps allocating 1 MiB strings                             |
// | `throw:ID`  | `map` throws on the record with id ID (`*`: every record)        |
// | `reject`    | `init` rejects the parameter                                     |
// | `field:PTR` | declares the one field PTR; `map` emits (its text or "none", "1") |
// | anything    | `map` emits (id, "1") and logs "mapped ID" with console.log      |
import { defineJob, emit } from "../../../guest-sdk/js/telemetry-job.js";

const FIELD = "field:";

export const job = defineJob({
  fields: (param) => (param.startsWith(FIELD) ? [param.slice(FIELD.length)] : []),
  init(param) {
    if (param === "reject") throw new RangeError("hostile guest rejects its parameter");
    return param;
  },
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
    } else if (mode.startsWith(FIELD)) {
      emit(record.text(0) ?? "none", "1");
      return;
    }
    emit(record.id, "1");
    console.log("mapped", record.id);
  },
});
