"""Datasets: load a task's rows from a DataFrame, a CSV/TSV file or a WRENCH folder.

A :class:`Dataset` holds the input columns the programs read, optional gold labels (``-1`` where
unknown), optional stored weak labels, and a stable content fingerprint used as a cache key.
Problems in the data (empty data, missing columns, missing values, non-text values, unknown class
names) raise a one-line :class:`DataError` naming the fix, or are handled visibly (counted in
``Dataset.notes`` and warned about), never silently.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..programs.rows import make_row_type


class DataError(ValueError):
    """Raised for data that cannot be used as given; the message says how to fix it."""


@dataclass
class Dataset:
    """Rows of one split of a labeling task.

    Attributes:
        frame: the input columns (a DataFrame with a fresh RangeIndex).
        input_columns: the columns a program receives.
        labels: gold class indices (``int64``, ``-1`` = unknown), or ``None``.
        classes: class names (class ``i`` is ``classes[i]``), or ``None`` when not known.
        weak_labels: a stored label matrix (``int8``, ``-1`` = abstain), e.g. WRENCH's, or ``None``.
        ids: the row identifiers from the source (WRENCH ids, original index values).
        name: a short name for messages.
        source: the folder or file the rows came from, when loaded from disk.
        notes: what loading changed or dropped, in words (shown to the user).
    """

    frame: pd.DataFrame
    input_columns: list[str]
    labels: np.ndarray | None = None
    classes: list[str] | None = None
    weak_labels: np.ndarray | None = None
    ids: list = field(default_factory=list)
    name: str = "data"
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def texts(self) -> list[str]:
        """The single text column as a list (raises if the dataset has several input columns)."""
        if len(self.input_columns) != 1:
            raise DataError(f"{self.name} has {len(self.input_columns)} input columns; use .inputs()")
        return self.frame[self.input_columns[0]].tolist()

    def inputs(self) -> list:
        """What each program receives per row: the text for one input column, else a read-only row.

        A row allows ``x.col`` and ``x["col"]``; it is immutable, so no program can change the
        input another program sees.
        """
        if len(self.input_columns) == 1:
            return self.texts
        row_type = make_row_type(self.input_columns)
        return [row_type(*values) for values in self.frame[self.input_columns].itertuples(index=False)]

    @property
    def fingerprint(self) -> str:
        """A stable hash of the input columns' names and contents (labels excluded)."""
        if self._fingerprint is None:
            digest = hashlib.sha256(json.dumps(self.input_columns).encode())
            try:
                hashed = pd.util.hash_pandas_object(self.frame[self.input_columns], index=False)
                digest.update(np.ascontiguousarray(hashed.to_numpy()).tobytes())
            except UnicodeEncodeError:  # a lone surrogate (invalid Unicode) in a text: hash the code points
                digest.update(b"surrogates")
                for column in self.input_columns:
                    for value in self.frame[column].tolist():
                        digest.update(f"{type(value).__name__}:".encode() + str(value).encode("utf-8", "surrogatepass") + b"\0")
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    @property
    def has_labels(self) -> bool:
        """True when at least one row has a gold label."""
        return self.labels is not None and bool((self.labels >= 0).any())

    def subset(self, rows: Sequence[int] | np.ndarray, name: str | None = None) -> "Dataset":
        """A new dataset with the given row positions (labels and weak labels follow)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Dataset(
            frame=self.frame.iloc[rows].reset_index(drop=True),
            input_columns=list(self.input_columns),
            labels=None if self.labels is None else self.labels[rows],
            classes=self.classes,
            weak_labels=None if self.weak_labels is None else self.weak_labels[rows],
            ids=[self.ids[i] for i in rows] if self.ids else [],
            name=name or self.name,
            source=self.source,
            notes=list(self.notes),
        )


def check_classes(classes: Sequence[str]) -> None:
    """Class names must be distinct (ignoring case and surrounding whitespace) non-empty strings."""
    seen: dict[str, str] = {}
    for name in classes:
        key = str(name).strip().casefold()
        if not key:
            raise DataError(f"class names must not be empty: {list(classes)}")
        if key in seen:
            raise DataError(f"class name {name!r} repeats in classes={list(classes)} (as {seen[key]!r}); "
                            "each class must be named once, in index order")
        seen[key] = name


def label_indices(values: pd.Series, classes: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Map a label column (class names or indices; NaN = unknown) to indices, checking names."""
    known = values.notna()
    raw = values[known]
    if classes is not None:
        check_classes(classes)
    if classes is None:
        if pd.api.types.is_numeric_dtype(raw):
            classes = [str(c) for c in range(int(raw.max()) + 1)] if len(raw) else []
        else:
            classes = sorted({str(v).strip() for v in raw})
    labels = np.full(len(values), -1, dtype=np.int64)
    if pd.api.types.is_bool_dtype(raw):
        raw = raw.astype(np.int64)
    if pd.api.types.is_numeric_dtype(raw):
        as_float = raw.astype(np.float64).to_numpy()
        fractional = sorted({float(v) for v in as_float if not float(v).is_integer()})
        if fractional:
            raise DataError(f"label values {fractional[:10]} are not whole numbers; labels are class indices "
                            f"0..{len(classes) - 1} (or -1/NaN for unlabeled) or class names")
        ints = raw.astype(np.int64).to_numpy()
        bad = sorted({int(v) for v in ints if v < -1 or v >= len(classes)})
        if bad:
            raise DataError(f"label values {bad} are outside 0..{len(classes) - 1} for classes {classes}")
        labels[known.to_numpy()] = ints
        return labels, list(classes)
    lookup = {str(c).strip().casefold(): i for i, c in enumerate(classes)}
    names = [str(v).strip().casefold() for v in raw]
    unknown = sorted({str(v) for v, n in zip(raw, names) if n not in lookup})
    if unknown:
        raise DataError(f"unknown class name(s) {unknown[:10]} in the label column; classes are {list(classes)}")
    labels[known.to_numpy()] = [lookup[n] for n in names]
    return labels, list(classes)


