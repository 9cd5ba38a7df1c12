"""Image datasets: a folder with one sub-folder per class, or a table of image paths.

An :class:`ImageSet` holds image paths, optional gold labels (``-1`` = unknown), optional group
labels (e.g. ``"waterbird/land"``, for worst-group accuracy) and the class names. Files that are
missing or that Pillow cannot identify as an image are *skipped and reported* (``skipped``: path
and reason, plus a warning with the count); images that only fail when fully decoded are dropped
the same way when they are embedded (see ``clip.embed_images``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.dataset import DataError, label_indices

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


@dataclass
class ImageSet:
    """Images of one split.

    Attributes:
        paths: image file paths (str).
        labels: gold class indices (``int64``, ``-1`` = unknown), or ``None``.
        classes: class names (class ``i`` is ``classes[i]``), or ``None``.
        groups: group label per image (``object`` array), or ``None``.
        skipped: ``(path, reason)`` of every image that could not be used.
        name: a short name for messages.
    """

    paths: list[str]
    labels: np.ndarray | None = None
    classes: list[str] | None = None
    groups: np.ndarray | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    name: str = "images"

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def frame(self) -> pd.DataFrame:
        """A table view: ``path``, and ``label`` / ``group`` when known."""
        table = {"path": self.paths}
        if self.labels is not None:
            table["label"] = [self.classes[i] if i >= 0 else None for i in self.labels]
        if self.groups is not None:
            table["group"] = self.groups
        return pd.DataFrame(table)

    def subset(self, rows: Sequence[int] | np.ndarray) -> "ImageSet":
        """A new set with the given row positions (labels and groups follow; ``skipped`` is kept)."""
        rows = np.asarray(rows, dtype=np.int64)
        return ImageSet(
            paths=[self.paths[i] for i in rows],
            labels=None if self.labels is None else self.labels[rows],
            classes=self.classes,
            groups=None if self.groups is None else self.groups[rows],
            skipped=list(self.skipped),
            name=self.name,
        )

    def __repr__(self) -> str:
        parts = [f"{len(self)} images"]
        if self.classes:
            parts.append(f"classes={self.classes}")
        if self.groups is not None:
            parts.append(f"{len(set(self.groups.tolist()))} groups")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return f"ImageSet({self.name!r}: {', '.join(parts)})"


def unreadable_reason(path: str | Path) -> str | None:
    """Why ``path`` is not a usable image (missing, empty, not an image), or None when it is.

    Only the header is read (cheap); truncated pixel data shows up when the image is decoded.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        return "no such file"
    if path.stat().st_size == 0:
        return "empty file"
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        # Pillow raises SyntaxError for some malformed headers (e.g. broken PNG chunks)
        return f"not a readable image ({type(err).__name__}: {err})"
    return None


def _keep_readable(images: ImageSet) -> ImageSet:
    reasons = [unreadable_reason(p) for p in images.paths]
    bad = [i for i, why in enumerate(reasons) if why]
    if not bad:
        return images
    kept = images.subset([i for i, why in enumerate(reasons) if not why])
    kept.skipped += [(images.paths[i], reasons[i]) for i in bad]
    first = kept.skipped[-len(bad)]
    warnings.warn(f"{images.name}: skipped {len(bad)} unreadable image(s), e.g. {first[0]} ({first[1]}); "
                  "see .skipped for all", stacklevel=3)
    if not len(kept):
        raise DataError(f"{images.name}: none of the {len(images)} images is readable; first: {first[0]} ({first[1]})")
    return kept


def load_image_folder(folder: str | Path, classes: Sequence[str] | None = None, *,
                      name: str | None = None) -> ImageSet:
    """Images in ``folder/<class name>/...`` (searched recursively inside each class folder).

    Args:
        folder: the root folder; each sub-folder is a class.
        classes: class names in index order (default: the sub-folder names, sorted). Every name
            must have a sub-folder.
        name: used in messages (default: the folder name).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = found
    missing = [c for c in classes if c not in found]
    if missing:
        raise DataError(f"class folder(s) {missing} not in {folder}; sub-folders there: {found}")
    if len(classes) < 2:
        raise DataError(f"{folder} needs at least 2 class sub-folders, found {found}")
    paths, labels = [], []
    for index, cls in enumerate(classes):
        files = sorted(p for p in (folder / cls).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        paths += [str(p) for p in files]
        labels += [index] * len(files)
    if not paths:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    images = ImageSet(paths, np.array(labels, dtype=np.int64), list(classes), name=name or folder.name)
    return _keep_readable(images)


def load_image_table(table: pd.DataFrame | str | Path, path_column: str = "path", label_column: str | None = None,
                     classes: Sequence[str] | None = None, group_column: str | None = None, *,
                     root: str | Path | None = None, name: str | None = None) -> ImageSet:
    """Images listed in a DataFrame or a CSV file, with optional label and group columns.

    Args:
        table: a DataFrame, or the path of a CSV file.
        path_column: the column with image paths.
        label_column: optional gold labels (class names or indices; empty = unlabeled).
        classes: class names in index order (inferred from the label column when omitted).
        group_column: optional group labels (any values; used for worst-group accuracy).
        root: relative paths are resolved against this folder (default: the CSV's folder, else
            the current directory).
        name: used in messages.
    """
    if isinstance(table, (str, Path)):
        csv = Path(table)
        if not csv.is_file():
            raise DataError(f"no such file: {csv}")
        root = csv.parent if root is None else root
        name = name or csv.name
        table = pd.read_csv(csv)
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"expected a DataFrame or a CSV path, got {type(table).__name__}")
    wanted = [c for c in (path_column, label_column, group_column) if c]
    absent = [c for c in wanted if c not in table.columns]
    if absent:
        raise DataError(f"column(s) {absent} not in the table; available columns: {list(table.columns)}")
    if len(table) == 0:
        raise DataError("the image table is empty")
    if table[path_column].isna().any():
        raise DataError(f"{int(table[path_column].isna().sum())} row(s) have no path in '{path_column}'; drop them first")
    base = Path(root) if root is not None else Path.cwd()
    paths = [str(p if Path(p).is_absolute() else base / p) for p in table[path_column].astype(str)]
    labels = None
    if label_column:
        labels, classes = label_indices(table[label_column], list(classes) if classes is not None else None)
    groups = None
    if group_column:
        groups = table[group_column].astype(str).to_numpy(dtype=object)
    images = ImageSet(paths, labels, list(classes) if classes is not None else None, groups, name=name or "images")
    return _keep_readable(images)
