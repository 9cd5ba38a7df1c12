"""Offline program synthesizer: writes labeling programs from a few labeled rows, no LLM needed.

It is the default "program source" when no LLM endpoint is configured. The programs it writes are
ordinary, editable Python sources (a keyword list, a regex or a length threshold, and a 3-line
function) that go through the same check / sandbox / label-model path as LLM-written ones.

How it works (deterministic; a few seconds at most on ~10k texts):

1. Every text becomes a set of binary features that a short program can test exactly: words and
   two-word phrases (``\\w+`` tokens of the lower-cased text), the opening word or two, a handful of
   shapes (a link, a long number, a currency sign, ...) and length thresholds.
2. A multinomial naive Bayes model is fitted on the labeled rows and refined on the unlabeled texts
   by EM (Nigam et al., 2000). This is how the unlabeled data grows the rules: a word never seen in
   the labeled rows still gets a class if it keeps company with words that have one.
3. Each feature gets a smoothed precision per class from the labeled rows plus the soft
   EM labels of the unlabeled rows. Features well above the class prior become rules.
4. Rules are grouped into programs per class: keyword lists (most precise first, in tiers), opening
   phrases, one program per shape or length rule. Classes take turns until ``n_programs`` is
   reached; each program's docstring states what it keys on and its accuracy on the labeled rows.

Hyper-parameters are fixed up front (the constants below), not tuned on any benchmark test set.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from ..programs import Program
from ..task import TaskSpec
from .naming import class_indices, identifier, unique_names

# Shapes a program can test with one regex on the raw text (name -> pattern).
SHAPES = {
    "link": r"(?i)https?://|www\.|\.com\b",
    "long_number": r"\d{5,}",
    "currency": r"[£$€]",
    "exclamation": r"!",
    "all_caps_word": r"\b[A-Z]{4,}\b",
}
OPENING_WORDS = 2
PAIR_GAIN = 0.1  # precision a pair's opening word must add to its later word
BRIEF_WORDS = (4, 5, 6)  # word-count cuts for "short text opening with ..." rules
LENGTH_QUANTILES = (0.1, 0.2, 0.3, 0.7, 0.8, 0.9)
EM_ROUNDS = 5
UNLABELED_WEIGHT = 0.3  # an EM-labeled row counts this much against a labeled one
NB_ALPHA = 0.1
PRECISION_ALPHA = 2.0  # pseudo-count pulling a rule's precision towards the class prior
LIFT = 0.6  # a rule must close this share of the gap between the prior and a perfect rule
MIN_SUPPORT = 8.0  # weighted rows (labeled + EM-labeled) a rule must fire on; less on tiny data
WORDS_PER_PROGRAM = 20
MIN_LABELED_HITS = 2  # labeled rows a shape or length rule must get right
# The multi-class decision list over openings (3+ classes only; on binary youtube it lost in CV):
DECISION_KINDS = ("start", "brief", "pair")  # the features it orders
DECISION_LIFT = 0.25  # a rule must close this share of the gap between its class prior and 1
DECISION_RULES = 60
MAX_UNLABELED = 20000  # larger pools are subsampled (with the seed) to stay fast
KEYWORDS_SHOWN = 12  # words per class that indicative_keywords() gives an LLM prompt


@dataclass
class _Feature:
    kind: str  # "word" (word or phrase), "start" (opening words), "shape", "short", "long"
    key: str  # the word/phrase, the shape name, or the length threshold as text


@dataclass
class _Rule:
    feature: int  # column in the feature matrix
    label: int
    precision: float


def synthesize_programs(
    task: TaskSpec,
    labeled_texts,
    labels,
    unlabeled_texts=(),
    n_programs: int = 20,
    seed: int = 0,
    *,
    crossfit: int = 5,
) -> list[Program]:
    """Write up to ``n_programs`` labeling programs for ``task`` from a few labeled rows.

    Args:
        task: the labeling task (its class names name the programs and their docstrings).
        labeled_texts: texts of the labeled rows.
        labels: their class indices ``0..k-1`` (class names are accepted too).
        unlabeled_texts: texts without labels; used to grow and check the rules.
        n_programs: the most programs to return (fewer when the data support fewer rules).
        seed: seeds the subsample of very large unlabeled pools and the folds; same inputs + seed = same output.
        crossfit: folds of the labeled rows for the accuracy each program states (0: in-sample only).
            Each program's stats then hold ``crossfit_fired``/``crossfit_right`` and its held-out votes
            ``crossfit_votes``: the same recipe run without a fold, scored on that fold.

    Returns:
        :class:`Program` objects whose sources each define one function ``f(text) -> class index or
        -1``; ``provenance`` is ``{"source": "offline-synthesizer", "seed", "stats"}`` where stats
        give the class, the rule kind, the keys and how often it fired / was right on the labeled rows.

    Raises:
        ValueError: mismatched lengths, unknown labels, or fewer than two classes labeled.
    """
    y, features, X_l, X_u = _prepare(task, labeled_texts, labels, unlabeled_texts, seed)
    k = task.cardinality
    junk = _junk_mask(features)
    plan = _plan(X_l, y, X_u, features, k, n_programs, junk)
    # Cross-fitting: the same recipe without each fold of the labeled rows, scored on that fold.
    held = _crossfit_votes(X_l, y, X_u, features, k, n_programs, seed, crossfit, junk) if crossfit else {}
    sources, stats = [], []
    for key, label, kind, rules in plan:
        votes = _votes(X_l, label, kind, rules)
        entry = {"label": None if kind == "decision" else label, "kind": kind,
                 "keys": [features[r.feature].key for r in rules],
                 "labeled_fired": int((votes >= 0).sum()), "labeled_right": int((votes == y).sum())}
        if kind == "decision":
            entry["labels"] = [r.label for r in rules]
        if crossfit:
            v = held.get(key, np.full(len(y), -1))
            entry.update(crossfit_fired=int((v >= 0).sum()), crossfit_right=int((v == y).sum()),
                         labeled_rows=len(y), crossfit_votes=v.tolist())
        stats.append(entry)
        keys = [features[r.feature] for r in rules]
        sources.append(_write_decision_list(task, rules, features, entry, seed) if kind == "decision"
                       else _write(task, label, kind, keys, entry, seed))
    provenance = [{"source": "offline-synthesizer", "seed": seed, "stats": st} for st in stats]
    return [Program(src, provenance=prov) for src, prov in zip(unique_names(sources), provenance)]


def indicative_keywords(task: TaskSpec, labeled_texts, labels, unlabeled_texts=(), per_class: int = KEYWORDS_SHOWN,
                        seed: int = 0) -> dict[str, list[str]]:
    """Per class name, the words and two-word phrases its keyword programs would be built from (the
    rules of steps 2-3 above), most precise first, at most ``per_class``; a class without one is
    left out. Made for an LLM's prompt: a small model shown a few exemplars copies their phrases
    ("lyricalladie(21/f)"); shown the words that mark a class across the labeled rows, it writes
    programs around evidence that generalises.

    Raises:
        ValueError: as :func:`synthesize_programs`.
    """
    y, features, X_l, X_u = _prepare(task, labeled_texts, labels, unlabeled_texts, seed)
    _, rules = _mined(X_l, y, X_u, features, task.cardinality, _junk_mask(features))
    out: dict[str, list[str]] = {}
    for rule in rules:  # most precise first
        words, key = out.setdefault(task.classes[rule.label], []), features[rule.feature].key
        # A program tests a key as a substring: "da" or "co uk" would fire inside other words
        if features[rule.feature].kind == "word" and len(words) < per_class and re.search(r"[^\W_]{3}", key):
            words.append(key)
    return {name: words for name, words in out.items() if words}


def _prepare(task: TaskSpec, labeled_texts, labels, unlabeled_texts, seed: int):
    """Checked labels, the features and their labeled and unlabeled matrices (large pools subsampled)."""
    texts_l = [_as_text(t) for t in labeled_texts]
    y = class_indices(task, labels, len(texts_l))
    if len(set(y.tolist())) < 2:
        raise ValueError("label rows of at least two different classes to synthesize programs")
    texts_u = [_as_text(t) for t in unlabeled_texts]
    if len(texts_u) > MAX_UNLABELED:
        keep = np.random.default_rng(seed).choice(len(texts_u), MAX_UNLABELED, replace=False)
        texts_u = [texts_u[i] for i in np.sort(keep)]
    features, X = _featurize(texts_l + texts_u)
    return y, features, X[: len(texts_l)], X[len(texts_l):]


def _mined(X_l, y, X_u, features, k: int, junk: np.ndarray | None) -> tuple[np.ndarray, list[_Rule]]:
    """The EM soft labels of the unlabeled rows and the rules mined with them (steps 2-3)."""
    Y_l = np.eye(k)[y]
    # Pair features restate each later word once per opening word: naive Bayes would count the
    # same evidence again and drift, so EM leaves them out (they still become rules below).
    em = np.array([f.kind != "pair" for f in features])
    P_u = _em_naive_bayes(X_l[:, em], Y_l, X_u[:, em])
    return P_u, _mine_rules(X_l, Y_l, X_u, P_u, features, junk)


def _plan(X_l, y, X_u, features, k: int, n_programs: int, junk: np.ndarray | None = None) -> list[tuple]:
    """The programs to write, as (key, label, kind, rules): ``key`` names a program across folds
    (``("decision",)`` or ``(label, kind, i)`` for the i-th program of that class and kind)."""
    Y_l = np.eye(k)[y]
    P_u, rules = _mined(X_l, y, X_u, features, k, junk)
    # With 3+ classes, one ordered list replaces the per-class opening programs, whose votes conflict.
    ordered = _decision_list(X_l, Y_l, X_u, P_u, features) if k >= 3 else []
    if len({r.label for r in ordered}) < 2:
        ordered = []  # a one-class list is just an opening program
    else:
        rules = [r for r in rules if features[r.feature].kind not in DECISION_KINDS]
    plan = []
    if ordered and n_programs > 0:
        plan.append((("decision",), -1, "decision", ordered))
    seen: dict[tuple, int] = {}
    for label, kind, group in _take_turns(_group_rules(rules, features, k), k, n_programs - len(plan)):
        i = seen[(label, kind)] = seen.get((label, kind), -1) + 1
        plan.append(((label, kind, i), label, kind, group))
    return plan


def _votes(X, label: int, kind: str, rules: list[_Rule]) -> np.ndarray:
    """What a planned program votes on the rows of feature matrix ``X`` (-1: abstain)."""
    if kind == "decision":
        return _decide(X, rules)
    fired = np.asarray(X[:, [r.feature for r in rules]].sum(axis=1)).ravel() > 0
    return np.where(fired, label, -1)


def _crossfit_votes(X_l, y, X_u, features, k, n_programs, seed, folds, junk=None) -> dict:
    """Held-out votes per program key: for each fold, the programs planned without its rows vote on it."""
    parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), min(folds, len(y)))
    out: dict[tuple, np.ndarray] = {}
    for part in parts:
        fit = np.setdiff1d(np.arange(len(y)), part)
        if not len(part) or len(set(y[fit].tolist())) < 2:
            continue
        for key, label, kind, rules in _plan(X_l[fit], y[fit], X_u, features, k, n_programs, junk):
            out.setdefault(key, np.full(len(y), -1))[part] = _votes(X_l[part], label, kind, rules)
    return out


def _as_text(value) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))



def _featurize(texts: list[str]) -> tuple[list[_Feature], sparse.csr_matrix]:
    """Binary features that a program can test exactly (see the module docstring)."""
    blocks, features = [], []
    # Words and adjacent word pairs of the lower-cased text: the same tokens r"\w+" finds.
    words = CountVectorizer(token_pattern=r"(?u)\w+", ngram_range=(1, 2), binary=True, min_df=2)
    starts = CountVectorizer(analyzer=_openings, binary=True, min_df=2)
    briefs = CountVectorizer(analyzer=_brief_openings, binary=True, min_df=2)
    pairs = CountVectorizer(analyzer=_pairs, binary=True, min_df=2)
    for kind, vectorizer in (("word", words), ("start", starts), ("brief", briefs), ("pair", pairs)):
        try:
            blocks.append(vectorizer.fit_transform(texts))
        except ValueError:  # empty vocabulary: texts too short or too few
            continue
        features += [_Feature(kind, key) for key in vectorizer.get_feature_names_out()]
    columns = [[bool(re.search(p, t)) for t in texts] for p in SHAPES.values()]
    features += [_Feature("shape", name) for name in SHAPES]
    lengths = np.array([len(t) for t in texts])
    for q in LENGTH_QUANTILES:
        cut = int(np.quantile(lengths, q))
        long = q > 0.5
        columns.append(lengths >= cut if long else lengths <= cut)
        features.append(_Feature("long" if long else "short", str(cut)))
    blocks.append(sparse.csr_matrix(np.array(columns, dtype=float).T))
    return features, sparse.hstack(blocks, format="csr", dtype=float)


def _openings(text: str) -> list[str]:
    tokens = re.findall(r"\w+", text.lower())[:OPENING_WORDS]
    return [" ".join(tokens[:n]) for n in range(1, len(tokens) + 1)]


def _brief_openings(text: str) -> list[str]:
    """Openings of short texts, keyed "opening|most words" ("what is|5": a short definition question)."""
    n_words = len(re.findall(r"\w+", text))
    return [f"{opening}|{cut}" for cut in BRIEF_WORDS if n_words <= cut for opening in _openings(text)]


def _pairs(text: str) -> list[str]:
    """The first word with each later word, keyed "first+later" ("what+city")."""
    tokens = re.findall(r"\w+", text.lower())
    return [f"{tokens[0]}+{word}" for word in set(tokens[1:])] if tokens else []


def _em_naive_bayes(X_l, Y_l, X_u) -> np.ndarray:
    """Soft labels for the unlabeled rows: naive Bayes on the labeled rows, refined by EM."""
    k = Y_l.shape[1]
    P_u = np.zeros((X_u.shape[0], k))
    for round_ in range(EM_ROUNDS + 1):
        weights_u = P_u * UNLABELED_WEIGHT if round_ else P_u
        counts = X_l.T @ Y_l + X_u.T @ weights_u  # features x classes
        mass = Y_l.sum(axis=0) + weights_u.sum(axis=0)
        log_prior = np.log((mass + 1.0) / (mass.sum() + k))
        log_theta = np.log((counts + NB_ALPHA) / (counts.sum(axis=0) + NB_ALPHA * X_l.shape[1]))
        if X_u.shape[0] == 0:
            break
        logits = X_u @ log_theta + log_prior
        P_u = np.exp(logits - logits.max(axis=1, keepdims=True))
        P_u /= P_u.sum(axis=1, keepdims=True)
    return P_u


def _precisions(X_l, Y_l, X_u, P_u):
    """Per feature and class: smoothed precision (labeled + EM-labeled counts), the smoothed
    precision on the labeled rows alone, the weighted support, the class prior and the least support."""
    counts = np.asarray(X_l.T @ Y_l + X_u.T @ P_u)  # features x classes
    support = counts.sum(axis=1)
    prior = (Y_l.sum(axis=0) + P_u.sum(axis=0) + 1.0) / (Y_l.shape[0] + P_u.shape[0] + Y_l.shape[1])
    precision = (counts + PRECISION_ALPHA * prior) / (support[:, None] + PRECISION_ALPHA)
    counts_l = np.asarray(X_l.T @ Y_l)
    precision_l = (counts_l + prior) / (counts_l.sum(axis=1, keepdims=True) + 1.0)
    least = min(MIN_SUPPORT, max(2.0, 0.05 * X_l.shape[0] + 0.05 * X_u.shape[0]))
    return precision, precision_l, counts_l, support, prior, least


def _mine_rules(X_l, Y_l, X_u, P_u, features: list[_Feature], junk: np.ndarray | None = None) -> list[_Rule]:
    """Features whose smoothed precision for a class is well above that class's prior."""
    precision, precision_l, counts_l, support, prior, least = _precisions(X_l, Y_l, X_u, P_u)
    junk = _junk_mask(features) if junk is None else junk
    floor = prior + LIFT * (1.0 - prior)
    # The labeled rows must not contradict the rule (smoothed labeled precision above the prior).
    ok = (precision >= floor) & (precision_l >= prior) & (support[:, None] >= least)
    ok &= Y_l.sum(axis=0) > 0  # never vote for a class no labeled row has
    ok &= ~junk[:, None]
    # Shapes and lengths are few and broad: they must prove themselves on the labeled rows.
    single = np.array([f.kind in ("shape", "short", "long") for f in features])
    ok[single] &= counts_l[single] >= MIN_LABELED_HITS
    # A pair must say more than its later word alone does.
    word_index = {f.key: i for i, f in enumerate(features) if f.kind == "word"}
    for i, f in enumerate(features):
        later = word_index.get(f.key.split("+")[-1]) if f.kind == "pair" else None
        if later is not None:
            ok[i] &= precision[i] >= precision[later] + PAIR_GAIN
    rows, cols = np.nonzero(ok)
    rules = [_Rule(int(f), int(c), float(precision[f, c])) for f, c in zip(rows, cols)]
    return sorted(rules, key=lambda r: (-r.precision, r.feature))