def from_dataframe(
    df: pd.DataFrame,
    text_column: str | Sequence[str] = "text",
    label_column: str | None = None,
    classes: Sequence[str] | None = None,
    *,
    name: str = "data",
    missing: str = "error",
) -> Dataset:
    """Build a :class:`Dataset` from a DataFrame.

    Args:
        df: the data.
        text_column: the input column, or a list of input columns.
        label_column: optional gold-label column (class names or indices; NaN = unlabeled).
        classes: class names in index order (inferred from the label column when omitted).
        name: used in messages.
        missing: what to do with rows whose input is NaN/None: ``"error"`` (default) raises,
            ``"drop"`` drops them (counted in ``notes`` and warned), ``"empty"`` uses ``""``.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    columns = [text_column] if isinstance(text_column, str) else list(text_column)
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise DataError(f"input column(s) {repeated} are listed more than once in text_column={columns}; list each once")
    duplicated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if duplicated:
        raise DataError(f"the data has several columns named {duplicated}; rename them so each name is unique")
    if classes is not None:
        check_classes(list(classes))
    wanted = columns + ([label_column] if label_column else [])
    absent = [c for c in wanted if c not in df.columns]
    if absent:
        raise DataError(f"column(s) {absent} not in the data; available columns: {list(df.columns)}")
    if len(df) == 0:
        raise DataError(f"{name} is empty: there are no rows to label")
    if missing not in ("error", "drop", "empty"):
        raise DataError(f"missing={missing!r}: use 'error', 'drop' or 'empty'")
    notes: list[str] = []
    frame = df[columns].copy()
    ids = list(df.index)
    nan_rows = frame.isna().any(axis=1).to_numpy()
    if nan_rows.any():
        where = np.flatnonzero(nan_rows)[:5].tolist()
        if missing == "error":
            raise DataError(
                f"{int(nan_rows.sum())} row(s) of {name} have a missing input (first at positions {where}); "
                "pass missing='drop' to drop them or missing='empty' to label them as empty text"
            )
        if missing == "drop":
            notes.append(f"dropped {int(nan_rows.sum())} row(s) with a missing input (positions {where}...)")
            keep = ~nan_rows
            frame, df = frame[keep], df[keep]
            ids = [i for i, k in zip(ids, keep) if k]
            if len(frame) == 0:
                raise DataError(f"{name} has no rows left after dropping rows with missing input")
        else:
            notes.append(f"{int(nan_rows.sum())} row(s) with a missing input are labeled as empty text")
            frame = frame.fillna("")
    if len(columns) == 1:
        col = frame[columns[0]]
        non_text = ~col.map(lambda v: isinstance(v, str)).to_numpy()
        if non_text.any():
            notes.append(f"converted {int(non_text.sum())} non-text value(s) in '{columns[0]}' to text")
            frame[columns[0]] = col.map(str)
    surrogates = sum(int(frame[c].map(_has_surrogate).sum()) for c in columns)
    if surrogates:
        notes.append(f"{surrogates} value(s) hold lone surrogates (not valid Unicode, e.g. from a bad decode); kept as is")
    duplicate_ids = pd.Index(ids).duplicated()
    if duplicate_ids.any():
        first = [ids[i] for i in np.flatnonzero(duplicate_ids)[:5]]
        notes.append(f"{int(duplicate_ids.sum())} row id(s) repeat an earlier id (first: {first}); rows are kept, ids are not unique")
    labels = None
    if label_column:
        labels, classes = label_indices(df[label_column], list(classes) if classes is not None else None)
        unlabeled = int((labels < 0).sum())
        if unlabeled:
            notes.append(f"{unlabeled} row(s) have no gold label")
    for note in notes:
        warnings.warn(f"{name}: {note}", stacklevel=2)
    return Dataset(
        frame=frame.reset_index(drop=True),
        input_columns=columns,
        labels=labels,
        classes=list(classes) if classes is not None else None,
        ids=ids,
        name=name,
        notes=notes,
    )


def _has_surrogate(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def load_csv(
    path: str | Path,
    text_column: str | Sequence[str] = "text",
    label_column: str | None = None,
    classes: Sequence[str] | None = None,
    *,
    sep: str | None = None,
    header: int | None | str = "infer",
    names: Sequence[str] | None = None,
    missing: str = "error",
    encoding: str = "utf-8",
) -> Dataset:
    """Load a CSV or TSV file (a ``.tsv``/``.tab`` suffix or ``sep='\\t'`` selects tabs), decoded as ``encoding``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        df = pd.read_csv(path, sep=sep, header=header, names=names, quoting=3 if sep == "\t" else 0, encoding=encoding)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: there are no rows to label") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid {encoding} (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                        f"{exc.start}); pass encoding= with the file's encoding, e.g. encoding='latin-1' or 'cp1252'") from None
    dataset = from_dataframe(df, text_column, label_column, classes, name=path.name, missing=missing)
    dataset.source = str(path)
    return dataset


