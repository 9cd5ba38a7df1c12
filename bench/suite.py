"""The development suite shared by bench/synth.py and bench/e2e.py: any WRENCH-format folder, the same
row caps for every set, and the 100-label baselines on the same rows.

Caps (one constant each, the same for every set, fixed before any result): at most ``MAX_POOL`` train
texts as the unlabeled pool, ``MAX_VALID`` valid rows (the labeled rows are drawn from them; e2e's dev
rest is the remainder) and ``MAX_TEST`` test rows, each a fixed random sample (seed 0) so that every
method and seed sees the same rows and the sentence embeddings are computed once. They exist because
embedding 150k texts with MiniLM on a shared 2-core CPU takes hours; smaller sets are used whole.
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from alchemist_magics.data import load_public

MAX_POOL = 4000
MAX_VALID = 1000
MAX_TEST = 2000
MAX_SEQ_LENGTH = 128  # word pieces MiniLM reads per text (its default is 256): half the CPU
EMBED_CACHE = os.environ.get("ALCHEMIST_EMBED_CACHE", "/work/cache/emb")


def cap(data, n: int):
    if len(data) <= n:
        return data
    rows = np.sort(np.random.default_rng(0).permutation(len(data))[:n])
    return data.subset(rows)


def load_suite_set(data_dir, name: str, *, max_pool: int = MAX_POOL, max_valid: int = MAX_VALID,
                   max_test: int = MAX_TEST):
    """``load_public`` with the caps applied (train/dev/test subsampled once, seed 0)."""
    bench = load_public(data_dir, name)
    notes = list(bench.notes)
    sizes = (len(bench.train), len(bench.dev), len(bench.test))
    bench = replace(bench, train=cap(bench.train, max_pool), dev=cap(bench.dev, max_valid), test=cap(bench.test, max_test))
    if (len(bench.train), len(bench.dev), len(bench.test)) != sizes:
        notes.append(f"capped: train {sizes[0]}->{len(bench.train)}, valid {sizes[1]}->{len(bench.dev)}, "
                     f"test {sizes[2]}->{len(bench.test)} (fixed sample, seed 0)")
    return replace(bench, notes=notes)


def text_encoder():
    """MiniLM through the per-text embedding cache, or None when not installed."""
    from alchemist_magics.distill import default_text_encoder

    return default_text_encoder(EMBED_CACHE, max_seq_length=MAX_SEQ_LENGTH)


# --------------------------------------------------------------------------- one seed of the protocol
N_LABELED = 100


def metrics(y, pred, metric: str) -> dict:
    """The set's metric, accuracy and macro-F1 (all three, so no table hides a class)."""
    from alchemist_magics.aggregate.select import score

    out = {"metric": score(y, pred, metric), "accuracy": score(y, pred, "accuracy"),
           "macro_f1": score(y, pred, "macro_f1")}
    return {k: round(float(v), 4) for k, v in out.items()}


def embeddings(bench, encoder) -> dict:
    return {split: encoder.transform(getattr(bench, split).texts) for split in ("train", "dev", "test")}


