"""hostile in Python: a test guest that misbehaves in the way its parameter names, so the host's
tests can show a Python job is contained like a Rust one (see ../rust). It also exercises the
SDK's parameter handling.

| param       | behaviour                                                         |
|-------------|-------------------------------------------------------------------|
| `loop`      | `map` spins forever                                               |
| `memory`    | `map` keeps allocating 1 MiB blocks                               |
| `raise:ID`  | `map` raises on the record with id ID (`*`: every record)         |
| `reject`    | `init` rejects the parameter                                      |
| `field:PTR` | declares the one field PTR; `map` emits (its text or "none", "1") |
| anything    | `map` emits (id, "1") and prints "mapped ID"                      |
"""

from telemetry_job import MapReduceJob, emit

FIELD = "field:"


class Job(MapReduceJob):
    def init(self, param):
        if param == "reject":
            raise ValueError("hostile guest rejects its parameter")
        if param.startswith(FIELD):
            self.fields = [param[len(FIELD):]]
        self.mode = param

    def map(self, record):
        if self.mode == "loop":
            n = 0
            while True:
                n += 1
        elif self.mode == "memory":
            blocks = []
            while True:
                blocks.append(bytearray(1 << 20))
        elif self.mode.startswith("raise:"):
            target = self.mode[len("raise:"):]
            if target in ("*", record.id):
                raise RuntimeError(f"hostile guest raises on record {record.id}")
        elif self.mode.startswith(FIELD):
            emit(record.text(0) or "none", "1")
            return
        emit(record.id, "1")
        print("mapped", record.id)
