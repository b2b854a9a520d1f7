"""os-distribution in Python: the same job as ../rust (submissions per OS and application
version), built with componentize-py by scripts/build-guests.sh. Output: `OS,version<TAB>count`."""

from telemetry_job import MapReduceJob, emit, sum


class Job(MapReduceJob):
    # v4 pings name the OS under `environment`, classic ones under `info`; likewise the version.
    fields = ["/environment/system/os/name", "/info/OS", "/application/version", "/info/appVersion"]

    def map(self, record):
        os = record.first_text(0, 1) or "UNKNOWN"
        version = record.first_text(2, 3) or "UNKNOWN"
        emit(f"{os},{version}", "1")

    def combine(self, key, values):
        return sum(values)

    def reduce(self, key, values):
        return sum(values)
