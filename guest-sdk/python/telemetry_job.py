"""Write a Telemetry Server MapReduce job in Python.

Subclass :class:`MapReduceJob` as a class named ``Job`` in your app module; componentize-py turns
it into a component of the ``telemetry:job/mapreduce`` world (wit/job.wit)::

    from telemetry_job import MapReduceJob, emit, sum

    class Job(MapReduceJob):
        fields = ["/environment/system/os/name"]

        def map(self, record):
            emit(record.text(0) or "UNKNOWN", "1")

        def combine(self, key, values):
            return sum(values)

        reduce = combine

The same vocabulary as the Rust, JavaScript and C SDKs: ``init``, ``map``, ``combine``,
``reduce``, ``emit``, ``log``, ``sum``, ``text``, ``first_text``, ``json``, ``payload``,
``combine_threshold``. The older names ``setup``, ``sum_values`` and ``wants_payload`` still work
(deprecated aliases).

This module wraps the bindings componentize-py generates from wit/: records become
:class:`Record` objects, exceptions become the job's errors (naming the record), and ``print``
goes to the job log (the component has no stdout: WASI is stubbed out). The contract itself
(call order, semantics, sandbox) is documented in wit/job.wit.
"""

import builtins
import sys
from typing import List, Optional, Sequence

from componentize_py_types import Err
from telemetry_decimal import format_decimal  # noqa: F401  (re-exported for jobs)
from wit_world import exports
from wit_world.exports import job as wit
from wit_world.imports import histograms, host
from telemetry_histogram import (  # noqa: F401  (re-exported for jobs)
    Histogram,
    decode_histogram,
    histogram_from_json,
    histogram_percentile,
    histogram_to_json,
    histogram_total,
    merge_histograms,
)

_LEVELS = {
    "error": host.Level.ERROR,
    "warn": host.Level.WARN,
    "info": host.Level.INFO,
    "debug": host.Level.DEBUG,
}


def emit(key: str, value: str) -> None:
    """Produces one intermediate ``(key, value)`` pair (only valid inside ``map``). Both must be
    str; anything else is a TypeError naming it (the host only takes strings)."""
    if not isinstance(key, str) or not isinstance(value, str):
        raise TypeError(
            f"emit(key, value) takes two str, got {type(key).__name__} and "
            f"{type(value).__name__}; convert them, e.g. emit(str(k), str(v))"
        )
    host.emit(key, value)


def log(level: str, message: str) -> None:
    """Appends a line to the job log; ``level`` is "error", "warn", "info" or "debug"."""
    host.log(_LEVELS[level], str(message))


def text(field: wit.Field) -> Optional[str]:
    """A field as text: a JSON string, or a number/boolean as written; None if missing, null or
    an object/array (like the Rust SDK's ``Record::text``)."""
    if isinstance(field, (wit.Field_Text, wit.Field_Number)):
        return field.value
    if isinstance(field, wit.Field_Boolean):
        return "true" if field.value else "false"
    return None


def sum(values: Sequence[str]) -> str:
    """Sum of decimal integer values as a decimal string; values that are not non-negative
    integers count as 0. (Shadows the builtin only where it is imported by name.)"""
    return str(builtins.sum(int(v) for v in values if v.isdecimal() and v.isascii()))


sum_values = sum
"""Deprecated alias of :func:`sum`."""


class Record:
    """One stored document as the job sees it."""

    __slots__ = ("id", "dims", "fields", "payload", "index")

    def __init__(self, id: str, dims: List[str], fields: List[wit.Field], payload: str, index: int = 0):
        self.id = id
        """The document id."""
        self.dims = dims
        """Dimensions of the partition file (reason, appName, channel, version, build id, date)."""
        self.fields = fields
        """One ``wit.Field_*`` per pointer declared in ``fields``."""
        self.payload = payload
        """The whole JSON document if ``wants_payload``, else ""."""
        self.index = index
        """Position of the record in its batch (what the host's histogram lookup takes)."""

    def text(self, i: int) -> Optional[str]:
        """Field ``i`` as text (see :func:`text`)."""
        return text(self.fields[i]) if i < len(self.fields) else None

    def first_text(self, *indexes: int) -> Optional[str]:
        """The first of fields ``indexes`` that has a text value (for data whose shape changed
        over time, e.g. ``/info/OS`` in classic pings and ``/environment/system/os/name`` in v4)."""
        for i in indexes:
            t = self.text(i)
            if t is not None:
                return t
        return None

    def json(self, i: int) -> Optional[str]:
        """Field ``i`` as raw JSON text when it is an object or an array, else None."""
        f = self.fields[i] if i < len(self.fields) else None
        return f.value if isinstance(f, wit.Field_Json) else None

    def histogram_layout(self, name: str):
        """How histogram ``name`` is laid out in this record, from the definitions of the build
        that sent it (``.kind``, ``.low``, ``.high``, ``.bounds``, ``.source``), or None."""
        return histograms.layout(self.index, name)

    def histogram(self, i: int, name: str) -> Optional[Histogram]:
        """Histogram ``name`` whose stored compact array is field ``i``, decoded with this
        record's layout; None when the field is not an array or no layout is known."""
        compact = self.json(i)
        if compact is None or not compact.lstrip().startswith("["):
            return None
        layout = self.histogram_layout(name)
        return None if layout is None else decode_histogram(compact, list(layout.bounds))


