"""WRENCH helpers: turn the regex rules listed in a WRENCH readme into programs and re-apply them.

The sms and trec readmes list their labeling functions as ``<class>\\t<regex>\\t<example>`` lines
(rules from Awasthi et al., ICLR 2020). The stored sms valid/test ``weak_labels`` do not line up
with their texts (shared/data/SOURCES.md), so the honest matrix for those splits is the one we get
by running the rules over the texts: :func:`rule_matrix` does that through the normal program
sandbox, which also makes the rules a real test of hand-written programs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import DataError, Dataset
from ..programs import LabelSpace, Program, apply_programs


def _class_index(rule_class: str, classes: list[str]) -> int:
    """Readmes spell classes out ('ENTITY', 'NUMERIC') where label.json abbreviates ('ENTY', 'NUM')."""
    name = rule_class.strip().upper()
    for i, c in enumerate(classes):
        if name == c.upper() or name.startswith(c.upper()[:3]):
            return i
    raise DataError(f"rule class {rule_class!r} matches none of the classes {classes}")


def rule_programs(folder: str | Path, classes: list[str]) -> list[Program]:
    """One program per regex rule in ``<folder>/readme.txt``, in the readme's (= matrix column) order.

    Each program returns the rule's class when the regex is found in the text (``re.search``, which
    reproduces every stored train row exactly) and abstains otherwise.
    """
    readme = Path(folder) / "readme.txt"
    if not readme.is_file():
        raise DataError(f"{readme} not found: the rules are read from the WRENCH readme")
    rules = [line.split("\t") for line in readme.read_text().splitlines() if line.count("\t") >= 2]
    if not rules:
        raise DataError(f"{readme} lists no '<class>\\t<regex>\\t<example>' rules")
    programs = []
    for number, (rule_class, pattern, *_example) in enumerate(rules, start=1):
        index = _class_index(rule_class, classes)
        name = f"rule_{number:02d}_{classes[index].lower()}"
        source = (
            "import re\n\n"
            f"PATTERN = re.compile({pattern!r})\n\n\n"
            f"def {name}(text):\n"
            f'    """{Path(folder).name} rule {number}: {classes[index]} when the pattern is found."""\n'
            f"    return {index} if PATTERN.search(text) else -1\n"
        )
        programs.append(Program(source, name=name, provenance={"source": f"wrench readme rule {number}"}))
    return programs


def rule_matrix(dataset: Dataset, folder: str | Path | None = None, **apply_kwargs) -> np.ndarray:
    """Apply the readme's rules to ``dataset`` in the sandbox; returns the int8 label matrix.

    ``folder`` defaults to the WRENCH folder the dataset was loaded from (``dataset.source``).
    E.g. ``rule_matrix(load_wrench(".../sms")["test"])`` rebuilds the misaligned sms test matrix.
    """
    if dataset.classes is None:
        raise DataError(f"{dataset.name} has no class names; load it with load_wrench")
    folder = folder or dataset.source
    if folder is None:
        raise DataError(f"{dataset.name}: pass the WRENCH folder that holds readme.txt")
    programs = rule_programs(folder, dataset.classes)
    apply_kwargs.setdefault("progress", False)
    result = apply_programs(programs, dataset.inputs(), LabelSpace(dataset.classes), **apply_kwargs)
    return result.L
