"""Two-stage mode: the LLM first writes the supplementary info (dataset and class descriptions,
keywords, rules), which then goes into every program prompt. What the user gave is kept."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from ..task import TaskSpec
from .client import Completion, LLMClient
from .prompts import DEFAULT_TEMPLATES, PromptTemplates, supplementary_messages
from .retrieval import DocumentRetriever

FIELDS = ("dataset_description", "class_descriptions", "keywords", "rules")


def _json_object(reply: str) -> dict | None:
    match = re.search(r"\{.*\}", reply, re.S)
    try:
        value = json.loads(match.group(0)) if match else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _validate(reply: str) -> str | None:
    return None if _json_object(reply) is not None else "reply holds no JSON object"


def _by_class(task: TaskSpec, mapping) -> dict:
    """Keep entries whose key is one of the task's classes (matched case-insensitively)."""
    names = {c.casefold(): c for c in task.classes}
    if not isinstance(mapping, dict):
        return {}
    return {names[str(k).casefold()]: v for k, v in mapping.items() if str(k).casefold() in names}


def write_supplementary(task: TaskSpec, client: LLMClient | None = None, *,
                        documents: str | Path | DocumentRetriever | None = None,
                        templates: PromptTemplates = DEFAULT_TEMPLATES) -> tuple[TaskSpec, Completion]:
    """A copy of ``task`` whose empty supplementary fields are written by the LLM.

    Fields the user filled are never replaced. When the request fails, the task comes back
    unchanged and the ``Completion`` says why.
    """
    client = client or LLMClient()
    background = None
    if documents is not None:
        retriever = documents if isinstance(documents, DocumentRetriever) else DocumentRetriever(documents)
        background = [p.text for p in retriever.search(" ".join([task.description, *task.classes]), k=3)]
    completion = client.complete(supplementary_messages(task, background, templates), validate=_validate,
                                 purpose="supplementary")
    if not completion.ok:
        return task, completion
    info = _json_object(completion.text)
    written = {
        "dataset_description": str(info.get("dataset_description") or ""),
        "class_descriptions": {c: str(d) for c, d in _by_class(task, info.get("class_descriptions")).items()},
        "keywords": {c: [str(w) for w in ws] for c, ws in _by_class(task, info.get("keywords")).items()
                     if isinstance(ws, list)},
        "rules": [str(r) for r in rules] if isinstance(rules := info.get("rules"), list) else [],
    }
    filled = {f: written[f] for f in FIELDS if not getattr(task, f)}
    return dataclasses.replace(task, **filled), completion
