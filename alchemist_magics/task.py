"""What a labeling task is: its name, description and classes, plus optional supplementary info.

A ``TaskSpec`` is plain data shared by every layer (prompts, offline synthesizer, workbench,
magics). Classes are indexed ``0..k-1`` in the order given here; abstain is ``-1``.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TaskSpec:
    """A labeling task.

    Args:
        name: short identifier, used for file names (``.alchemist/<name>/``).
        description: what to label, in the user's words ("Is this YouTube comment spam?").
        classes: class names; class ``i`` is ``classes[i]``.
        aliases: extra names a program may return for a class (``{"junk": "spam"}``).
        input_description: what a program receives as its one argument.
        dataset_description: supplementary info about the data (optional).
        class_descriptions: supplementary info per class name (optional).
        keywords: indicative keywords per class name (optional).
        rules: labeling rules in plain words (optional).
    """

    name: str
    description: str
    classes: list[str]
    aliases: dict[str, str] = field(default_factory=dict)
    input_description: str = "the text of one example (a str)"
    dataset_description: str = ""
    class_descriptions: dict[str, str] = field(default_factory=dict)
    keywords: dict[str, list[str]] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name or not str(self.name).strip():
            raise ValueError("TaskSpec needs a non-empty name")
        classes = [str(c).strip() for c in self.classes]
        if len(classes) < 2:
            raise ValueError(f"TaskSpec needs at least 2 classes, got {classes!r}")
        folded = [c.casefold() for c in classes]
        if len(set(folded)) != len(folded) or "" in folded:
            raise ValueError(f"class names must be distinct and non-empty, got {classes!r}")
        self.classes = classes
        for mapping in (self.class_descriptions, self.keywords):
            unknown = [c for c in mapping if c.casefold() not in folded]
            if unknown:
                raise ValueError(f"unknown class name(s) {unknown!r}; the classes are {classes!r}")

    @property
    def cardinality(self) -> int:
        """Number of classes ``k``."""
        return len(self.classes)
