"""The notebook plots draw what they say (matplotlib's Agg backend, no display)."""
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from alchemist_magics.notebook import plots  # noqa: E402

ANALYSIS = pd.DataFrame({"Polarity": [[1], [0], [0, 1]], "Coverage": [0.2, 0.1, 0.5], "Emp. Acc.": [0.9, 0.7, 0.5]},
                        index=["spam_if_free", "ham_if_thanks", "both"])


def test_coverage_accuracy_one_point_per_program_coloured_by_class():
    ax = plots.coverage_accuracy(ANALYSIS, ["HAM", "SPAM"])
    points = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert points == [(0.2, 0.9), (0.1, 0.7), (0.5, 0.5)]
    assert [t.get_text() for t in ax.texts] == list(ANALYSIS.index)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["votes HAM", "votes SPAM", "votes several classes"]


def test_label_distribution_counts_rows_and_the_uncovered():
    labels = pd.DataFrame({"label": ["SPAM", "HAM", None, "SPAM"]})
    ax = plots.label_distribution(labels, ["HAM", "SPAM"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["HAM", "SPAM", "(no vote)"]
    assert [p.get_height() for p in ax.patches] == [1, 2, 1]
    assert [t.get_text() for t in ax.texts] == ["1 (25%)", "2 (50%)", "1 (25%)"]


def test_cost_curve_per_row_against_paid_once():
    ax = plots.cost_curve({"zero_shot_usd": 0.03, "zero_shot_rows": 1000, "requests": 0, "estimate_usd": 0.003},
                          rows=[1000, 10000])
    zero, programs = ax.get_lines()
    assert list(zero.get_ydata()) == pytest.approx([0.03, 0.3]) and list(programs.get_ydata()) == [0.003, 0.003]
    unknown = plots.cost_curve({"zero_shot_usd": None, "zero_shot_rows": 10, "requests": 2, "cost_usd": None})
    assert "unknown" in unknown.texts[0].get_text()
