"""The LLM + synthesizer choice: keep one writer's programs (the LLM's) beside another's (the offline
synthesizer's) only when cross-validation on the labeled dev rows prefers them with confidence; the
test rows play no part. (A small model's programs are noisy: the synthesizer's alone are the default.
Per-class narrowing of such programs is the label model's, ``Workbench.fit(narrow="auto")``.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..aggregate.guard import N_BOOT, bootstrap_share, crossval_predictions
from ..aggregate.select import score


@dataclass
class Choice:
    """What the choice did: ``scores`` per candidate (5-fold CV on the dev rows, and the bootstrap
    share), ``chosen`` (its name), the programs ``disabled``, and ``note`` (one line)."""

    chosen: str
    scores: dict = field(default_factory=dict)
    disabled: list = field(default_factory=list)
    note: str = ""


def join_if_better(wb, names: list[str], metric: str = "accuracy", *, confidence: float = 0.95,
                   n_boot: int = N_BOOT) -> Choice:
    """Keep the programs ``names`` (e.g. the LLM's) beside the workbench's others (e.g. the offline
    synthesizer's) only when their 5-fold cross-validated predictions on the dev rows score better
    with them in at least ``confidence`` of ``n_boot`` paired bootstrap resamples of those rows
    (``aggregate.guard.bootstrap_share``: the others alone are the default, and a few points on a few
    hundred rows are noise); otherwise disable them. Call it after ``wb.fit()``: the columns, flags
    and narrowed votes are that fit's."""
    if wb.label_model is None:
        raise ValueError("join_if_better compares what fit() uses: call wb.fit() first")
    y, T, D, base = wb.judged_votes()  # as the last fit() used them
    T, D, cols = T[:, base], D[:, base], [wb.program_names("train")[j] for j in base]
    k, seed = wb.task.cardinality, wb.seed
    mine = [j for j, n in enumerate(cols) if n in set(names)]
    others = [j for j in range(len(cols)) if j not in mine]
    if not mine or not others or len(y) < 20:
        return Choice("all", note="join: nothing to compare")
    pred = {"with": crossval_predictions(T, D, y, metric, k, seed),
            "without": crossval_predictions(T[:, others], D[:, others], y, metric, k, seed)}
    scores = {name: score(y, p, metric) for name, p in pred.items()}
    share = bootstrap_share(y, pred["with"], pred["without"], metric, n_boot, seed)
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