_JUNK = re.compile(r"(?:^|[ +])(?:\d{1,2}|(?:19|20)\d\ds?)(?:$|[ +])")


def _junk_mask(features: list[_Feature]) -> np.ndarray:
    """Words that make poor keywords: years and one- or two-digit numbers (counts, dates, section
    numbers: they name rows, not classes). Longer numbers stay (prices and short codes such as
    ``150``/``1000`` are real spam evidence; measured on sms: dropping every number cost ~0.02 F1)."""
    return np.array([f.kind in ("word", "pair") and _JUNK.search(f.key) is not None for f in features], dtype=bool)


def _decision_list(X_l, Y_l, X_u, P_u, features: list[_Feature]) -> list[_Rule]:
    """One ordered multi-class list over the opening features (openings, short-text openings,
    first word + later word): each feature votes its most likely class, the most precise first, and
    a rule is kept only if it is the first to match on at least ``MIN_SUPPORT`` weighted rows.
    One program that says "how many -> NUM, what city -> LOC, what -> ENTY" casts one vote per
    text where separate per-class opening programs would cast several conflicting ones."""
    precision, precision_l, _, support, prior, least = _precisions(X_l, Y_l, X_u, P_u)
    label = precision.argmax(axis=1)
    rows = np.arange(len(features))
    best = precision[rows, label]
    ok = np.array([f.kind in DECISION_KINDS for f in features])
    ok &= (best >= prior[label] + DECISION_LIFT * (1.0 - prior[label])) & (precision_l[rows, label] >= prior[label]) & (support >= least)
    ok &= Y_l.sum(axis=0)[label] > 0
    order = sorted(np.nonzero(ok)[0], key=lambda f: (-best[f], f))
    X = sparse.vstack([X_l, X_u], format="csc")
    weight = np.concatenate([np.ones(X_l.shape[0]), np.full(X_u.shape[0], UNLABELED_WEIGHT)])
    decided = np.zeros(X.shape[0], dtype=bool)
    rules = []
    for f in order:
        hits = X[:, f].toarray().ravel() > 0
        first = hits & ~decided
        if weight[first].sum() >= least:
            rules.append(_Rule(int(f), int(label[f]), float(best[f])))
            decided |= hits
        if len(rules) == DECISION_RULES:
            break
    return rules


