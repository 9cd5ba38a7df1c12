"""Per-program statistics: snorkel's LFAnalysis table, vectorised, plus caller-given columns, and
what makes a program weak by them (read by the LLM and the offline repair alike)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import ABSTAIN, check_matrix


def program_analysis(L, y=None, names=None, extra: dict | None = None) -> pd.DataFrame:
    """One row per program with snorkel's ``LFAnalysis.lf_summary`` columns and definitions.

    Polarity (sorted labels it emits), Coverage (fraction of rows it labels), Overlaps (rows it
    labels that another program also labels), Conflicts (rows it labels on which two programs
    give different labels), and with gold ``y``: Correct, Incorrect, Emp. Acc. (0 when it never
    votes, as in snorkel). With ``names`` the index is the names and a ``j`` column is added
    (as snorkel does with ``lfs``). ``extra`` maps column name -> one value per program
    (faults, invalid outputs, runtime, status...) and is appended as given.
    """
    L = check_matrix(L)
    n, m = L.shape
    voted = L != ABSTAIN
    n_votes = voted.sum(axis=1)
    # snorkel: a row is conflicted when some vote differs from the row's largest vote
    row_max = L.max(axis=1)
    row_min = np.where(voted, L, np.int8(127)).min(axis=1)
    conflicted = (n_votes > 1) & (row_min != row_max)
    index = list(range(m)) if names is None else list(names)
    if len(index) != m:
        raise ValueError(f"got {len(index)} names for {m} programs")
    cols = {}
    if names is not None:
        cols["j"] = list(range(m))
    top = int(L.max()) if L.size else -1
    counts = np.stack([(L == c).sum(axis=0) for c in range(top + 1)], axis=1) if top >= 0 else np.zeros((m, 0))
    cols["Polarity"] = [np.flatnonzero(counts[j]).tolist() for j in range(m)]
    denom = max(n, 1)
    covered_count = voted.sum(axis=0)
    cols["Coverage"] = covered_count / denom
    cols["Overlaps"] = voted[n_votes > 1].sum(axis=0) / denom
    cols["Conflicts"] = voted[conflicted].sum(axis=0) / denom
    if y is not None:
        y = np.asarray(y).ravel()
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
            raise ValueError(f"y must hold {n} integer gold labels >= 0, got shape {y.shape}, dtype {y.dtype}")
        correct = (L == y[:, None]).sum(axis=0)
        cols["Correct"] = correct
        cols["Incorrect"] = covered_count - correct
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["Emp. Acc."] = np.nan_to_num(correct / covered_count)
    for column, values in (extra or {}).items():
        if len(values) != m:
            raise ValueError(f"extra column {column!r} has {len(values)} values for {m} programs")
        cols[column] = list(values)
    return pd.DataFrame(cols, index=index)


def _stat(stats: dict, *names: str) -> float | None:
    folded = {str(k).casefold(): v for k, v in stats.items()}
    for name in names:
        if folded.get(name) is not None:
            return float(folded[name])
    return None


def analysis_stats(row, n_rows: int) -> dict:
    """One row of ``Workbench.analysis()`` as :func:`weak_reasons` reads it: faults and invalid
    outputs become fractions of the ``n_rows`` train rows."""
    stats = dict(row)
    stats.update(Faults=stats["Faults"] / n_rows, Invalid=stats["Invalid"] / n_rows)
    return stats


def weak_reasons(stats: dict, *, min_accuracy: float = 0.7, max_conflicts: float = 0.3,
                 max_bad_outputs: float = 0.05) -> list[str]:
    """Why a program counts as weak (empty when it does not).

    Reads ``Emp. Acc.`` (or ``accuracy``), ``Conflicts``, and ``Faults`` / ``Invalid`` (fractions
    of rows), case-insensitively; missing statistics are not judged.
    """
    reasons = []
    accuracy = _stat(stats, "emp. acc.", "accuracy")
    if accuracy is not None and accuracy < min_accuracy:
        reasons.append(f"dev accuracy {accuracy:.2f} < {min_accuracy}")
    conflicts = _stat(stats, "conflicts")
    if conflicts is not None and conflicts > max_conflicts:
        reasons.append(f"conflicts {conflicts:.2f} > {max_conflicts}")
    bad = sum(v for v in (_stat(stats, "faults"), _stat(stats, "invalid")) if v is not None)
    if bad > max_bad_outputs:
        reasons.append(f"faults + invalid outputs {bad:.2f} > {max_bad_outputs}")
    return reasons
