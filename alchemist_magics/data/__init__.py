"""Data: datasets and their loaders (DataFrame, CSV, WRENCH folders), fingerprints, the public sets.

From plain Python::

    from alchemist_magics.data import from_dataframe, load_csv, load_wrench, load_public
"""
from .dataset import DataError, Dataset, from_dataframe, label_indices, load_csv, load_wrench
from .public import (DATA_ENV, PUBLIC, PublicBenchmark, fetch_wrench, find_dataset, load_public, stratified_split,
                     wrench_sets)
from .wrench import rule_matrix, rule_programs

__all__ = ["DATA_ENV", "DataError", "Dataset", "PUBLIC", "PublicBenchmark", "fetch_wrench", "find_dataset",
           "from_dataframe", "label_indices", "load_csv", "load_public", "load_wrench", "rule_matrix",
           "rule_programs", "stratified_split", "wrench_sets"]
