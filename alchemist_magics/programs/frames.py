"""The wire format between the kernel and the sandbox's supervisor: size-bounded, validated frames.

Nothing here can carry code: no pickle, no marshal. A frame is an 8-byte header (magic ``b"AM"``,
a kind byte, a pad byte, a little-endian u32 payload length) and a payload whose layout the kind
fixes. Kernel to supervisor: ``INPUTS``/``DROP``/``RUN`` with JSON payloads of plain values.
Supervisor to kernel: ``HELLO`` (JSON: which isolation layers are active), ``START`` (u32 job),
``PROGRESS`` (u64 rows done, all jobs), ``JOB_ROWS`` (u32 job + u64 rows done by that job, only
when the kernel asked for per-program progress), ``RESULT`` (fixed header + message + int8 codes),
``DONE``, ``ERROR`` (a message).

The reader checks the magic, the kind and the size before reading a payload; :func:`parse_result`
checks every field of a result (job index, status, runtime, message, codes); any violation raises
:class:`ProtocolError`, never anything else.
"""
from __future__ import annotations

import json
import math
import select
import struct

import numpy as np

from .labels import NOT_RUN
from .results import STATUSES

MAGIC = b"AM"
HEADER = struct.Struct("<2sBxI")
INPUTS, DROP, RUN = 1, 2, 3
HELLO, START, PROGRESS, RESULT, DONE, ERROR, JOB_ROWS = 10, 11, 12, 13, 14, 15, 16
KINDS = frozenset({INPUTS, DROP, RUN, HELLO, START, PROGRESS, RESULT, DONE, ERROR, JOB_ROWS})
_RESULT_HEAD = struct.Struct("<IBdH")  # job index, status index, runtime_s, message length (bytes)
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_JOB_ROWS = struct.Struct("<IQ")  # job index, rows that job has done
JOB_ROWS_SIZE = _JOB_ROWS.size
MAX_MESSAGE = 1024  # bytes of one status message
MAX_CONTROL = 1 << 20  # bytes of a control frame (hello, error, drop, run)
MAX_INPUTS = (1 << 32) - 1  # the u32 length field is the bound of a row set


class ProtocolError(RuntimeError):
    """A frame that is malformed, too large, of an unexpected kind, or with a field out of range."""


def encode(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_INPUTS:
        raise ValueError(f"frame payload of {len(payload)} bytes exceeds the {MAX_INPUTS}-byte bound")
    return HEADER.pack(MAGIC, kind, len(payload)) + payload


def write_frame(stream, kind: int, payload: bytes = b"") -> None:
    """Write one whole frame (raw streams may take it in parts)."""
    data = memoryview(encode(kind, payload))
    while data:
        written = stream.write(data)
        if written is None:  # a non-blocking stream with a full pipe: ours are blocking
            raise BlockingIOError("frame stream would block")
        data = data[written:]
    stream.flush()


def _read_exact(stream, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream, limits: dict[int, int], timeout_s: float | None = None) -> tuple[int, bytes]:
    """``(kind, payload)`` of the next frame; ``limits`` maps each kind accepted here to its size bound.

    Raises ``EOFError`` on a clean end of stream (before a header) and :class:`ProtocolError` on a
    bad magic, an unexpected kind, an oversize or a truncated frame, or when ``timeout_s`` passes
    with no frame starting (``stream`` must then be unbuffered, so select sees all there is).
    """
    if timeout_s is not None:
        ready, _, _ = select.select([stream], [], [], timeout_s)
        if not ready:
            raise ProtocolError(f"no frame for {timeout_s:g} s (the process is stopped or hung)")
    header = _read_exact(stream, HEADER.size)
    if not header:
        raise EOFError
    if len(header) < HEADER.size:
        raise ProtocolError("truncated frame header")
    magic, kind, size = HEADER.unpack(header)
    if magic != MAGIC:
        raise ProtocolError("bad frame magic")
    if kind not in limits:
        raise ProtocolError(f"unexpected frame kind {kind}")
    if size > limits[kind]:
        raise ProtocolError(f"frame of kind {kind} is {size} bytes, over its {limits[kind]}-byte bound")
    payload = _read_exact(stream, size)
    if len(payload) < size:
        raise ProtocolError("truncated frame payload")
    return kind, payload


# -- plain-value payloads -----------------------------------------------------------------------------

def dump_json(value) -> bytes:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def load_json(payload: bytes):
    try:
        return json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"control frame is not valid JSON ({type(exc).__name__})") from None


