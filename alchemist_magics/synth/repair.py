"""Offline repair: rewrite a weak program from the rows it gets wrong, without an LLM.

The LLM repair loop (:mod:`alchemist_magics.llm.repair`) shows the model a weak program's
statistics and a few rows it gets wrong. This module does the same job from data alone:

1. **Evidence.** The rows where the program fires and the right answer is known: the labeled dev
   rows (gold) and the train rows the fitted label model is confident about (its labels).
2. **Exceptions.** Every row becomes its words and two-word phrases (``\\w+`` tokens of the
   lower-cased text, exactly what the written program tests). A greedy search picks, one at a time,
   the key that best separates the program's errors from its right answers, until no key marks
   at least ``min_support`` errors at an error rate of ``min_error_rate``. Each key either makes
   the program abstain or, where the rows it marks nearly all belong to one other class, flips
   the answer to that class.
3. **A new program.** The parent's source is kept unchanged as a helper; a new entry function
   calls it and applies the exceptions in the order they were learned. Its provenance mirrors an
   LLM repair's: ``{"source": "offline-repair", "parent": <parent id>, "reasons", "stats", ...}``.

The result is an ordinary program: it goes through the same check, smoke test and sandbox as any
other, and a person can read, edit or delete each exception.
"""
from __future__ import annotations

import ast
import re
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..aggregate.analysis import analysis_stats, weak_reasons
from ..programs import Program, find_entry
from ..task import TaskSpec

TOKEN = re.compile(r"\w+")
# Keys end up as string constants in the program; the static check refuses dunder-like strings.
_DUNDERISH = re.compile(r"__")


class NothingToLearn(ValueError):
    """The data hold no usable sign of where the program goes wrong."""


@dataclass
class Evidence:
    """Rows to learn a repair from: the text, the parent's normalized output (-1 when it abstains
    or fails) and the trusted label (-1 when unknown), plus where each row came from."""

    texts: list[str]
    outputs: np.ndarray
    targets: np.ndarray
    origin: np.ndarray  # "dev" (gold label) or "train" (confident label-model label)

    def __post_init__(self):
        self.outputs = np.asarray(self.outputs, dtype=np.int64)
        self.targets = np.asarray(self.targets, dtype=np.int64)
        self.origin = np.asarray(self.origin, dtype=object)
        if not len(self.texts) == len(self.outputs) == len(self.targets) == len(self.origin):
            raise ValueError(f"evidence columns differ in length: {len(self.texts)} texts, {len(self.outputs)} "
                             f"outputs, {len(self.targets)} targets, {len(self.origin)} origins")
        bad = [type(t).__name__ for t in self.texts if not isinstance(t, str)][:1]
        if bad:
            raise TypeError(f"offline repair learns from text inputs, got a {bad[0]}; "
                            f"repair programs over other inputs with the LLM repair (llm.repair)")


def words_and_pairs(text: str) -> set[str]:
    """The keys a repaired program tests: ``\\w+`` words of the lower-cased text and adjacent pairs."""
    words = TOKEN.findall(text.lower())
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}


def program_stats(bench, name: str) -> dict:
    """The workbench's analysis row of program ``name``, with faults and invalid outputs as
    fractions of train rows (what :func:`~alchemist_magics.aggregate.analysis.weak_reasons` reads)."""
    table = bench.analysis()
    if name not in table.index:
        raise KeyError(f"no program named {name!r}; programs: {list(table.index)}")
    return analysis_stats(table.loc[name], len(bench.datasets["train"]))


def workbench_evidence(bench, name: str, *, confidence: float = 0.7) -> Evidence:
    """Evidence for program ``name`` from a workbench that has been applied (and, for train rows,
    fitted): dev rows with gold labels, and train rows where the fitted label model, with this
    program's votes masked, gives a class probability of at least ``confidence``."""
    names = [p.name for p in bench.programs]
    if name not in names:
        raise KeyError(f"no program named {name!r}; programs: {names}")
    j = names.index(name)
    texts, outputs, targets, origin = [], [], [], []
    dev = bench.datasets.get("dev")
    if dev is not None and dev.has_labels:
        texts += list(dev.texts)
        outputs.append(bench.matrix("dev")[:, j])
        targets.append(dev.labels)
        origin += ["dev"] * len(dev)
    if bench.label_model is not None:
        # The program's own vote is masked: the other programs decide where it is wrong.
        L = bench.matrix("train").copy()
        L[:, j] = -1
        proba = bench.label_model.predict_proba(L)
        sure = proba.max(axis=1) >= confidence
        texts += list(bench.datasets["train"].texts)
        outputs.append(bench.matrix("train")[:, j])
        targets.append(np.where(sure, proba.argmax(axis=1), -1))
        origin += ["train"] * len(sure)
    if not texts:
        raise NothingToLearn(f"no labeled dev rows and no fitted label model: nothing to learn {name}'s errors "
                             f"from; give the workbench a labeled dev split or call .fit() first")
    return Evidence(texts, np.concatenate(outputs), np.concatenate(targets), np.array(origin, dtype=object))


