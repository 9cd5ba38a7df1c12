"""On-disk cache of program outputs, keyed by (program source, dataset, label space).

Successful runs store their raw per-row int8 codes, one ``<key>.codes`` file per key (a header
binding it to its key and the sha256 of what follows, then the codes, then the run's message and
runtime, so that a cached run reports the same faults and invalid outputs as its first run). A run that failed (timeout, memory
limit, crash, load error, raised on every row) stores its *outcome* in ``<key>.outcome`` (JSON bound
to its key), keyed also by the time and memory limits: it is not re-run until its source, the data
or a limit changes. Every file is fsync'd and renamed into place.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
import warnings
from itertools import repeat
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from .frames import clean_message
from .labels import FAULT, LabelSpace
from .program import Program, source_hash

_VERSION = "3"  # bump when the meaning or the layout of stored entries changes (3: ok runs keep their message)


def fingerprint_inputs(inputs: Sequence) -> str:
    """A content hash of the rows a program sees (text, or the row objects' fields and values)."""
    text = fingerprint_texts(inputs)
    if text is not None:
        return text
    h = hashlib.sha256()
    fields = getattr(type(inputs[0]), "_fields", None) if len(inputs) else None
    h.update(repr(fields).encode())
    for row in inputs:
        h.update(repr(row).encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:32]


def fingerprint_texts(inputs: Sequence) -> str | None:
    """:func:`fingerprint_inputs` of rows that are all text, in two C passes; None when a row is not a str."""
    try:  # str.encode refuses anything that is not a str
        text = b"\xff".join(map(str.encode, inputs, repeat("utf-8"), repeat("surrogatepass")))
    except TypeError:
        return None
    # UTF-8 never holds a 0xFF byte, so with the row count in front the joined rows are unambiguous
    h = hashlib.sha256(b"text\0" + len(inputs).to_bytes(8, "little"))
    h.update(text)
    return h.hexdigest()[:32]


# Failed runs whose outcome is kept (a run lost to a supervisor death is not: that is not the program's doing).
FAILED_STATUSES = ("faulted", "load_error", "timeout", "memory_limit", "crashed")
MAX_MESSAGE = 1000
MAX_OUTCOME_BYTES = 4096

_MAGIC = b"ALCODES2"
# magic, key (hex), sha256 of codes + meta, number of rows, bytes of meta (JSON: message, runtime_s)
_HEADER = struct.Struct("<8s32s32sQI")


class CachedOutput(NamedTuple):
    """An ``ok`` run read back from the cache: its codes and its first run's message and runtime."""

    codes: np.ndarray
    message: str
    runtime_s: float


def read_regular_bytes(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file, reached without following a symlink, of at most
    ``limit`` bytes; ``None`` when it does not exist. Raises ``ValueError`` for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a symlink (ELOOP), a fifo we may not open, permissions
        raise ValueError(f"{path} cannot be opened safely ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path} is larger than {limit} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)


def _read_regular(path: Path, limit: int) -> bytes | None:
    """:func:`read_regular_bytes`, with anything that is not one of our entries read as ``b""`` (a miss)."""
    try:
        return read_regular_bytes(path, limit)
    except ValueError:
        return b""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(binary_file)`` on a temp file in the same folder (created if missing), fsync it,
    then ``os.replace`` it onto ``path``: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself survives a crash once the folder is synced
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


class OutputCache:
    """Per-row outcome codes of programs, stored under ``directory`` (created when missing).

    ``get``/``put`` take the program, a dataset fingerprint (see :func:`fingerprint_inputs`) and the
    label space; editing a program changes its source hash, so only that program is re-run.

    Each entry is bound to its key: the file holds the key and a sha256 of the codes, both checked
    on read, and is read only if it is a regular file reached without a symlink. A damaged, empty,
    foreign or tampered entry is a miss, counted in :attr:`corrupt` (and warned about once).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.corrupt = 0

    def _key(self, program: Program, fingerprint: str, label_space: LabelSpace) -> str:
        key = "\0".join([_VERSION, source_hash(program.source), fingerprint, label_space.signature])
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.codes"

    def get(self, program: Program, fingerprint: str, label_space: LabelSpace, n_rows: int) -> CachedOutput | None:
        """The stored run, or None on a miss (a damaged or mismatched file counts as a corrupt miss)."""
        key = self._key(program, fingerprint, label_space)
        data = _read_regular(self._path(key), _HEADER.size + n_rows + MAX_OUTCOME_BYTES)
        if data is None:
            return None
        entry = self._verify(data, key, n_rows, label_space.k)
        if entry is None:
            self.corrupt += 1
            if self.corrupt == 1:
                warnings.warn(f"output cache {self.directory}: an entry failed its integrity check and is re-run "
                              "(counted in OutputCache.corrupt)", RuntimeWarning, stacklevel=3)
        return entry

    @staticmethod
    def _verify(data: bytes, key: str, n_rows: int, k: int) -> CachedOutput | None:
        if len(data) < _HEADER.size:
            return None
        magic, stored_key, digest, n, meta_size = _HEADER.unpack_from(data)
        body = data[_HEADER.size:]
        if (magic != _MAGIC or stored_key != key.encode() or n != n_rows or meta_size > MAX_OUTCOME_BYTES
                or len(body) != n_rows + meta_size or hashlib.sha256(body).digest() != digest):
            return None
        codes = np.frombuffer(body, np.int8, n_rows).copy()
        if n_rows and (codes.min() < FAULT or codes.max() >= k):  # an ok run: every row ran, codes in range
            return None
        try:
            meta = json.loads(body[n_rows:].decode("utf-8"))
            message, runtime_s = meta["message"], float(meta["runtime_s"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            return None
        if (not isinstance(message, str) or len(message) > MAX_MESSAGE or not message.isprintable()
                or not 0 <= runtime_s < 1e7):
            return None
        return CachedOutput(codes, message, runtime_s)

    def put(self, program: Program, fingerprint: str, label_space: LabelSpace, codes: np.ndarray,
            message: str, runtime_s: float = 0.0) -> None:
        """Store an ``ok`` run's codes, message and runtime atomically (fsync'd temp file, then ``os.replace``)."""
        key = self._key(program, fingerprint, label_space)
        codes = np.ascontiguousarray(codes, dtype=np.int8).tobytes()
        meta = json.dumps({"message": clean_message(message, MAX_MESSAGE), "runtime_s": float(runtime_s)}).encode("utf-8")
        body = codes + meta
        header = _HEADER.pack(_MAGIC, key.encode(), hashlib.sha256(body).digest(), len(codes), len(meta))
        atomic_write_bytes(self._path(key), header + body)

    # -- outcomes of failed runs ---------------------------------------------------------------
    def _outcome_path(self, program, fingerprint, label_space, time_limit_s, memory_limit_mb) -> tuple[str, Path]:
        base = self._key(program, fingerprint, label_space)
        key = hashlib.sha256(f"{base}\0{float(time_limit_s)!r}\0{memory_limit_mb!r}".encode()).hexdigest()[:32]
        return key, self.directory / f"{key}.outcome"

    def get_outcome(self, program: Program, fingerprint: str, label_space: LabelSpace, time_limit_s: float,
                    memory_limit_mb: int | None) -> tuple[str, str, float] | None:
        """``(status, message, runtime_s)`` of a stored failed run under the same limits, or None."""
        key, path = self._outcome_path(program, fingerprint, label_space, time_limit_s, memory_limit_mb)
        data = _read_regular(path, MAX_OUTCOME_BYTES)
        if data is None:
            return None
        try:
            entry = json.loads(data.decode("utf-8"))
            status, message, runtime_s = entry["status"], entry["message"], float(entry["runtime_s"])
            if (entry.get("key") != key or status not in FAILED_STATUSES or not isinstance(message, str)
                    or not 0 <= runtime_s < 1e7):
                raise ValueError("foreign or malformed entry")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            self.corrupt += 1
            return None
        return status, message, runtime_s

    def put_outcome(self, program: Program, fingerprint: str, label_space: LabelSpace, time_limit_s: float,
                    memory_limit_mb: int | None, status: str, message: str, runtime_s: float) -> None:
        """Store a failed run's outcome (``status`` one of :data:`FAILED_STATUSES`)."""
        if status not in FAILED_STATUSES:
            raise ValueError(f"only failed runs store an outcome, not {status!r}")
        key, path = self._outcome_path(program, fingerprint, label_space, time_limit_s, memory_limit_mb)
        entry = {"key": key, "status": status, "message": message[:MAX_MESSAGE], "runtime_s": float(runtime_s)}
        atomic_write_bytes(path, json.dumps(entry).encode("utf-8"))

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.codes"))
