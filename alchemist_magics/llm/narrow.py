"""Make a small model's programs useful: per-class narrowing and the LLM + synthesizer choice, both
decided by cross-validation on the labeled dev rows (the test rows play no part).

A small model often writes ``return <class a> if <cue> else <class b>``: one branch may be precise
while the other guesses (sms, Qwen2.5-Coder-1.5B: programs whose "ham" votes are mostly right
and whose "spam" votes mostly wrong). :func:`narrow_programs` keeps such a program's good votes and
drops its votes for the classes where, on dev, it is right significantly less often than
``min_accuracy`` (one-sided binomial test at the flags' 95 %): the narrowed program is a child
(``parent`` = the old id) that abstains there, and its parent is disabled; a program weak on every
class it votes is disabled. :func:`join_if_better` keeps programs (the LLM's) beside others (the
synthesizer's) only when cross-validation on dev prefers them with confidence; otherwise the others
stay alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..aggregate.guard import crossval_predictions
from ..programs import Program
from ..programs.check import find_entry

@dataclass
class Choice:
    """What a cross-validated choice did: ``scores`` per candidate (5-fold CV on the dev rows),
    ``chosen`` (its name), ``programs`` added or disabled, and ``note`` (one line, for ``fit_notes``)."""

    chosen: str
    scores: dict = field(default_factory=dict)
    added: list = field(default_factory=list)
    disabled: list = field(default_factory=list)
    note: str = ""


def weak_classes(votes, y, k: int, min_accuracy: float = 0.7, confidence: float = 0.95) -> list[list[int]]:
    """For each column of ``votes`` (labeled rows x programs), the classes whose votes are right
    significantly less often than ``min_accuracy`` (one-sided binomial test at ``1 - confidence``);
    for a program weak on every class it votes, all of them."""
    from scipy.stats import binom

    votes, y = np.asarray(votes), np.asarray(y)
    return [[c for c in range(k) if (col == c).any()
             and binom.cdf(int(((col == c) & (y == c)).sum()), int((col == c).sum()), min_accuracy) < 1 - confidence]
            for col in votes.T]


def mask_classes(L, drop: list[list[int]]):
    """``L`` with column j's votes for the classes in ``drop[j]`` turned into abstains."""
    L = np.array(L, copy=True)
    for j, classes in enumerate(drop):
        if classes:
            L[np.isin(L[:, j], classes), j] = -1
    return L


def crossval_score(L_train, L_dev, y, metric: str, k: int, seed: int = 0, narrow: dict | None = None) -> float:
    """The label model's 5-fold cross-validated ``metric`` on the labeled dev rows
    (``aggregate.guard.crossval_predictions``). With ``narrow`` (``weak_classes``' keyword
    arguments) each fold drops the classes found weak on its other rows."""
    from ..aggregate.select import score

    def narrowing(rest):
        drop = weak_classes(L_dev[rest], y[rest], k, **narrow)
        return mask_classes(L_train, drop), mask_classes(L_dev, drop)

    return score(y, crossval_predictions(L_train, L_dev, y, metric, k, seed, None if narrow is None else narrowing),
                 metric)


def narrowed_program(program: Program, drop: list[int], classes: list[str]) -> Program:
    """A child of ``program`` that abstains where it would vote for a class in ``drop`` (by index or
    by name; ints and class names are what programs return)."""
    entry, why = find_entry(program.source)
    if entry is None:
        raise ValueError(f"{program.name}: {why}")
    names = tuple(classes[c].strip().casefold() for c in drop)
    tag = "_".join(classes[c] for c in drop).replace(" ", "_")
    wrapper = f"{entry}_not_{tag}"
    source = (f"{program.source.rstrip()}\n\n\ndef {wrapper}(x):\n"
              f"    # narrowed: its votes for {', '.join(classes[c] for c in drop)} were mostly wrong on the dev rows\n"
              f"    vote = {entry}(x)\n"
              f"    if vote in {tuple(drop)!r} or str(vote).strip().casefold() in {names!r}:\n"
              f"        return -1\n"
              f"    return vote\n")
    return Program(source, name=f"{program.name}_not_{tag}",
                   provenance={**program.provenance, "parent": program.id, "narrowed": [classes[c] for c in drop]})


def _fit_inputs(wb, names: list[str] | None):
    """The unflagged columns fit() would use (train, dev held-out votes, labels) and their names."""
    dev = wb.datasets["dev"]
    known = np.flatnonzero(dev.labels >= 0)
    all_names = wb._program_names("train")
    flagged = set(wb.flags().index)
    cols = [j for j, n in enumerate(all_names) if n not in flagged and (names is None or n in names)]
    L_dev = wb.dev_votes()  # programs written from the dev rows: their cross-fitted votes
    return wb.matrix("train")[:, cols], L_dev[known][:, cols], dev.labels[known], [all_names[j] for j in cols]