@dataclass
class LearnedException:
    """One learned exception: where ``key`` is among a row's words and pairs, answer ``answer``."""

    key: str
    answer: int  # what the repaired program returns instead (-1 = abstain)
    errors: int  # evidence rows it covered where the parent was wrong
    rights: int  # ... and where the parent was right


def mine_exceptions(keys: list[set[str]], outputs: np.ndarray, targets: np.ndarray, *, min_support: int = 3,
                    min_error_rate: float = 0.6, flip_purity: float = 0.9, max_keys: int = 10) -> list[LearnedException]:
    """Greedy exception keys over rows where the parent fires and the target is known.

    Score of a key (on rows no earlier key covers) = rights - errors gained: abstaining removes its
    errors and its right answers; flipping to class c turns rows of class c right and the parent's
    right answers wrong. A key qualifies with ``min_support`` errors and a smoothed error rate
    ``(errors + 1) / (rows + 2)`` of at least ``min_error_rate``; it flips when at least
    ``flip_purity`` of its rows (and ``min_support`` of them) belong to one other class.
    """
    index = defaultdict(list)
    for row, row_keys in enumerate(keys):
        for key in row_keys:
            index[key].append(row)
    index = {k: np.array(rows) for k, rows in index.items() if len(rows) >= min_support and not _DUNDERISH.search(k)}
    wrong = outputs != targets
    open_rows = np.ones(len(keys), dtype=bool)
    chosen = []
    while len(chosen) < max_keys:
        best = None
        for key, rows in index.items():
            rows = rows[open_rows[rows]]
            errors = int(wrong[rows].sum())
            if errors < min_support or (errors + 1) / (len(rows) + 2) < min_error_rate:
                continue
            rights = len(rows) - errors
            answer, gain = -1, errors - rights
            counts = np.bincount(targets[rows])
            top = int(counts.argmax())
            fixed = int((wrong[rows] & (targets[rows] == top)).sum())
            if counts[top] >= max(min_support, flip_purity * len(rows)) and 2 * (fixed - rights) > gain:
                answer, gain = top, 2 * (fixed - rights)
            # Ties go to the more frequent, then alphabetically first key: deterministic.
            candidate = (-gain, -len(rows), key, answer, errors, rights)
            best = candidate if best is None else min(best, candidate)
        if best is None or best[0] >= 0:
            break
        _, _, key, answer, errors, rights = best
        chosen.append(LearnedException(key, answer, errors, rights))
        open_rows[index.pop(key)] = False
    return chosen


def repair_offline(task: TaskSpec, program: Program, evidence: Evidence, *, reasons: list[str] | None = None,
                   stats: dict | None = None, min_support: int = 3, min_error_rate: float = 0.6,
                   flip_purity: float = 0.9, max_keys: int = 10, max_rows: int = 20_000, seed: int = 0) -> Program:
    """A new program: ``program`` plus the exceptions mined from ``evidence`` (see the module doc).

    At most ``max_rows`` rows besides the dev rows are mined (a sample drawn with ``seed``).

    ``reasons`` and ``stats`` (why the program counts as weak, its analysis row) go into the
    provenance, as for an LLM repair. Raises :class:`NothingToLearn` when the program fires on no
    row with a known label, makes no error there, or no word or phrase marks its errors.
    """
    entry, why = find_entry(program.source)
    if entry is None:
        raise ValueError(f"cannot repair {program.name}: {why}")
    fired = (evidence.outputs >= 0) & (evidence.targets >= 0)
    # Bound the mining cost on big data: every dev row, and a seeded sample of the other rows.
    extra = np.flatnonzero(fired & (evidence.origin != "dev"))
    if len(extra) > max_rows:
        fired[np.random.default_rng(seed).choice(extra, len(extra) - max_rows, replace=False)] = False
    if not fired.any():
        raise NothingToLearn(f"{program.name} fires on no row with a known label: nothing to learn from; "
                             f"label more dev rows or lower confidence=")
    outputs, targets = evidence.outputs[fired], evidence.targets[fired]
    errors = int((outputs != targets).sum())
    if errors == 0:
        raise NothingToLearn(f"{program.name} agrees with all {int(fired.sum())} known labels where it fires: nothing to repair")
    texts = [t for t, f in zip(evidence.texts, fired) if f]
    keys = [words_and_pairs(t) for t in texts]
    found = mine_exceptions(keys, outputs, targets, min_support=min_support, min_error_rate=min_error_rate,
                            flip_purity=flip_purity, max_keys=max_keys)
    if not found:
        raise NothingToLearn(f"no word or phrase marks {program.name}'s errors ({errors} of {len(texts)} rows; a key needs "
                             f"{min_support}+ errors at error rate {min_error_rate}+): edit it by hand or use the LLM repair")
    after = _simulate(keys, outputs, found)
    if not (after >= 0).any():
        raise NothingToLearn(f"{program.name} is wrong on nearly every row it votes on and no single class fixes it: "
                             f"delete it rather than repair it")
    origin = evidence.origin[fired]
    summary = {
        "exceptions": [{"key": e.key, "answer": e.answer, "errors": e.errors, "rights": e.rights} for e in found],
        "learned_from": {o: int((origin == o).sum()) for o in ("dev", "train")},
        "before": _tally(outputs, targets, origin), "after": _tally(after, targets, origin),
        "parent_stats": dict(stats or {}),
    }
    source = _write(task, program, entry, found, len(texts), errors)
    provenance = {"source": "offline-repair", "parent": program.id, "reasons": list(reasons or []),
                  "stats": summary, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "settings": {"min_support": min_support, "min_error_rate": min_error_rate,
                               "flip_purity": flip_purity, "max_keys": max_keys, "max_rows": max_rows, "seed": seed}}
    if "view" in program.provenance:  # it reads the same concept rows as its parent
        provenance["view"] = program.provenance["view"]
    return Program(source, provenance=provenance)


