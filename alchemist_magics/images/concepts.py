"""Concept proposal: the LLM names the visual concepts that tell the classes apart.

The reply (JSON, organised by feature with one description per class, as in the paper) becomes a
plain DataFrame, one row per concept, that the user can read and edit before scoring:

=========  ============================================================================
column     the Python identifier programs use (``x.foot_type_waterbird``)
feature    the feature the concept describes ("foot type"), may be empty
class      the class the concept suggests, or None
concept    the text CLIP scores ("webbed, paddling feet")
=========  ============================================================================

Any table with a ``concept`` column (or a list of strings / dicts) is accepted where concepts are
expected; missing identifiers are derived from the text.
"""
from __future__ import annotations

import json
import keyword
import re

import pandas as pd

from ..llm.client import Completion, LLMClient
from ..llm.prompts import DEFAULT_TEMPLATES, PromptTemplates, class_list, supplementary
from ..task import TaskSpec

COLUMNS = ["column", "feature", "class", "concept"]
MAX_IDENTIFIER = 48


class ConceptError(ValueError):
    """A concept list that cannot be used (an LLM reply without concepts, bad identifiers...)."""


# -- prompt ----------------------------------------------------------------------------------
def concept_messages(task: TaskSpec, n_features: str = "8 to 12",
                     templates: PromptTemplates = DEFAULT_TEMPLATES) -> list[dict]:
    """The paper's concept prompt (template ``concepts.txt``): visual primitives by feature name,
    compared across classes, as JSON."""
    slots = ", ".join(f'"{c}": "<how it looks in {c} images>"' for c in task.classes)
    user = templates.render("concepts", mission=f"We label images for this task: {task.description}",
                            class_list=class_list(task), supplementary=supplementary(task),
                            class_slots=slots, n_features=n_features)
    system = "You are a helpful assistant with expert visual knowledge. You reply with JSON only."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# -- parsing ---------------------------------------------------------------------------------
def _json_values(reply: str):
    """Every JSON value found in the reply: fenced blocks first, then the widest {...} / [...] span."""
    chunks = re.findall(r"```(?:json|JSON)?\s*\n?(.*?)```", reply, re.S)
    for opener, closer in ("{}", "[]"):
        start, end = reply.find(opener), reply.rfind(closer)
        if 0 <= start < end:
            chunks.append(reply[start:end + 1])
    for chunk in chunks:
        for text in (chunk, re.sub(r",\s*([}\]])", r"\1", chunk)):  # second try: without trailing commas
            try:
                yield json.loads(text)
                break
            except ValueError:
                continue


def _text(value) -> str:
    """A cell as clean text: lists joined, whitespace collapsed, None/NaN (an edited table's blank) -> ""."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value if v is not None)
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return ""
    return " ".join(str(value).split())


def _items(value) -> list:
    """The list of feature entries, whatever the reply's outer shape."""
    if isinstance(value, dict):
        for key in ("concepts", "features", "visual_concepts", "primitives"):
            if key in value:
                return _items(value[key])
        # {"foot type": {"landbird": ..., "waterbird": ...}, ...}
        return [{"feature": k, "classes": v} for k, v in value.items()]
    return list(value) if isinstance(value, list) else []