_job: Optional["MapReduceJob"] = None
"""The job object `init` set up (see `MapReduceJob.init`)."""


class MapReduceJob(exports.Job):
    """Base class of a job. Override ``map``; define ``combine`` and ``reduce`` if the job has
    them (without ``reduce`` the job is map-only). The object ``init`` ran on serves every later
    call of its guest instance; the host may make new instances at any time, so keep no state
    that must survive between calls."""

    fields: Sequence[str] = ()
    """JSON pointers to extract from every document (may be set in ``init``)."""
    payload: bool = False
    """Pass the whole document in ``record.payload`` (slower; prefer fields)."""
    wants_payload: bool = False
    """Deprecated alias of ``payload``."""
    combine_threshold: int = 0
    """Values a key collects before ``combine`` (0 = host default, 50)."""

    def setup(self, param: str) -> None:
        """A job's ``init(self, param)``: checks the job parameter (empty if none); raise to
        reject it. A job may define ``init`` (the SDK moves it here, as the contract's ``init``
        export is this class's) or, deprecated, ``setup`` itself."""

    def map(self, record: Record) -> None:
        """Maps one record; call :func:`emit` for each pair. Raise to fail the record."""
        raise NotImplementedError("a job must define map(self, record)")

    def combine(self, key: str, values: List[str]) -> str:
        """Combines values of one key into one (must be associative and commutative)."""
        return ",".join(values)

    def reduce(self, key: str, values: List[str]) -> str:
        """Reduces all values of one key to the output value."""
        return ",".join(values)

    # --- the `telemetry:job/job` export ------------------------------------------------------

    # componentize-py makes a new object for every call into the export: the object `init` set
    # up is kept in `_job` and every later call is routed to it, so `setup` may keep state on self.

    def init(self, param: str) -> wit.JobSpec:
        global _job
        try:
            self.setup(param)
        except Exception as e:
            raise Err(f"{type(e).__name__}: {e}")
        _job = self
        cls = type(self)
        return wit.JobSpec(
            fields=[str(p) for p in self.fields],
            wants_payload=bool(self.payload or self.wants_payload),
            has_combine=cls.combine is not MapReduceJob.combine,
            combine_threshold=int(self.combine_threshold),
            has_reduce=cls.reduce is not MapReduceJob.reduce,
        )

    def map_batch(self, dims: List[str], records: List[wit.DataRecord]) -> None:
        job = _job or self
        for index, r in enumerate(records):
            try:
                job.map(Record(r.id, dims, r.fields, r.payload, index))
            except Exception as e:
                raise Err(f"record {r.id}: {type(e).__name__}: {e}")

    def __init_subclass__(cls, **kwargs):
        # An exception escaping combine/reduce traps the call: log it first, so the host's error
        # names it (combine and reduce have no error result in the contract).
        super().__init_subclass__(**kwargs)
        # A job's own `init(self, param)` would replace the export below: it becomes `setup`.
        own_init = cls.__dict__.get("init")
        if own_init is not None and own_init is not MapReduceJob.init:
            cls.setup = own_init
            cls.init = MapReduceJob.init
        for name in ("combine", "reduce"):
            f = cls.__dict__.get(name)
            if f is not None:
                setattr(cls, name, _logged(name, f))


def _logged(name, f):
    def call(self, key, values):
        try:
            result = f(_job or self, key, values)
            if not isinstance(result, str):
                # componentize-py cannot lower anything but a str into the WIT string result: it
                # would trap without a word, so say which method returned what.
                raise TypeError(
                    f"{name} must return a str, but returned {type(result).__name__} "
                    f"{result!r:.40}; convert it, e.g. return str(...)"
                )
            return result
        except Exception as e:
            log("error", f"{name}({key!r}): {type(e).__name__}: {e}")
            raise

    call.__name__ = name
    return call


class _LogStream:
    """``sys.stdout``/``sys.stderr`` replacement writing whole lines to the job log."""

    def __init__(self, level: str):
        self.level = level
        self.buffer = ""

    def write(self, s: str) -> int:
        self.buffer += s
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            log(self.level, line)
        return len(s)

    def flush(self) -> None:
        if self.buffer:
            log(self.level, self.buffer)
            self.buffer = ""


sys.stdout = _LogStream("info")
sys.stderr = _LogStream("error")
