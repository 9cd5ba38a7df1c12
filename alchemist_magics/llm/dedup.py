"""Duplicates by behaviour: two programs are duplicates when they vote the same on the train rows.

Text similarity is a poor judge (``'subscribe' in text`` and ``'http' in text`` are one token
apart and vote on different rows; two differently written programs can vote identically and
double-count in the label model). So the decision is taken on outputs, after ``apply``:

    L = bench.matrix("train")                                    # int8, rows x programs, -1 abstains
    for dup in duplicates_by_output(L, [p.name for p in bench.programs]):
        bench.remove(dup.name)                                     # keeps dup.duplicate_of

Agreement of two columns is measured on the rows where at least one of them votes (a class
index >= 0): the share of those rows where both give the same class. Rows where both abstain
say nothing (two rare rules that fire on different rows would otherwise agree on ~100 % of the
rows). Two programs that never vote agree trivially (1.0); :func:`silent_programs` names them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.95
MAX_ROWS = 200_000  # beyond this, agreement is measured on a fixed random sample of rows


@dataclass(frozen=True)
class Duplicate:
    """``name`` behaves like ``duplicate_of`` (an earlier program) on ``agreement`` of the rows
    where either votes (``rows`` of them)."""

    name: str
    duplicate_of: str
    agreement: float
    rows: int

    def __str__(self) -> str:
        return (f"{self.name} duplicates {self.duplicate_of}: same vote on {self.agreement:.1%} of the "
                f"{self.rows} rows where either votes")


def output_agreement(a, b) -> tuple[float, int]:
    """(agreement, rows where either votes) of two label-matrix columns (see the module doc)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"columns differ in length: {a.shape} vs {b.shape}")
    either = (a >= 0) | (b >= 0)
    rows = int(np.count_nonzero(either))
    if rows == 0:
        return 1.0, 0
    return float(np.count_nonzero((a == b) & either)) / rows, rows


def duplicates_by_output(L, names: list[str], threshold: float = DEFAULT_THRESHOLD, *,
                         max_rows: int = MAX_ROWS, seed: int = 0) -> list[Duplicate]:
    """Programs (columns of ``L``) whose votes agree with an *earlier* column's on at least
    ``threshold`` of the rows where either votes. The earlier program is the one to keep, so pass
    the columns in the order the programs were added (or best first). Each duplicate is reported
    once, against the first kept program it matches; a program is only compared with kept ones.

    Args:
        L: int8 label matrix (rows x programs; classes 0..k-1, -1 abstain; any other negative
            code, e.g. a fault, counts as not voting).
        names: one name per column.
        threshold: agreement at or above which two programs are duplicates (0.95).
        max_rows: measure on at most this many rows (a fixed random sample above it).
    """
    L = np.asarray(L)
    if L.ndim != 2 or L.shape[1] != len(names):
        raise ValueError(f"L must be rows x programs with one name per column: shape {L.shape}, {len(names)} names")
    if len(L) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(L), size=max_rows, replace=False))
        L = L[rows]
    votes = np.where(L >= 0, L, -1).astype(np.int16)
    kept: list[int] = []
    found: list[Duplicate] = []
    for j in range(votes.shape[1]):
        match = None
        for i in kept:
            agreement, n = output_agreement(votes[:, j], votes[:, i])
            if agreement >= threshold:
                match = Duplicate(names[j], names[i], agreement, n)
                break
        if match is None:
            kept.append(j)
        else:
            found.append(match)
    return found


def silent_programs(L, names: list[str]) -> list[str]:
    """Programs that never vote on these rows (every output abstain, invalid or a fault)."""
    L = np.asarray(L)
    return [name for j, name in enumerate(names) if not np.any(L[:, j] >= 0)]


@dataclass(frozen=True)
class Uninformative:
    """``name``'s votes on the labeled rows carry no evidence: its accuracy there is not above
    *chance* (the class prior of what it votes) with 95% confidence and within ``margin`` of it, or
    significantly below it (``status`` "inverted"). ``flag`` is the underlying
    :class:`~alchemist_magics.aggregate.guard.ProgramFlag` (one test for every program source)."""

    name: str
    label: int  # the class it votes most
    precision: float  # its accuracy on the labeled rows where it votes
    prior: float  # chance: the mean prior of the classes it votes
    votes: int
    status: str = "not_above_prior"  # or "inverted"
    flag: object = None

    def __str__(self) -> str:
        if self.status == "inverted":
            return (f"{self.name}: right {self.precision:.0%} of the time on {self.votes} labeled rows, "
                    f"significantly below chance ({self.prior:.0%}): inverted?")
        return (f"{self.name}: right {self.precision:.0%} of the time on {self.votes} labeled rows, "
                f"not above chance ({self.prior:.0%}) with 95% confidence")


def uninformative_programs(L_dev, y_dev, names: list[str], *, margin: float = 0.05,
                           min_votes: int = 5, votes=None) -> list[Uninformative]:
    """Programs whose votes carry no evidence on the labeled rows, judged by
    :func:`~alchemist_magics.aggregate.guard.flag_programs` (a one-sided 95% Wilson bound against
    chance, the class prior of the classes a program votes):

    - ``not_above_prior``: not above chance at all, or not provably above it *and* within
      ``margin`` of it (a "spam if the text is long" rule voting spam on most rows at the base
      rate). A rare rule right 9 times in 10 is not provably above an 87 % prior either, but it is
      far from it: it is kept.
    - ``inverted``: significantly below chance (it votes against its evidence).

    Judged only with ``min_votes`` votes or more; rows without a gold label are ignored. ``votes``
    optionally replaces columns of ``L_dev`` with held-out (cross-fitted) votes for programs written
    from these rows: a dict ``{column: votes}``. Use it with the duplicates, after ``apply``.
    """
    from ..aggregate.guard import flag_programs

    L, y = np.array(L_dev), np.asarray(y_dev)
    for j, column in (votes or {}).items():
        L[:, j] = column
    known = y >= 0
    L, y = L[known], y[known]
    if len(y) == 0 or L.shape[1] == 0:
        return []
    k = int(max(y.max(), L.max(initial=-1))) + 1
    found = []
    for flag in flag_programs(np.where(L >= 0, L, -1), y, k, names):
        if flag.fired < min_votes:
            continue
        near_chance = flag.status == "unproven" and flag.accuracy <= flag.chance + margin
        if flag.left_out or near_chance:
            column = L[:, flag.index]
            label = int(np.bincount(column[column >= 0], minlength=k).argmax())
            found.append(Uninformative(flag.name, label, float(flag.accuracy), float(flag.chance), flag.fired,
                                       "inverted" if flag.status == "inverted" else "not_above_prior", flag))
    return found