def _group_rules(rules: list[_Rule], features: list[_Feature], k: int) -> list[list]:
    """Per class, an ordered list of (kind, rules) program groups: the openings (anchored, so the
    most telling on questions and commands), then keyword lists in tiers, shapes and lengths."""
    per_class = [[] for _ in range(k)]
    for label in range(k):
        mine = [r for r in rules if r.label == label]
        of_kind = {kind: [r for r in mine if features[r.feature].kind == kind] for kind in ("word", "start", "brief", "pair")}
        words = _drop_covered_phrases(of_kind["word"], features)
        starts = _drop_covered_phrases(of_kind["start"], features)
        # A short-text or pair rule adds nothing for a class whose opening rules already take its opening.
        opened = {features[r.feature].key for r in of_kind["start"]}
        briefs = [r for r in _one_cut_per_opening(of_kind["brief"], features)
                  if not _prefixes(features[r.feature].key.split("|")[0]) & opened]
        pairs = [r for r in of_kind["pair"] if features[r.feature].key.split("+")[0] not in opened]
        singles = [r for r in mine if features[r.feature].kind in ("shape", "short", "long")]
        groups = [("word", words[i: i + WORDS_PER_PROGRAM]) for i in range(0, len(words), WORDS_PER_PROGRAM)]
        groups[1:1] = [("start", starts[:WORDS_PER_PROGRAM]), ("brief", briefs[:WORDS_PER_PROGRAM]),
                       ("pair", pairs[:WORDS_PER_PROGRAM])] + [(features[r.feature].kind, [r]) for r in singles[:2]]
        per_class[label] = [(kind, group) for kind, group in groups if group]
    return per_class


