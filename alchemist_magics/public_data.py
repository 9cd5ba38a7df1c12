"""Public datasets for tutorials and benchmarks: a local folder first, the real download otherwise.

``fetch_wrench("youtube")`` looks for ``<dir>/youtube/`` in, in order: the ``data_dir`` given,
``$ALCHEMIST_DATA``, ``../shared/data`` (next to the working directory or to this checkout) and the
download cache (``$ALCHEMIST_CACHE`` or ``~/.cache/alchemist_magics/data``). Only when none has it
are the WRENCH files downloaded from the Hugging Face mirror of the benchmark into the cache
(atomically, so an interrupted download is never mistaken for data), then loaded with
:func:`~alchemist_magics.data.load_wrench`, which also fixes the known defects of those files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

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
    from .data import load_wrench

    folder = find_dataset(name, data_dir)
    if folder is None:
        if not download:
            searched = ", ".join(str(p) for p in data_dirs(data_dir))
            raise FileNotFoundError(f"WRENCH {name!r} is not in any of: {searched}; pass data_dir= or allow download=True")
        folder = download_wrench(name, url)
    return load_wrench(folder)
