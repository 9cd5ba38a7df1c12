"""Programs and their provenance as plain files next to the notebook.

Layout under ``<root>/<task>/``::

    manifest.json          {"task": ..., "programs": [{"id", "name", "parent", "created"}, ...]} in order
    programs/<id>.py       the program source, as the LLM (or a repair) wrote it
    programs/<id>.json     its provenance: prompt, model, parameters, raw reply, tokens, cost, time, parent

Every file is written atomically (fsync'd temp file + ``os.replace``), so an interrupted run leaves
the previous complete version, never half a file; the manifest makes a run resumable and diffable.
The source is stored exactly as given, so its hash is its id: ``load`` checks that (and the
``source_sha256`` in its record), reads no file through a symlink and skips, with a warning, a
program whose files were changed since they were saved.
"""
from __future__ import annotations

import json
import re
import threading
import warnings
from pathlib import Path

from ..programs import Program
from ..programs.program import source_hash
from .cache import atomic_write_text, read_regular_text

_ID = re.compile(r"[0-9a-f]{12}")


def _folder_name(task_name: str) -> str:
    return re.sub(r"[^\w.-]", "_", task_name.strip()) or "task"


class ProgramStore:
    """Persists programs of one task under ``<root>/<task>/``."""

    def __init__(self, task_name: str, root: str | Path = ".alchemist"):
        self.folder = Path(root) / _folder_name(task_name)
        self.task_name = task_name
        self._lock = threading.Lock()

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def manifest(self) -> list[dict]:
        """The manifest entries in order (empty when nothing was saved yet)."""
        try:
            text = read_regular_text(self.manifest_path)
            if text is None:
                return []
            entries = json.loads(text)["programs"]
            if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in entries):
                raise ValueError("'programs' must be a list of entries with an id")
            return entries
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise ValueError(f"{self.manifest_path} is not a valid manifest ({e}); "
                             f"restore it from version control or delete it to start over") from None

    def save(self, program: Program) -> Path:
        """Write the program's source and provenance, and append it to the manifest once."""
        with self._lock:
            base = self.folder / "programs" / program.id
            atomic_write_text(base.with_suffix(".py"), program.source)  # exactly: its hash is its id
            record = {"id": program.id, "source_sha256": source_hash(program.source), "name": program.name,
                      "provenance": program.provenance}
            atomic_write_text(base.with_suffix(".json"), json.dumps(record, indent=1, ensure_ascii=False, default=str))
            entries = self.manifest()
            if all(e["id"] != program.id for e in entries):
                entries.append({"id": program.id, "name": program.name,
                                "parent": program.provenance.get("parent"),
                                "created": program.provenance.get("created")})
                atomic_write_text(self.manifest_path, json.dumps(
                    {"task": self.task_name, "programs": entries}, indent=1, ensure_ascii=False))
            return base.with_suffix(".py")

    def load(self) -> list[Program]:
        """The saved programs in manifest order (an unreadable one is skipped with a warning)."""
        programs = []
        for entry in self.manifest():
            pid = entry["id"]
            if not _ID.fullmatch(pid):
                warnings.warn(f"{self.manifest_path} lists {pid[:40]!r}, which is not a program id; skipped")
                continue
            base = self.folder / "programs" / pid
            try:
                source = read_regular_text(base.with_suffix(".py"))
                record_text = read_regular_text(base.with_suffix(".json"))
                if source is None or record_text is None:
                    raise ValueError("file missing")
                record = json.loads(record_text)
                if not isinstance(record, dict):
                    raise ValueError("the record is not an object")
            except (OSError, ValueError, RecursionError) as e:
                warnings.warn(f"program {pid} in {self.manifest_path} is unreadable ({e}); skipped")
                continue
            digest = source_hash(source)
            if digest[:12] != pid or record.get("id") != pid or record.get("source_sha256", digest) != digest:
                warnings.warn(f"program {pid} in {self.manifest_path}: its source no longer matches its id "
                              "(edited or tampered with since it was saved); skipped. Add the edited source as a new program.")
                continue
            provenance = record.get("provenance")
            programs.append(Program(source, name=record.get("name") if isinstance(record.get("name"), str) else None,
                                    provenance=provenance if isinstance(provenance, dict) else {}))
        return programs
