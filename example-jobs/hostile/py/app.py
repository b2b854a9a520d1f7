"""hostile in Python: a test guest that misbehaves in the way its parameter names, so the host's
tests can show a Python job is contained like a Rust one (see ../rust).

| param      | behaviour in `map`                                  |
|------------|-----------------------------------------------------|
| `loop`     | spins forever                                       |
| `memory`   | keeps allocating 1 MiB blocks                       |
| `raise:ID` | raises on the record with id ID (`*`: every record) |
| anything   | emits (id, "1") and prints "mapped ID"              |
"""

from telemetry_job import MapReduceJob, emit


class Job(MapReduceJob):
    def setup(self, param):
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
        emit(record.id, "1")
        print("mapped", record.id)
