"""Prompts in the Alchemist shape, built from plain templates a user can read and override.

A program prompt is: optional supplementary info (dataset and class descriptions, labeled
exemplars, keywords, rules, retrieved background), then the task ("mission"), the labeling
instructions (each class -> its index, -1 when undecidable) and the function signature. To make
N programs differ, each request is given its own strategy and told what the others already use.

Templates live in ``alchemist_magics/llm/templates/*.txt`` and use ``$name`` placeholders
(``string.Template``). Override one by putting a file of the same name in your own folder
(``PromptTemplates(folder=...)``) or by passing its text (``PromptTemplates(program="...")``).
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from ..task import TaskSpec

ENTRY_NAME = "label_function"
EXEMPLAR_CHARS = 300  # one long exemplar should not dominate the prompt

# One per request, in turn: asking for different kinds of evidence is what makes programs vote
# differently (identical programs add nothing to a label model).
STRATEGIES = {
    "keywords": "keywords: words or short phrases typical of one class",
    "regex": "regular expressions over surface patterns (URLs, numbers, phone numbers, money, repeated characters)",
    "shape": "length and punctuation heuristics (text length, '!' and '?', capital letters, digits)",
    "phrasing": "the opening words and the phrasing (questions, imperatives, greetings, first/second person)",
    "score": "a small weighted score over several weak cues, with a threshold for each class",
    "negative": "negative evidence: what makes an example clearly NOT of a class",
    "chars": "character-level cues (emoji, non-ASCII characters, all-caps words, elongated words)",
    "rules": "the class descriptions and labeling rules, turned into explicit conditions",
}


class PromptTemplates:
    """The templates in use: the package defaults, overridden by a folder and/or by text."""

    def __init__(self, folder: str | Path | None = None, **texts: str):
        self.folder = Path(folder) if folder else None
        self.texts = texts

    def get(self, name: str) -> str:
        if name in self.texts:
            return self.texts[name]
        if self.folder and (self.folder / f"{name}.txt").exists():
            return (self.folder / f"{name}.txt").read_text(encoding="utf-8")
        return resources.files(__package__).joinpath("templates", f"{name}.txt").read_text(encoding="utf-8")

    def render(self, name: str, **fields) -> str:
        try:
            return Template(self.get(name)).substitute(fields).strip() + "\n"
        except KeyError as e:
            raise ValueError(f"template {name!r} uses ${e.args[0]}, which is not one of "
                             f"{sorted(fields)}; fix the placeholder in your template") from None


DEFAULT_TEMPLATES = PromptTemplates()


@dataclass
class Exemplar:
    """One labeled example shown in a prompt."""

    text: str
    label: str  # class name


def _clip(text: str, limit: int = EXEMPLAR_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def class_list(task: TaskSpec) -> str:
    return ", ".join(task.classes)


def mission(task: TaskSpec) -> str:
    return (f"Write a bug-free and executable function in Python to label {task.input_description} "
            f"for this task: {task.description}")


def instructions(task: TaskSpec) -> str:
    lines = [f"If the example is {name}, the function returns {i}." for i, name in enumerate(task.classes)]
    lines.append("If the class cannot be determined, the function returns -1.")
    return "\n".join(lines)


def signature(arg: str = "text") -> str:
    return f"def {ENTRY_NAME}({arg}):"


def _bare(task: TaskSpec) -> TaskSpec:
    return TaskSpec(task.name, task.description, task.classes, input_description=task.input_description)


def supplementary(task: TaskSpec, exemplars: list[Exemplar] | None = None,
                  background: list[str] | None = None) -> str:
    """The optional info block (empty string when there is none)."""
    parts = []
    if task.dataset_description:
        parts.append(f"Dataset description: {task.dataset_description}")
    if task.class_descriptions:
        parts.append("Class descriptions:\n" + "\n".join(f"- {c}: {d}" for c, d in task.class_descriptions.items()))
    if exemplars:
        parts.append("Labeled examples:\n" + "\n".join(f'- "{_clip(e.text)}" -> {e.label}' for e in exemplars))
    if task.keywords:
        # As Python string literals: shown bare, "500" came back as the int 500 (`500 in text` raises)
        parts.append("Indicative keywords:\n" + "\n".join(f"- {c}: {', '.join(repr(str(w)) for w in k)}"
                                                          for c, k in task.keywords.items()))
    if task.rules:
        parts.append("Labeling rules:\n" + "\n".join(f"- {r}" for r in task.rules))
    if background:
        parts.append("Background from your documents:\n" + "\n".join(f"- {_clip(b, 600)}" for b in background))
    return "".join(p + "\n\n" for p in parts)


def program_messages(task: TaskSpec, *, strategy: str | None = None, used: list[str] | None = None,
                     exemplars: list[Exemplar] | None = None, background: list[str] | None = None,
                     templates: PromptTemplates = DEFAULT_TEMPLATES) -> list[dict]:
    """Chat messages asking for one labeling program.

    Args:
        strategy: the approach this program should take (a value of ``STRATEGIES``).
        used: approaches other programs already use, so this one can differ.
        exemplars: labeled examples to show (see ``retrieval.select_exemplars``).
        background: passages retrieved from the user's documents.
    """
    strategy_text = f"Approach for this function: {strategy}.\n" if strategy else ""
    avoid = ("Other functions already use these approaches, so find different evidence:\n"
             + "\n".join(f"- {u}" for u in used) + "\n") if used else ""
    user = templates.render("program", supplementary=supplementary(task, exemplars, background),
                            mission=mission(task), instructions=instructions(task), strategy=strategy_text,
                            avoid=avoid, signature=signature())
    return [{"role": "system", "content": templates.render("system", description=task.description)},
            {"role": "user", "content": user}]


def supplementary_messages(task: TaskSpec, background: list[str] | None = None,
                           templates: PromptTemplates = DEFAULT_TEMPLATES) -> list[dict]:
    """Stage one of the two-stage mode: ask the LLM to write the supplementary info as JSON
    (optionally grounded in passages retrieved from the user's documents)."""
    user = templates.render("supplementary", mission=mission(task), class_list=class_list(task),
                            background=supplementary(_bare(task), background=background))
    return [{"role": "system", "content": templates.render("system", description=task.description)},
            {"role": "user", "content": user}]


def repair_messages(task: TaskSpec, source: str, stats: dict, wrong: list[tuple[str, str, str]],
                    uncovered: list[tuple[str, str]], *, exemplars: list[Exemplar] | None = None,
                    templates: PromptTemplates = DEFAULT_TEMPLATES, errors: list[tuple[str, str]] | None = None,
                    message: str = "") -> list[dict]:
    """Messages asking to improve ``source``, given its statistics, rows it gets wrong
    (text, returned, correct), rows it leaves uncovered (text, correct), rows where it failed
    (text, the exception or bad value) and its run's report ``message``."""
    stats_text = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in stats.items())
    blocks = []
    if message and not message.startswith("ok"):
        blocks.append(f"When run over the data it reported: {_clip(message, 400)}")
    if errors:
        blocks.append("Rows where it failed (fix the code so they return a label or -1):\n" + "\n".join(
            f'- "{_clip(t)}" -> {_clip(what, 200)}' for t, what in errors))
    if wrong:
        blocks.append("Rows it labels wrongly:\n" + "\n".join(
            f'- "{_clip(t)}" -> returned {got}, correct is {want}' for t, got, want in wrong))
    if uncovered:
        blocks.append("Rows it leaves unlabeled (returns -1):\n" + "\n".join(
            f'- "{_clip(t)}" (correct: {want})' for t, want in uncovered))
    user = templates.render("repair", supplementary=supplementary(task, exemplars), mission=mission(task),
                            instructions=instructions(task), source=source.strip(), stats=stats_text,
                            examples="".join(b + "\n\n" for b in blocks), signature=signature())
    return [{"role": "system", "content": templates.render("system", description=task.description)},
            {"role": "user", "content": user}]


def zero_shot_messages(task: TaskSpec, text: str, templates: PromptTemplates = DEFAULT_TEMPLATES) -> list[dict]:
    """The paper's zero-shot prompt for labeling one row directly (the counterfactual)."""
    system = templates.render("zero_shot_system", description=task.description, class_list=class_list(task))
    return [{"role": "system", "content": system},
            {"role": "user", "content": templates.render("zero_shot_user", text=text)}]