# Fixes for measured defects of the WRENCH copies (see shared/data/SOURCES.md).
def _strip_label_word(text: str) -> str:
    """TREC test texts start with their fine-grained label word and keep their casing."""
    return text.split(" ", 1)[1].lower() if " " in text else text.lower()


_KNOWN_TEXT_FIXES = {("trec", "test"): (_strip_label_word, "removed the leading label word and lower-cased (trec test leak)")}


def load_wrench(folder: str | Path, *, fix_known_defects: bool = True) -> dict[str, Dataset]:
    """Load a WRENCH-format folder (``train/valid/test.json`` + ``label.json``).

    Returns ``{"train", "valid", "test"}`` (whichever exist) and, when train carries appended
    labeled rows, ``"labeled"``. Rows listed in ``labeled_ids.json`` are *appended extras* in the
    Google-Drive variant of WRENCH when most of them duplicate an earlier train row (youtube,
    trec); they are then moved out of train into ``"labeled"`` so train matches the published
    split. Otherwise (sms) they stay in train. With ``fix_known_defects`` the trec test texts lose
    their leaked label word. Every change is written to ``Dataset.notes``.
    """
    folder = Path(folder)
    label_file = folder / "label.json"
    if not label_file.is_file():
        raise DataError(f"{folder} is not a WRENCH folder: label.json is missing")
    label_map = json.loads(label_file.read_text())
    classes = [label_map[str(i)] for i in range(len(label_map))]
    splits: dict[str, Dataset] = {}
    for split in ("train", "valid", "test"):
        path = folder / f"{split}.json"
        if not path.is_file():
            continue
        repeated_ids: list[str] = []

        def pairs(items):  # the outermost object (rows keyed by id) is the one whose keys may repeat
            keys = [k for k, _ in items]
            if len(keys) != len(set(keys)) and all(isinstance(v, dict) and "data" in v for _, v in items):
                repeated_ids.extend(sorted({k for k in keys if keys.count(k) > 1}))
            return dict(items)

        raw = json.loads(path.read_text(), object_pairs_hook=pairs)
        if not raw:
            raise DataError(f"{path} has no rows")
        ids = list(raw)
        texts = [raw[i]["data"]["text"] for i in ids]
        notes = []
        fix = _KNOWN_TEXT_FIXES.get((folder.name, split)) if fix_known_defects else None
        if fix:
            texts = [fix[0](t) for t in texts]
            notes.append(fix[1])
        if repeated_ids:
            notes.append(f"{len(repeated_ids)} row id(s) appear more than once in {path.name} (first: {repeated_ids[:5]}); "
                         "the last row with each id is kept")
            warnings.warn(f"{folder.name}/{split}: {notes[-1]}", stacklevel=2)
        weak = [raw[i].get("weak_labels") for i in ids]
        splits[split] = Dataset(
            frame=pd.DataFrame({"text": texts}),
            input_columns=["text"],
            labels=np.array([raw[i]["label"] for i in ids], dtype=np.int64),
            classes=classes,
            # some WRENCH sets ship no LFs: an empty list on every row means "no stored matrix"
            weak_labels=np.array(weak, dtype=np.int8) if all(w for w in weak) else None,
            ids=ids,
            name=f"{folder.name}/{split}",
            source=str(folder),
            notes=notes,
        )
    ids_file = folder / "labeled_ids.json"
    if "train" in splits and ids_file.is_file():
        listed = json.loads(ids_file.read_text())
        listed = set(map(str, listed["labeled_ids"] if isinstance(listed, dict) else listed))
        train = splits["train"]
        is_listed = np.array([i in listed for i in train.ids])
        earlier = set(np.array(train.texts, dtype=object)[~is_listed])
        duplicates = sum(t in earlier for t in np.array(train.texts, dtype=object)[is_listed])
        if is_listed.any() and duplicates * 2 > is_listed.sum():
            splits["labeled"] = train.subset(np.flatnonzero(is_listed), name=f"{folder.name}/labeled")
            splits["train"] = train.subset(np.flatnonzero(~is_listed))
            splits["train"].notes.append(
                f"moved {int(is_listed.sum())} appended labeled rows ({duplicates} duplicate earlier rows) "
                "out of train into the 'labeled' split"
            )
    return splits