def narrow_programs(wb, names: list[str] | None = None, metric: str = "accuracy", *, min_accuracy: float = 0.7,
                    confidence: float = 0.95) -> Choice:
    """Narrow the programs ``names`` (default: every unflagged one) of an applied workbench with labeled
    dev rows when 5-fold cross-validation on dev scores strictly better with the narrowed votes (see
    the module docstring): the narrowed children are added and applied, their parents disabled.
    A program weak on every class it votes is disabled (no child). Returns the :class:`Choice`;
    nothing changes when it says "as written"."""
    T, D, y, cols = _fit_inputs(wb, names)
    k, seed = wb.task.cardinality, wb.seed
    drop = weak_classes(D, y, k, min_accuracy, confidence)
    voted = [set(np.unique(D[:, j]).tolist()) - {-1} for j in range(D.shape[1])]
    if len(y) < 20 or not any(drop):
        return Choice("as written", note="narrowing: no program has a class it votes mostly wrongly on dev")
    if all(votes <= set(classes) for votes, classes in zip(voted, drop)):
        return Choice("as written", note="narrowing: every program is weak on every class it votes (see flags)")
    kwargs = {"min_accuracy": min_accuracy, "confidence": confidence}
    scores = {"as written": crossval_score(T, D, y, metric, k, seed),
              "narrowed": crossval_score(T, D, y, metric, k, seed, narrow=kwargs)}
    verdict = (f"5-fold cross-validation on the {len(y)} dev rows ({metric}): as written "
               f"{scores['as written']:.3f}, narrowed {scores['narrowed']:.3f}")
    if scores["narrowed"] <= scores["as written"]:
        return Choice("as written", scores, note=f"programs kept as written: {verdict}")
    programs = {p.name: p for p in wb.programs}
    added, disabled, silenced = [], [], []
    for name, classes, votes in zip(cols, drop, voted):
        if classes and votes <= set(classes):
            wb.disable(name)
            disabled.append(name)
            silenced.append(name)
        elif classes:
            child = narrowed_program(programs[name], classes, list(wb.task.classes))
            if wb.add(child):
                wb.disable(name)
                added.append(child.name)
                disabled.append(name)
    if disabled:
        wb.apply(progress=False)  # outputs come from the cache; the children run
    done = ([f"narrowed {len(added)} programs ({', '.join(added)}; parents disabled)"] if added else []) + \
        ([f"set aside {len(silenced)} weak on every class they vote ({', '.join(silenced)})"] if silenced else [])
    return Choice("narrowed", scores, added, disabled, note=f"{', '.join(done) or 'no child passed the check'}: {verdict}")


def join_if_better(wb, names: list[str], metric: str = "accuracy", *, confidence: float = 0.95,
                   n_boot: int = 2000) -> Choice:
    """Keep the programs ``names`` (e.g. the LLM's) beside the workbench's others (e.g. the offline
    synthesizer's) only when their 5-fold cross-validated predictions on the dev rows score better
    with them in at least ``confidence`` of ``n_boot`` paired bootstrap resamples of those rows (the
    test ``select_label_model`` puts any model to against majority vote: the others alone are the
    default, and a few points on a few hundred rows are noise); otherwise disable them. The label
    model, its choice and the flags are fit()'s; the others' votes on dev are their cross-fitted ones
    where they were written from those rows."""
    from ..aggregate.select import score, scores_batch

    T, D, y, cols = _fit_inputs(wb, None)
    k, seed = wb.task.cardinality, wb.seed
    mine = [j for j, n in enumerate(cols) if n in set(names)]
    others = [j for j in range(len(cols)) if j not in mine]
    if not mine or not others or len(y) < 20:
        return Choice("all", note="join: nothing to compare")
    pred = {"with": crossval_predictions(T, D, y, metric, k, seed),
            "without": crossval_predictions(T[:, others], D[:, others], y, metric, k, seed)}
    scores = {name: score(y, p, metric) for name, p in pred.items()}
    boot = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    share = float((scores_batch(y[boot], pred["with"][boot], metric)
                   > scores_batch(y[boot], pred["without"][boot], metric)).mean())
    scores["bootstrap_share"] = share
    verdict = (f"5-fold cross-validation on the {len(y)} dev rows ({metric}): with them "
               f"{scores['with']:.3f}, without {scores['without']:.3f}, better with them in "
               f"{share:.0%} of {n_boot} bootstrap resamples (needs {confidence:.0%})")
    if share >= confidence:
        return Choice("with", scores, note=f"{len(mine)} programs joined: {verdict}")
    present = {p.name for p in wb.programs}
    gone = [n for n in names if n in present]
    for name in gone:
        wb.disable(name)
    if gone:
        wb.apply(progress=False)  # the matrices without them (outputs come from the cache)
    return Choice("without", scores, disabled=gone, note=f"{len(gone)} programs set aside (disabled): {verdict}")