def baselines(bench, texts_l, y_l, E_l, E_test, encoder) -> dict:
    """100-label classifiers on the same rows: TF-IDF + LR, MiniLM + LR (C=10, balanced, fixed up
    front), and MiniLM zero-shot against the class names (no label used)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from alchemist_magics.synth.concepts import class_phrase

    y_t, metric = bench.test.labels, bench.metric
    vec = TfidfVectorizer(sublinear_tf=True)
    lr = LogisticRegression(C=10.0, class_weight="balanced", max_iter=1000).fit(vec.fit_transform(texts_l), y_l)
    out = {"tfidf_lr": metrics(y_t, lr.predict(vec.transform(bench.test.texts)), metric)}
    if E_l is not None:
        lr = LogisticRegression(C=10.0, class_weight="balanced", max_iter=1000).fit(E_l, y_l)
        out["minilm_lr"] = metrics(y_t, lr.predict(E_test), metric)
        names = encoder.transform([class_phrase(c) for c in bench.task.classes])
        out["zero_shot"] = metrics(y_t, (E_test @ names.T).argmax(axis=1), metric)
    return out


def run_seed(bench, seed: int, encoder, E: dict, *, distill: bool = False, workers: int | None = None) -> dict:
    """One seed, through the product path: 100 labeled rows from valid are a Workbench's dev rows; its
    offline writer (``synth.OfflineWriter`` with ``encoder``: keyword, concept and classifier programs,
    the set chosen on cross-fitted votes) writes from them and the train texts; the Workbench smoke
    tests and applies them in the sandbox and fits the label model chosen on their cross-fitted votes
    on those rows; test scored. With ``distill``, a student on TF-IDF + MiniLM learns the label model's
    soft labels on the train rows *and* the 100 labeled rows (semi-supervised); no other label is read
    (no dev rest, no early stopping)."""
    import tempfile
    import time

    from alchemist_magics.aggregate.guard import compare_with_baselines, crossfit_predictions
    from alchemist_magics.synth.concepts import votes_for
    from alchemist_magics.synth.writer import OfflineWriter
    from alchemist_magics.workbench import Workbench

    train, valid, test, task, metric = bench.train, bench.dev, bench.test, bench.task, bench.metric
    k = len(task.classes)
    lab = np.random.default_rng(seed).permutation(len(valid))[:N_LABELED]
    labeled = valid.subset(lab)
    texts_l, y_l = labeled.texts, labeled.labels
    with tempfile.TemporaryDirectory() as root:  # the output cache: the smoke test's train run is apply's
        start = time.perf_counter()
        wb = Workbench(task, train, labeled, test, root=root, workers=workers, seed=seed)
        written = wb.write(OfflineWriter(encoder, metric=metric), 20)
        synth_s = time.perf_counter() - start
        wb.apply(progress=False)
        apply_s = time.perf_counter() - start - synth_s
        wb.fit(metric=metric)
        pred = wb.predict("test", uncovered="prior")
        pipeline_s = time.perf_counter() - start
    res = written.synthesis
    programs = [p for p in written.accepted if not p.provenance.get("unchosen")]  # the chosen set, as before dafc01a
    voted = {int(c) for p in programs for c in votes_for(p)}
    guard = compare_with_baselines(texts_l, y_l, crossfit_predictions(wb.dev_votes(), y_l, k), metric=metric,
                                   embeddings=E["dev"][lab], seed=seed)
    run = {"label_model": metrics(test.labels, pred, metric),
           "majority_vote": {name: round(float(wb.scores("test", m)["majority_vote"]), 4)
                             for name, m in (("metric", metric), ("accuracy", "accuracy"), ("macro_f1", "macro_f1"))},
           "coverage": round(float(wb.labels("test")["covered"].mean()), 4), "label_model_name": wb.model_name,
           "n_programs": len(programs), "n_flagged": len(res.flagged), "n_left_out": len(wb.left_out),
           "n_rejected": len(written.rejected), "program_set": res.program_set,
           "concept_programs": sum(p.provenance["stats"]["kind"].startswith("concept_") for p in programs),
           "classifier_kept": any(p.provenance["stats"]["kind"] == "classifier" for p in programs),
           "nearest_abstain": res.nearest_margin.get("abstain_share", 0.0),
           "classes_labeled": len(set(y_l.tolist())),
           "classes_without_program": [task.classes[c] for c in sorted(set(y_l.tolist()) - voted)],
           "synth_s": round(synth_s, 2), "apply_s": round(apply_s, 2), "pipeline_s": round(pipeline_s, 2),
           "guard": guard.to_dict(), **baselines(bench, texts_l, y_l, E["dev"][lab], E["test"], encoder)}
    if distill:
        from alchemist_magics.distill import CombinedFeatures, DistilledModel, TfidfFeatures

        start = time.perf_counter()
        cov_train = wb.labels("train")["covered"].to_numpy()
        student = DistilledModel(CombinedFeatures([TfidfFeatures(), encoder]), model="logreg", seed=seed,
                                 uncovered="ignore", C=10.0)
        student.fit(train.texts, wb.predict_proba("train"), covered=cov_train, labeled=texts_l, labeled_labels=y_l)
        run["distilled"] = metrics(test.labels, student.predict(test.texts), metric)
        run["distill_s"] = round(time.perf_counter() - start, 2)
    return run


def summarise(runs: list[dict]) -> dict:
    """mean and std over seeds of every metric block, plus the per-seed lists that matter."""
    out = {}
    for key, value in runs[0].items():
        if isinstance(value, dict) and isinstance(value.get("metric"), float):
            out[key] = {m: [round(float(np.mean([r[key][m] for r in runs])), 4),
                            round(float(np.std([r[key][m] for r in runs])), 4)] for m in value}
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = round(float(np.mean([r[key] for r in runs])), 4)
    out["guard_pipeline_better"] = [r["guard"]["pipeline_is_better"] for r in runs]
    out["guard_cv"] = {"pipeline": round(float(np.mean([r["guard"]["pipeline"] for r in runs])), 4),
                       **{n: round(float(np.mean([r["guard"]["baselines"][n] for r in runs])), 4)
                          for n in runs[0]["guard"]["baselines"]}}
    out["label_models"] = [r["label_model_name"] for r in runs]
    out["program_sets"] = [r["program_set"] for r in runs]
    out["nearest_abstain_shares"] = [r.get("nearest_abstain") for r in runs]
    out["seeds_with_class_without_program"] = sum(bool(r["classes_without_program"]) for r in runs)
    return out


def markdown_table(results: dict) -> str:
    """The benchmark table (docs/benchmarks.md) from bench/e2e.py's JSON: per set, the set's metric
    and macro-F1, mean ± std over seeds, ours beside the 100-label baselines, and the bar."""
    def cell(block, m="metric"):
        return f"{block[m][0]:.3f} ± {block[m][1]:.3f}" if block else "-"

    lines = ["| set (metric) | label model | distilled | TF-IDF LR | MiniLM LR | zero-shot | human programs | "
             "macro-F1: LM / distilled / TF-IDF LR / MiniLM LR | LM ≥ TF-IDF | distilled ≥ both | "
             "seeds with a class lacking a program | s per seed (synth+apply+LM) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if not isinstance(r, dict) or "label_model" not in r:
            continue
        dist = r.get("distilled")
        base = max(r["tfidf_lr"]["metric"][0], r.get("minilm_lr", r["tfidf_lr"])["metric"][0])
        macro = " / ".join(f"{r[k]['macro_f1'][0]:.3f}" if r.get(k) else "-"
                           for k in ("label_model", "distilled", "tfidf_lr", "minilm_lr"))
        lines.append(
            f"| {name} ({r['metric_name']}) | {cell(r['label_model'])} | {cell(dist)} | {cell(r['tfidf_lr'])} | "
            f"{cell(r.get('minilm_lr'))} | {cell(r.get('zero_shot'))} | {cell(r.get('human'))} | {macro} | "
            f"{'yes' if r['label_model']['metric'][0] >= r['tfidf_lr']['metric'][0] else '**no**'} | "
            f"{'-' if not dist else 'yes' if dist['metric'][0] >= base else '**no**'} | "
            f"{r['seeds_with_class_without_program']} | {r['pipeline_s']:.1f} |")
    return "\n".join(lines)
