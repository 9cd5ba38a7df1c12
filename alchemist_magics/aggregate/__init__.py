"""Label models that turn a label matrix (n_rows, n_programs; -1 = abstain) into labels.

All models share one interface: ``Model(cardinality=k, seed=0).fit(L)``, ``predict_proba(L)``,
``predict(L, uncovered="abstain"|"prior")``. ``select_label_model`` picks one on a labeled dev
set (``VoteClassifier`` learns from its labels instead); ``program_analysis`` gives snorkel's per-program statistics table.
"""
from .analysis import program_analysis
from .base import ABSTAIN, LabelModel, check_matrix, coverage, covered
from .dawid_skene import DawidSkene
from .majority import MajorityVote, WeightedMajorityVote
from .select import SelectionResult, select_label_model
from .snorkel_model import SnorkelLabelModel
from .supervised import VoteClassifier
from .triplet import Triplet

__all__ = [
    "ABSTAIN", "LabelModel", "check_matrix", "coverage", "covered", "MajorityVote",
    "WeightedMajorityVote", "DawidSkene", "VoteClassifier", "SnorkelLabelModel", "Triplet", "select_label_model",
    "SelectionResult", "program_analysis",
]