def _prefixes(opening: str) -> set[str]:
    words = opening.split()
    return {" ".join(words[:n]) for n in range(1, len(words) + 1)}


def _one_cut_per_opening(rules: list[_Rule], features: list[_Feature]) -> list[_Rule]:
    """Keep the most precise word-count cut of each opening."""
    seen, out = set(), []
    for rule in rules:
        opening = features[rule.feature].key.split("|")[0]
        if opening not in seen:
            seen.add(opening)
            out.append(rule)
    return out


def _drop_covered_phrases(rules: list[_Rule], features: list[_Feature]) -> list[_Rule]:
    """A phrase adds nothing next to a keyword it starts with or contains."""
    keys = {features[r.feature].key for r in rules}
    return [r for r in rules if not (" " in features[r.feature].key
                                     and any(w in keys for w in features[r.feature].key.split()))]


def _take_turns(per_class: list[list], k: int, n_programs: int):
    """Classes take turns, each offering its next most precise group, until the budget is spent."""
    chosen, turn = [], 0
    while len(chosen) < n_programs and any(turn < len(g) for g in per_class):
        for label in range(k):
            if turn < len(per_class[label]) and len(chosen) < n_programs:
                kind, group = per_class[label][turn]
                chosen.append((label, kind, group))
        turn += 1
    return chosen


