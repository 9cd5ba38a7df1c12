"""Programs and their provenance as plain files next to the notebook.

Layout under ``<root>/<task>/``::

    manifest.json          {"task": ..., "programs": [{"id", "name", "parent", "created"}, ...]} in order
    programs/<id>.py       the program source, as the LLM (or a repair) wrote it
    programs/<id>.json     its provenance: prompt, model, parameters, raw reply, tokens, cost, time, parent

Every file is written atomically (temp file + ``os.replace``), so an interrupted run leaves the
previous complete version, never half a file; the manifest makes a run resumable and diffable.
"""
from __future__ import annotations

import json
import re
import threading
import warnings
from pathlib import Path

from ..programs import Program
from .cache import atomic_write_text


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
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))["programs"]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError) as e:
            raise ValueError(f"{self.manifest_path} is not a valid manifest ({e}); "
                             f"restore it from version control or delete it to start over") from None

    def save(self, program: Program) -> Path:
        """Write the program's source and provenance, and append it to the manifest once."""
        with self._lock:
            base = self.folder / "programs" / program.id
            atomic_write_text(base.with_suffix(".py"), program.source.rstrip() + "\n")
            record = {"id": program.id, "name": program.name, "provenance": program.provenance}
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
            base = self.folder / "programs" / entry["id"]
            try:
                source = base.with_suffix(".py").read_text(encoding="utf-8")
                record = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                warnings.warn(f"program {entry['id']} in {self.manifest_path} is unreadable ({e}); skipped")
                continue
            programs.append(Program(source, name=record.get("name"), provenance=record.get("provenance") or {}))
        return programs
