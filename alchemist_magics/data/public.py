"""Public datasets for tutorials and benchmarks: a local folder first, the real download otherwise.

``fetch_wrench("youtube")`` looks for ``<dir>/youtube/`` in, in order: the ``data_dir`` given,
``$ALCHEMIST_DATA``, ``../shared/data`` (next to the working directory or to this checkout) and the
download cache (``$ALCHEMIST_CACHE`` or ``~/.cache/alchemist_magics/data``). Only when none has it
are the WRENCH files downloaded from the Hugging Face mirror of the benchmark into the cache
(atomically, so an interrupted download is never mistaken for data), then loaded with
:func:`~alchemist_magics.data.dataset.load_wrench`, which also fixes the known defects of those files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..programs import Program
from ..task import TaskSpec
from .dataset import DataError, Dataset, from_dataframe, load_csv, load_wrench

DATA_ENV = "ALCHEMIST_DATA"
WRENCH_URL = "https://huggingface.co/datasets/jieyuz2/WRENCH/resolve/main/classification"
WRENCH_FILES = ("label.json", "train.json", "valid.json", "test.json", "readme.txt")


def cache_dir() -> Path:
    """Where downloaded datasets are kept."""
    return Path(os.environ.get("ALCHEMIST_CACHE") or Path.home() / ".cache" / "alchemist_magics") / "data"


def data_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for a dataset, in order (see the module docstring)."""
    here = Path(__file__).resolve().parents[1]
    candidates = [data_dir, os.environ.get(DATA_ENV), Path.cwd() / ".." / "shared" / "data",
                  Path.cwd() / ".." / ".." / "shared" / "data", here / ".." / "shared" / "data", cache_dir()]
    return [Path(c).resolve() for c in candidates if c]