def _decide(X, ordered: list[_Rule]) -> np.ndarray:
    """The decision list's vote on each row of ``X`` (-1 where no rule matches)."""
    out = np.full(X.shape[0], -1)
    for rule in reversed(ordered):  # earlier rules overwrite later ones
        out[X[:, rule.feature].toarray().ravel() > 0] = rule.label
    return out


def _write_decision_list(task: TaskSpec, ordered: list[_Rule], features: list[_Feature], stats: dict,
                         seed: int) -> str:
    """Render the multi-class decision list as (opening, later word, most words, class) rules."""
    rows = []
    for rule in ordered:
        f = features[rule.feature]
        opening, _, most = f.key.partition("|") if f.kind == "brief" else (f.key, "", "0")
        opening, _, later = opening.partition("+") if f.kind == "pair" else (opening, "", "")
        rows.append(f"({opening!r}, {later!r}, {int(most)}, {task.classes[rule.label]!r})")
    listing = "\n".join(f"    {row}," for row in rows)
    classes = _wrap([f"{name!r}: {i}" for i, name in enumerate(task.classes)])
    fname = identifier(f"{task.name}_by_opening")
    return (
        f"import re\n\n{_header(stats, seed)}"
        f"# Checked in order, the first match decides. A rule: (opening words, a later word or '',\n"
        f"# the most words the text may have or 0 for any, the class).\n"
        f"RULES = [\n{listing}\n]\nCLASSES = {{\n{classes}\n}}\n\n\n"
        f"def {fname}(text):\n"
        f'    """The class of the first rule in RULES the lower-cased text matches, else abstain."""\n'
        f'    words = re.findall(r"\\w+", text.lower())\n'
        f"    for opening, later, most, name in RULES:\n"
        f"        first = opening.split()\n"
        f"        if (words[: len(first)] == first and (not later or later in words[len(first):])\n"
        f"                and (not most or len(words) <= most)):\n"
        f"            return CLASSES[name]\n"
        f"    return -1\n"
    )


