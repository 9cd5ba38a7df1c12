"""Plots where people would rather look than read a table: coverage against dev accuracy per
program, the label distribution, and the cost of the programs against labeling every row.

matplotlib is optional (the ``tutorials`` extra): it is imported when a plot is drawn, and a
missing one says how to install it. Every function takes an optional ``ax`` and returns it.

    from alchemist_magics.notebook.plots import overview
    overview(_alchemist.workbench, _alchemist.model)
"""
from __future__ import annotations

import pandas as pd

COLOURS = ["tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'alchemist_magics[tutorials]' (or matplotlib)") from None
    return plt


def _axes(ax, size=(5, 3.5)):
    if ax is not None:
        return ax
    return _pyplot().subplots(figsize=size)[1]


def coverage_accuracy(analysis: pd.DataFrame, classes: list[str] | None = None, ax=None):
    """One point per program: coverage on train (x) against accuracy on dev (y), coloured by the
    class it votes (grey when it votes several), named. Without dev labels, y is the conflict rate."""
    ax = _axes(ax)
    y_column = "Emp. Acc." if "Emp. Acc." in analysis.columns else "Conflicts"
    seen = set()
    for name, row in analysis.iterrows():
        polarity = list(row.get("Polarity") or [])
        key = polarity[0] if len(polarity) == 1 else None
        label = (classes[key] if classes and key is not None and key < len(classes) else
                 f"class {key}" if key is not None else "several classes")
        colour = COLOURS[key % len(COLOURS)] if key is not None else "tab:gray"
        ax.scatter(row["Coverage"], row[y_column], color=colour, label=None if label in seen else f"votes {label}",
                   s=40, zorder=3)
        seen.add(label)
        ax.annotate(str(name), (row["Coverage"], row[y_column]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("coverage (share of train rows it votes on)")
    ax.set_ylabel("accuracy on dev" if y_column == "Emp. Acc." else "conflicts (share of train rows)")
    ax.set_xlim(0, max(0.05, float(analysis["Coverage"].max()) * 1.15) if len(analysis) else 1)
    if y_column == "Emp. Acc.":
        ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Programs: coverage and accuracy")
    return ax


def label_distribution(labels: pd.DataFrame, classes: list[str] | None = None, ax=None):
    """Rows per label of ``Workbench.labels()``, rows no program voted on as ``(no vote)``."""
    ax = _axes(ax)
    counts = labels["label"].fillna("(no vote)").value_counts()
    order = [c for c in (classes or []) if c in counts.index] + [c for c in counts.index if c not in (classes or [])]
    counts = counts.reindex(order)
    colours = [COLOURS[(classes or []).index(c) % len(COLOURS)] if c in (classes or []) else "tab:gray" for c in order]
    bars = ax.bar([str(c) for c in order], counts.to_numpy(), color=colours)
    total = int(counts.sum())
    for bar, n in zip(bars, counts.to_numpy()):
        ax.annotate(f"{int(n)} ({n / total:.0%})", (bar.get_x() + bar.get_width() / 2, n), ha="center", va="bottom",
                    fontsize=8)
    ax.set_ylabel("rows")
    ax.set_title(f"Labels of the {total:,} rows")
    return ax


def cost_curve(cost: dict, rows=(1_000, 10_000, 100_000, 1_000_000), ax=None):
    """What labeling N rows costs zero-shot (per row, from the counterfactual of ``Workbench.cost``)
    against the programs (paid once: spent, else the estimate for writing them with the LLM)."""
    ax = _axes(ax)
    zero, n = cost.get("zero_shot_usd"), cost.get("zero_shot_rows")
    programs = cost.get("cost_usd") if cost.get("requests") else cost.get("estimate_usd")
    rows = list(rows)
    if zero and n:
        per_row = zero / n
        ax.loglog(rows, [per_row * r for r in rows], "o-", color="tab:gray", label="zero-shot: pays per row")
        ax.scatter([n], [zero], color="black", zorder=3, label=f"this data: {n:,} rows, ${zero:.4f}")
    if programs:
        what = "programs (LLM, spent)" if cost.get("requests") else "programs (LLM, estimate)"
        ax.loglog(rows, [programs] * len(rows), "o-", color="tab:orange", label=f"{what}: paid once")
    if not (zero and n) and not programs:
        ax.text(0.5, 0.5, "cost unknown (no prices for this model)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("rows to label")
    ax.set_ylabel("USD")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title("Cost as the data grows")
    return ax


def overview(workbench, model: str = "gpt-4o-mini", split: str = "train"):
    """The three plots side by side for a fitted ``Workbench``; returns the figure."""
    plt = _pyplot()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4))
    classes = list(workbench.task.classes)
    coverage_accuracy(workbench.analysis(), classes, ax=a)
    label_distribution(workbench.labels(split), classes, ax=b)
    cost_curve(workbench.cost(model), ax=c)
    fig.tight_layout()
    return fig