def find_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first local folder holding dataset ``name``, or None."""
    for folder in data_dirs(data_dir):
        if (folder / name).is_dir():
            return folder / name
    return None


def download_wrench(name: str, url: str = WRENCH_URL, timeout_s: float = 60.0) -> Path:
    """Download WRENCH dataset ``name`` into the cache and return its folder."""
    target = cache_dir() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        for file in WRENCH_FILES:
            try:
                with urllib.request.urlopen(f"{url}/{name}/{file}", timeout=timeout_s) as reply, \
                        open(staging / file, "wb") as out:
                    shutil.copyfileobj(reply, out)
            except OSError as exc:
                if file == "readme.txt":  # optional: not every WRENCH set has one
                    continue
                raise OSError(f"could not download WRENCH {name!r} ({file}) from {url}: {exc}; "
                              f"put the files in a folder and pass data_dir= or set ${DATA_ENV}") from exc
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch_wrench(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True,
                 url: str = WRENCH_URL) -> dict:
    """The splits of WRENCH dataset ``name`` (``train``/``valid``/``test``, and ``labeled`` where present).

    A local copy is used when there is one (see :func:`find_dataset`); otherwise, with
    ``download=True``, the files are fetched once into the cache.
    """

    folder = find_dataset(name, data_dir)
    if folder is None:
        if not download:
            searched = ", ".join(str(p) for p in data_dirs(data_dir))
            raise FileNotFoundError(f"WRENCH {name!r} is not in any of: {searched}; pass data_dir= or allow download=True")
        folder = download_wrench(name, url)
    return load_wrench(folder)


def stratified_split(dataset: Dataset, fractions: Sequence[float] = (0.7, 0.1, 0.2),
                     seed: int = 0) -> tuple[Dataset, Dataset, Dataset]:
    """Split a labeled dataset into train/dev/test, stratified by label (scikit-learn, seeded)."""
    from sklearn.model_selection import train_test_split

    if dataset.labels is None or (dataset.labels < 0).any():
        raise DataError(f"{dataset.name}: a stratified split needs a gold label on every row")
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions={tuple(fractions)}: give three positive shares summing to 1")
    rows = np.arange(len(dataset))
    train, other = train_test_split(rows, train_size=fractions[0], stratify=dataset.labels, random_state=seed)
    dev, test = train_test_split(other, train_size=fractions[1] / (fractions[1] + fractions[2]),
                                 stratify=dataset.labels[other], random_state=seed)
    return tuple(dataset.subset(np.sort(part), name=f"{dataset.name}/{split}")
                 for part, split in ((train, "train"), (dev, "dev"), (test, "test")))


# --------------------------------------------------------------------------- the public data sets
# What the benches and the CLI know about a set beyond its files: its question and its metric.
# Any other WRENCH-format folder (label.json + train/valid/test.json) works too, with a generic
# question and accuracy (macro-F1 is always reported beside it).
KNOWN = {
    "youtube": ("Is this YouTube comment spam?", "accuracy"),
    "sms": ("Is this SMS message spam?", "f1"),
    "trec": ("What kind of answer does this question ask for?", "accuracy"),
    "youtube_raw": ("Is this YouTube comment spam?", "accuracy"),
    "sms_raw": ("Is this SMS message spam?", "f1"),
    "imdb": ("Is this movie review positive or negative?", "accuracy"),
    "imdb_large": ("Is this movie review positive or negative?", "accuracy"),
    "yelp": ("Is this restaurant review positive or negative?", "accuracy"),
    "agnews": ("Which news topic is this article about?", "accuracy"),
    "bbc": ("Which news topic is this BBC article about?", "accuracy"),
    "20newsgroups": ("Which newsgroup was this post written for?", "accuracy"),
    "chemprot": ("Which relation holds between the chemical and the protein in this sentence?", "accuracy"),
    "semeval": ("Which semantic relation holds between the two marked entities?", "accuracy"),
}
PUBLIC = KNOWN  # the sets with a known question (any WRENCH folder loads, see load_public)
RAW_SPLIT = (0.7, 0.1, 0.2)  # train/dev/test shares of the raw collections, stratified, seed 0


@dataclass
class PublicBenchmark:
    """A public data set ready for :func:`~alchemist_magics.evaluate.evaluate_pipeline`: splits, task,
    metric, and the human programs when they exist offline (``"wrench"``: stored matrices; a list:
    programs to run; ``None``: none)."""

    name: str
    train: Dataset
    dev: Dataset
    test: Dataset
    task: TaskSpec
    metric: str
    human: str | list[Program] | None
    notes: list[str] = field(default_factory=list)


def wrench_sets(data_dir) -> list[str]:
    """The WRENCH-format folders (with a ``label.json``) under ``data_dir``, sorted."""
    return sorted(p.parent.name for p in Path(data_dir).glob("*/label.json"))


def load_public(data_dir, name: str) -> PublicBenchmark:
    """Load data set ``name`` from ``data_dir`` (the layout of shared/data, see its SOURCES.md).

    Any WRENCH-format folder keeps its train/valid/test split (``load_wrench`` fixes the known
    defects); its human programs are the stored ``weak_labels`` when it has them. sms uses its 73
    readme rules run in the sandbox instead (its stored valid/test matrices do not line up with the
    texts). The raw UCI collections (``youtube_raw``, ``sms_raw``) get a stratified 70/10/20 split with
    seed 0; youtube_raw has no human programs (WRENCH's youtube LFs exist only as stored columns).
    """
    import pandas as pd

    from .wrench import rule_programs

    folder = Path(data_dir) / name
    if not folder.is_dir():
        raise DataError(f"{folder} not found: pass the folder that holds the data sets (--data)")
    notes = []
    if name == "youtube_raw":
        frame = pd.concat([pd.read_csv(path) for path in sorted(folder.glob("Youtube0*.csv"))], ignore_index=True)
        data = from_dataframe(frame, "CONTENT", "CLASS", classes=["ham", "spam"], name=name)
        human = None
        notes.append("no human programs: WRENCH's youtube LFs exist only as stored columns, not as code")
    elif name == "sms_raw":
        data = load_csv(folder / "SMSSpamCollection", "text", "label", classes=["ham", "spam"], sep="\t",
                        header=None, names=["label", "text"])
        human = rule_programs(folder.parent / "sms", data.classes)
        notes.append("human programs: the 73 WRENCH sms readme rules, run on the raw (mixed-case) texts "
                     "they were not written for (WRENCH's texts are lower-cased and tokenised)")
    else:
        splits = load_wrench(folder)
        missing = [s for s in ("train", "valid", "test") if s not in splits]
        if missing:
            raise DataError(f"{folder} lacks {', '.join(s + '.json' for s in missing)}: a benchmark needs all three")
        train, dev, test = splits["train"], splits["valid"], splits["test"]
        human = (rule_programs(folder, train.classes) if name == "sms"
                 else "wrench" if all(s.weak_labels is not None for s in (train, dev, test)) else None)
        notes += [n for split in (train, dev, test) for n in split.notes]
    if name in ("youtube_raw", "sms_raw"):
        train, dev, test = stratified_split(data, RAW_SPLIT, seed=0)
        notes.append(f"split {RAW_SPLIT} stratified by label with seed 0 (sklearn train_test_split)")
    description, metric = KNOWN.get(name, (f"Which of {', '.join(train.classes)} is this text?", "accuracy"))
    task = TaskSpec(name, description, train.classes)
    return PublicBenchmark(name, train, dev, test, task, metric, human, notes)