def _write(task: TaskSpec, label: int, kind: str, feats: list[_Feature], stats: dict, seed: int) -> str:
    """Render one readable program."""
    name = task.classes[label]
    header = _header(stats, seed)
    keys = [f.key for f in feats]
    if kind in ("word", "start"):
        listing = _wrap([repr(k) for k in keys])
        anchor = r"^\W*" if kind == "start" else r"\b"
        what = "starts with" if kind == "start" else "contains"
        fname = identifier(f"{name}_if_{'starts_' if kind == 'start' else ''}{'_or_'.join(keys[:2])}")
        return (
            f"import re\n\n{header}WORDS = [\n{listing}\n]\n"
            f'PATTERN = r"{anchor}(?:" + "|".join(re.escape(w).replace(r"\\ ", r"\\W+") '
            f'for w in WORDS) + r")\\b"\n\n\n'
            f"def {fname}(text):\n"
            f'    """Vote {name!r} ({label}) if the lower-cased text {what} one of WORDS, else abstain."""\n'
            f"    return {label} if re.search(PATTERN, text.lower()) else -1\n"
        )
    if kind == "brief":
        cuts = dict(key.split("|") for key in keys)
        listing = _wrap([f"{opening!r}: {cut}" for opening, cut in cuts.items()])
        fname = identifier(f"{name}_if_short_{'_or_'.join(list(cuts)[:2])}")
        return (
            f"import re\n\n{header}# opening words -> the most words the whole text may have\n"
            f"OPENINGS = {{\n{listing}\n}}\n\n\n"
            f"def {fname}(text):\n"
            f'    """Vote {name!r} ({label}) if the text opens with one of OPENINGS and is at most that many\n'
            f'    words long, else abstain."""\n'
            f'    words = re.findall(r"\\w+", text.lower())\n'
            f"    for opening, most in OPENINGS.items():\n"
            f"        if len(words) <= most and words[: len(opening.split())] == opening.split():\n"
            f"            return {label}\n"
            f"    return -1\n"
        )
    if kind == "pair":
        pairs = [tuple(key.split("+")) for key in keys]
        listing = _wrap([repr(pair) for pair in pairs])
        fname = identifier(f"{name}_if_{'_or_'.join('_'.join(p) for p in pairs[:2])}")
        return (
            f"import re\n\n{header}# (first word, a later word)\nPAIRS = [\n{listing}\n]\n\n\n"
            f"def {fname}(text):\n"
            f'    """Vote {name!r} ({label}) if the text opens with the first word of a pair and has its\n'
            f'    second word later on, else abstain."""\n'
            f'    words = re.findall(r"\\w+", text.lower())\n'
            f"    later = set(words[1:])\n"
            f"    return {label} if any(words[:1] == [first] and word in later for first, word in PAIRS) else -1\n"
        )
    if kind == "shape":
        fname = identifier(f"{name}_if_{keys[0]}")
        return (
            f'import re\n\n{header}{keys[0].upper()} = r"{SHAPES[keys[0]]}"\n\n\n'
            f"def {fname}(text):\n"
            f'    """Vote {name!r} ({label}) if the text has a {keys[0].replace("_", " ")}, else abstain."""\n'
            f"    return {label} if re.search({keys[0].upper()}, text) else -1\n"
        )
    op, word = (">=", "long") if kind == "long" else ("<=", "short")
    fname = identifier(f"{name}_if_{word}")
    return (
        f"{header}\n\ndef {fname}(text):\n"
        f'    """Vote {name!r} ({label}) if the text is {word} ({op} {keys[0]} characters), else abstain."""\n'
        f"    return {label} if len(text) {op} {keys[0]} else -1\n"
    )


def _header(stats: dict, seed: int) -> str:
    """The first comment: the accuracy on rows the program was not mined from when cross-fitted."""
    if "crossfit_fired" in stats:
        fired, right = stats["crossfit_fired"], stats["crossfit_right"]
        where = (f"Cross-fitted on the {stats['labeled_rows']} labeled rows (mined without the rows "
                 f"it is scored on)")
    else:
        fired, right = stats["labeled_fired"], stats["labeled_right"]
        where = "On the labeled rows it was mined from (in-sample, optimistic)"
    accuracy = f"{right}/{fired} right ({right / fired:.0%})" if fired else "never fired"
    return f"# Written by the offline synthesizer (seed {seed}). {where}: {accuracy}.\n"


def _wrap(items: list[str], width: int = 96) -> str:
    """Items of a list literal, several per line, never split inside an item."""
    lines = [""]
    for item in items:
        if lines[-1] and len(lines[-1]) + len(item) + 2 > width - 4:
            lines.append("")
        lines[-1] += (", " if lines[-1] else "") + item
    return "\n".join(f"    {line}," for line in lines)