def _plain(value):
    """A row value as JSON can carry it: str/int/float/bool/None as is, numpy scalars as Python ones, else str()."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, np.generic):
        return value.item() if isinstance(value, (np.integer, np.floating, np.bool_)) else str(value)
    for base in (bool, int, float, str):  # subclasses (enums, str subclasses): their plain value
        if isinstance(value, base):
            return base(value) if base is not str else str.__str__(value)
    return str(value)


def encode_rows(inputs) -> bytes:
    """Rows (str, or the data layer's namedtuple rows) as JSON: ``{"texts": [...]}`` or ``{"columns", "rows"}``."""
    if all(type(x) is str for x in inputs):
        return dump_json({"texts": list(inputs)})
    first = inputs[0]
    if not isinstance(first, tuple) or any(type(row) is not type(first) for row in inputs):
        raise TypeError("rows must all be str, or all rows of one type from the data layer (make_row_type)")
    try:  # the data layer's rows reduce to (rebuild, (column names, values))
        columns = list(first.__reduce__()[1][0])
    except (TypeError, IndexError, AttributeError):
        columns = list(getattr(type(first), "_fields", ()))
    if not columns or not all(type(c) is str for c in columns):
        raise TypeError("rows must all be str, or rows with named fields (make_row_type)")
    return dump_json({"columns": columns, "rows": [[_plain(v) for v in row] for row in inputs]})


def decode_rows(data: dict, make_row_type) -> list:
    """The rows of a parsed INPUTS payload (see :func:`encode_rows`), type-checked."""
    if isinstance(data, dict) and isinstance(data.get("texts"), list):
        texts = data["texts"]
        if not all(type(t) is str for t in texts):
            raise ProtocolError("texts must be strings")
        return texts
    if isinstance(data, dict) and isinstance(data.get("columns"), list) and isinstance(data.get("rows"), list):
        columns = data["columns"]
        if not columns or not all(type(c) is str for c in columns):
            raise ProtocolError("columns must be strings")
        row_type = make_row_type(columns)
        try:
            return [row_type(*values) for values in data["rows"]]
        except TypeError:
            raise ProtocolError("a row has the wrong number of values") from None
    raise ProtocolError("INPUTS frame holds neither texts nor rows")


# -- results ------------------------------------------------------------------------------------------

def clean_message(text: str, limit: int = 300) -> str:
    """One printable line: control characters become spaces, at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encode_result(job: int, status: str, message: str, codes: np.ndarray, runtime_s: float) -> bytes:
    data = clean_message(message).encode("utf-8", "replace")[:MAX_MESSAGE]
    data = data.decode("utf-8", "ignore").encode("utf-8")  # never cut a character in half
    runtime_s = float(runtime_s) if math.isfinite(runtime_s) else 0.0
    head = _RESULT_HEAD.pack(job, STATUSES.index(status), runtime_s, len(data))
    return head + data + np.ascontiguousarray(codes, dtype=np.int8).tobytes()


def result_limit(n_rows: int) -> int:
    return _RESULT_HEAD.size + MAX_MESSAGE + n_rows


def parse_result(payload: bytes, n_jobs: int, n_rows: int, k: int):
    """``(job, status, message, codes, runtime_s)`` from a RESULT payload, every field checked.

    Codes must be ``NOT_RUN..k-1``; an ``ok`` run must have run every row.
    """
    if len(payload) < _RESULT_HEAD.size:
        raise ProtocolError("truncated result")
    job, status_index, runtime_s, size = _RESULT_HEAD.unpack_from(payload)
    if job >= n_jobs:
        raise ProtocolError(f"result for job {job}, but only {n_jobs} were sent")
    if status_index >= len(STATUSES):
        raise ProtocolError(f"status code {status_index} out of range")
    if size > MAX_MESSAGE or len(payload) != _RESULT_HEAD.size + size + n_rows:
        raise ProtocolError("result has the wrong size")
    try:
        message = payload[_RESULT_HEAD.size:_RESULT_HEAD.size + size].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("result message is not UTF-8") from None
    if not all(c.isprintable() for c in message):
        raise ProtocolError("result message holds control characters")
    if not math.isfinite(runtime_s) or runtime_s < 0:
        raise ProtocolError("result runtime is not a non-negative number")
    codes = np.frombuffer(payload, np.int8, n_rows, _RESULT_HEAD.size + size).copy()
    if n_rows and (codes.min() < NOT_RUN or codes.max() >= k):
        raise ProtocolError("result codes out of range")
    status = STATUSES[status_index]
    if status == "ok" and n_rows and codes.min() == NOT_RUN:
        raise ProtocolError("an ok result with rows that never ran")
    return job, status, message, codes, runtime_s


def encode_u32(value: int) -> bytes:
    return _U32.pack(value)


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)


def parse_u32(payload: bytes) -> int:
    if len(payload) != _U32.size:
        raise ProtocolError("bad u32 payload")
    return _U32.unpack(payload)[0]


def parse_u64(payload: bytes) -> int:
    if len(payload) != _U64.size:
        raise ProtocolError("bad u64 payload")
    return _U64.unpack(payload)[0]


def encode_job_rows(job: int, rows: int) -> bytes:
    return _JOB_ROWS.pack(job, rows)


def parse_job_rows(payload: bytes, n_jobs: int, n_rows: int) -> tuple[int, int]:
    """``(job, rows done)`` from a JOB_ROWS payload: the job must be one that was sent, the rows
    at most the rows of the set."""
    if len(payload) != _JOB_ROWS.size:
        raise ProtocolError("bad job-rows payload")
    job, rows = _JOB_ROWS.unpack(payload)
    if job >= n_jobs:
        raise ProtocolError(f"progress for job {job}, but only {n_jobs} were sent")
    if rows > n_rows:
        raise ProtocolError(f"progress of {rows} rows for job {job}, but the set has {n_rows}")
    return job, rows