def parse_concepts(reply: str, classes: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Concepts in an LLM reply, as a concept table, plus notes on what was dropped.

    Accepts fenced JSON or JSON with text around it, ``{"concepts": [...]}``, a bare list, a
    dict of feature -> {class: description}, descriptions given as lists, and plain strings.
    Descriptions for unknown classes and repeated concepts are dropped (and noted).
    """
    by_name = {c.casefold(): c for c in classes}
    rows, notes = [], []
    for value in _json_values(reply):
        for item in _items(value):
            if isinstance(item, str):
                rows.append({"feature": "", "class": None, "concept": _text(item)})
                continue
            if not isinstance(item, dict):
                continue
            feature = _text(item.get("feature") or item.get("name") or "")
            per_class = item.get("classes") or item.get("comparison") or item.get("descriptions")
            if not isinstance(per_class, dict):  # class names as keys of the item itself
                per_class = {k: v for k, v in item.items() if str(k).casefold() in by_name}
            for cls, description in per_class.items():
                if str(cls).casefold() not in by_name:
                    notes.append(f"ignored a description for unknown class {cls!r}")
                    continue
                rows.append({"feature": feature, "class": by_name[str(cls).casefold()], "concept": _text(description)})
        if rows:
            break
    table = concept_table(rows) if rows else pd.DataFrame(columns=COLUMNS)
    if len(table) < len(rows):
        notes.append(f"dropped {len(rows) - len(table)} empty or repeated concept(s)")
    return table, notes


def _validate(classes: list[str]):
    def validate(reply: str) -> str | None:
        return None if len(parse_concepts(reply, classes)[0]) else "reply holds no concepts as JSON"
    return validate


def propose_concepts(task: TaskSpec, client: LLMClient | None = None, *, n_features: str = "8 to 12",
                     templates: PromptTemplates = DEFAULT_TEMPLATES) -> tuple[pd.DataFrame, Completion]:
    """Ask the LLM for the visual concepts that separate ``task.classes``.

    Goes through the client's cache and cost meter (a re-run costs $0). A reply without concepts is
    retried; when every attempt fails, :class:`ConceptError` says why.

    Returns:
        the concept table (edit it freely before scoring) and the ``Completion`` (provenance).
    """
    client = client or LLMClient()
    completion = client.complete(concept_messages(task, n_features, templates), validate=_validate(task.classes),
                                 purpose="concepts")
    if not completion.ok:
        raise ConceptError(f"no concepts from {completion.model}: {completion.reason}: {completion.detail}")
    table, notes = parse_concepts(completion.text, task.classes)
    table.attrs["notes"] = notes
    return table, completion


# -- the editable table ----------------------------------------------------------------------
def identifier(text: str) -> str:
    """A Python identifier made from ``text`` ("Foot type: webbed!" -> "foot_type_webbed")."""
    name = re.sub(r"\W+", "_", text.casefold(), flags=re.ASCII).strip("_")[:MAX_IDENTIFIER].rstrip("_")
    if not name or name[0].isdigit() or keyword.iskeyword(name):
        name = f"c_{name}".rstrip("_")
    return name


def concept_table(concepts) -> pd.DataFrame:
    """A clean concept table from a DataFrame, a list of strings or dicts, or a {column: text} dict.

    Empty and repeated concepts (same text, ignoring case and spaces) are dropped. A given
    ``column`` must be a unique Python identifier; a missing one is derived from the feature and
    class (or from the text) and made unique.
    """
    if isinstance(concepts, pd.DataFrame):
        records = concepts.to_dict("records")
    elif isinstance(concepts, dict):
        records = [{"column": k, "concept": v} for k, v in concepts.items()]
    elif isinstance(concepts, (list, tuple)):
        records = [c if isinstance(c, dict) else {"concept": c} for c in concepts]
    else:
        raise ConceptError(f"expected a concept table, a list or a dict of concepts, got {type(concepts).__name__}")
    rows, seen_text, used = [], set(), set()
    given = [str(r["column"]) for r in records if _text(r.get("column"))]
    for name in given:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ConceptError(f"concept column {name!r} is not a Python identifier; rename it (e.g. {identifier(name)!r})")
    repeated = sorted({n for n in given if given.count(n) > 1})
    if repeated:
        raise ConceptError(f"concept column name(s) {repeated} repeat; give each concept its own name")
    used.update(given)
    for record in records:
        text = _text(record.get("concept"))
        if not text or text.casefold() in seen_text:
            continue
        seen_text.add(text.casefold())
        feature = _text(record.get("feature"))
        cls = _text(record.get("class")) or None
        column = _text(record.get("column"))
        if not column:
            column = base = identifier(f"{feature} {cls}" if feature and cls else text)
            suffix = 2
            while column in used:
                column, suffix = f"{base}_{suffix}", suffix + 1
            used.add(column)
        rows.append({"column": column, "feature": feature, "class": cls, "concept": text})
    return pd.DataFrame(rows, columns=COLUMNS)
