"""A test guest whose reduce returns an int, not a str (see ../../README.md)."""

from telemetry_job import MapReduceJob, emit


class Job(MapReduceJob):
    def map(self, record):
        emit(record.dims[2] if len(record.dims) > 2 else "none", "1")

    def reduce(self, key, values):
        return len(values)