def repair_program(bench, name: str, *, confidence: float = 0.7, reasons: list[str] | None = None,
                   **mining) -> Program:
    """Offline repair of workbench program ``name`` from its dev errors and the label model's
    confident train labels. ``reasons`` default to :func:`weak_reasons` of its analysis row;
    ``mining`` goes to :func:`repair_offline`. The new program is returned, not added."""
    stats = program_stats(bench, name)
    program = next(p for p in bench.programs if p.name == name)
    evidence = workbench_evidence(bench, name, confidence=confidence)
    return repair_offline(bench.task, program, evidence, reasons=weak_reasons(stats) if reasons is None else reasons,
                          stats=stats, **mining)


def _simulate(keys: list[set[str]], outputs: np.ndarray, found: list[LearnedException]) -> np.ndarray:
    """What the repaired program returns on the evidence rows (first matching exception wins)."""
    after = outputs.copy()
    for row, row_keys in enumerate(keys):
        for e in found:
            if e.key in row_keys:
                after[row] = e.answer
                break
    return after


def _tally(outputs: np.ndarray, targets: np.ndarray, origin: np.ndarray) -> dict:
    """Fired / right counts per origin on rows with a known target."""
    out = {}
    for o in ("dev", "train"):
        mask = (origin == o) & (outputs >= 0)
        out[o] = {"fired": int(mask.sum()), "right": int((outputs[mask] == targets[mask]).sum())}
    return out


def _write(task: TaskSpec, parent: Program, entry: str, found: list[LearnedException], rows: int, errors: int) -> str:
    """The repaired program's source: the parent unchanged, then the exceptions and a new entry."""
    tree = ast.parse(parent.source)
    taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    imports_re = any(isinstance(n, ast.Import) and any(a.name == "re" and a.asname is None for a in n.names)
                     for n in tree.body)

    def fresh(name: str) -> str:
        candidate, i = name, 2
        while candidate in taken:
            candidate, i = f"{name}_{i}", i + 1
        taken.add(candidate)
        return candidate

    table, keys_of, new_entry = fresh("EXCEPTIONS"), fresh("words_and_pairs"), fresh(f"{entry}_repaired")
    # Reuse the parent's ``import re``; otherwise import it under a name the parent does not use.
    regex = "re" if imports_re else fresh("re")
    header = "" if imports_re else (f"import re as {regex}\n\n" if regex != "re" else "import re\n\n")
    names = {-1: "abstain", **dict(enumerate(task.classes))}
    lines = "\n".join(f"    {e.key!r}: {e.answer},  # {names[e.answer]}: {e.errors} wrong, {e.rights} right"
                      for e in found)
    abstain_aliases = sorted(a.casefold() for a, t in task.aliases.items() if t == -1)
    # a parent that reads concept rows (the offline writer's, provenance["view"]) gets a row: its words are x.text's
    arg, text = ("x", "x.text") if "view" in (parent.provenance or {}) else ("text", "text")
    abstains = "answer is None or answer == -1" + (
        f" or str(answer).strip().casefold() in {set(abstain_aliases)!r}" if abstain_aliases else "")
    return (
        header + parent.source.strip() + "\n\n\n"
        f"# Learned offline from {rows} rows where {entry}() fires and the label is known ({errors} wrong):\n"
        f"# key (a word or two-word phrase) -> answer instead of {entry}()'s; -1 = abstain. First match wins.\n"
        f"{table} = {{\n{lines}\n}}\n\n\n"
        f"def {keys_of}(text):\n"
        f'    """Words of the lower-cased text and adjacent word pairs."""\n'
        f"    words = {regex}.findall(r\"\\w+\", text.lower())\n"
        f"    return set(words) | {{a + \" \" + b for a, b in zip(words, words[1:])}}\n\n\n"
        f"def {new_entry}({arg}):\n"
        f'    """{entry} (id {parent.id}) with {len(found)} learned exceptions."""\n'
        f"    answer = {entry}({arg})\n"
        f"    if {abstains}:\n"
        f"        return -1\n"
        f"    keys = {keys_of}({text})\n"
        f"    for key, instead in {table}.items():\n"
        f"        if key in keys:\n"
        f"            return instead\n"
        f"    return answer\n"
    )
