"""Local retrieval with scikit-learn TF-IDF: background passages from a folder of documents
(the RAG mode), and labeled exemplars for prompts (random or nearest-neighbour)."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

from .prompts import Exemplar

DOC_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
CHUNK_CHARS = 800


@dataclass
class Passage:
    source: str  # file path relative to the folder
    text: str
    score: float = 0.0


def _chunks(text: str, limit: int = CHUNK_CHARS) -> list[str]:
    """Paragraphs, merged up to ``limit`` characters (a long paragraph stays whole)."""
    out, current = [], ""
    for para in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not para:
            continue
        if current and len(current) + len(para) > limit:
            out.append(current)
            current = ""
        current = f"{current}\n\n{para}" if current else para
    return out + [current] if current else out


class DocumentRetriever:
    """TF-IDF search over the text/markdown files under ``folder`` (no service, no network)."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"document folder {folder} does not exist; pass a folder of .txt/.md files")
        self.passages = [Passage(str(path.relative_to(folder)), chunk)
                         for path in sorted(folder.rglob("*")) if path.suffix.lower() in DOC_SUFFIXES
                         for chunk in _chunks(path.read_text(encoding="utf-8", errors="replace"))]
        if not self.passages:
            raise ValueError(f"no {'/'.join(DOC_SUFFIXES)} files with text under {folder}")
        self._vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
        self._matrix = self._vectorizer.fit_transform(p.text for p in self.passages)

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The ``k`` passages most similar to ``query`` (those with any overlap), best first."""
        scores = cosine_similarity(self._vectorizer.transform([query]), self._matrix)[0]
        best = np.argsort(-scores, kind="stable")[:k]
        return [Passage(self.passages[i].source, self.passages[i].text, float(scores[i]))
                for i in best if scores[i] > 0]


def select_exemplars(texts: list[str], labels, classes: list[str], k: int = 5, *, method: str = "random",
                     query: str | None = None, seed: int = 0) -> list[Exemplar]:
    """Up to ``k`` labeled examples per class for a prompt.

    Args:
        labels: class index per text (-1 = unlabeled, skipped).
        method: ``"random"``, or ``"nearest"``: per class, the examples closest (TF-IDF cosine)
            to ``query`` when given, else to the class centroid (its most typical examples).
    """
    if method not in ("random", "nearest"):
        raise ValueError(f"method must be 'random' or 'nearest', got {method!r}")
    labels = np.asarray(labels)
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    rng = random.Random(seed)
    matrix = TfidfVectorizer(sublinear_tf=True).fit(texts) if method == "nearest" else None
    chosen = []
    for c, name in enumerate(classes):
        rows = np.flatnonzero(labels == c)
        if method == "random":
            picked = rng.sample(list(rows), min(k, len(rows)))
        elif len(rows):
            X = matrix.transform([texts[i] for i in rows])
            target = matrix.transform([query]) if query else np.asarray(X.mean(axis=0))
            picked = rows[np.argsort(-cosine_similarity(target, X)[0], kind="stable")[:k]]
        else:
            picked = []
        chosen += [Exemplar(texts[i], name) for i in picked]
    return chosen
