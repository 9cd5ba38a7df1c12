"""On-disk response cache, content-addressed by (messages, model, parameters).

Only successful, validated replies are stored; errors are never cached, so a failed request is
retried on the next run while a good one is never paid for twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def request_key(messages: list[dict], model: str, params: dict) -> str:
    """Stable sha256 of what determines a reply."""
    blob = json.dumps({"messages": messages, "model": model, "params": params},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResponseCache:
    """A folder of ``<key[:2]>/<key>.json`` files, one per cached reply."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored entry, or None (a missing or unreadable file is a miss, never a crash)."""
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, entry: dict) -> None:
        atomic_write_text(self._path(key), json.dumps(entry, ensure_ascii=False))

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.json"))
