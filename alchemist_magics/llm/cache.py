"""On-disk response cache, content-addressed by (messages, model, parameters).

Only successful, validated replies are stored; errors are never cached, so a failed request is
retried on the next run while a good one is never paid for twice.

Each file is bound to its key: ``{"key", "sha256", "entry"}`` where ``sha256`` hashes the entry's
canonical JSON; both are checked on read, files are read only when they are regular files reached
without a symlink, and writes are fsync'd before the rename. A damaged, foreign or tampered file is
a miss, counted in :attr:`ResponseCache.corrupt`.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

from ..programs.cache import atomic_write_bytes, read_regular_bytes


def request_key(messages: list[dict], model: str, params: dict) -> str:
    """Stable sha256 of what determines a reply."""
    blob = json.dumps({"messages": messages, "model": model, "params": params},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 ``text`` written atomically and durably (see ``programs.cache.atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode("utf-8"))


MAX_ENTRY_BYTES = 64 * 2**20


def read_regular_text(path: Path, limit: int = MAX_ENTRY_BYTES) -> str | None:
    """The UTF-8 text of ``path`` if it is a regular file, reached without following a symlink, of at most
    ``limit`` bytes; ``None`` when it does not exist. Raises ``ValueError`` for anything else."""
    data = read_regular_bytes(path, limit)
    return None if data is None else data.decode("utf-8")


def _digest(entry) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


class ResponseCache:
    """A folder of ``<key[:2]>/<key>.json`` files, one per cached reply."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.corrupt = 0  # entries that failed their integrity check (each one a miss)

    def _path(self, key: str) -> Path:
        if not (len(key) == 64 and all(c in "0123456789abcdef" for c in key)):
            raise ValueError(f"cache keys are sha256 hex digests, got {key[:80]!r}")
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored entry, or None (missing, or failing its integrity check: a counted miss, never a crash)."""
        path = self._path(key)
        try:
            text = read_regular_text(path)
            if text is None:
                return None
            record = json.loads(text)
            if not (isinstance(record, dict) and record.get("key") == key and isinstance(record.get("entry"), dict)
                    and record.get("sha256") == _digest(record["entry"])):
                raise ValueError("entry does not match its key or its hash")
            return record["entry"]
        except (OSError, ValueError, RecursionError, UnicodeError):
            self.corrupt += 1
            if self.corrupt == 1:
                warnings.warn(f"LLM response cache {self.folder}: an entry failed its integrity check and is "
                              "treated as a miss (counted in ResponseCache.corrupt)", RuntimeWarning, stacklevel=2)
            return None

    def put(self, key: str, entry: dict) -> None:
        record = {"key": key, "sha256": _digest(entry), "entry": entry}
        atomic_write_text(self._path(key), json.dumps(record, ensure_ascii=False))

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.json"))
