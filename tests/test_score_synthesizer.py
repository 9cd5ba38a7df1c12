"""The offline synthesizer of programs over concept scores, and the toy shapes data and CLIP."""
import hashlib
from types import SimpleNamespace

import alchemist_magics  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads)
import numpy as np
import pandas as pd
import pytest

from alchemist_magics import TaskSpec, Workbench
from alchemist_magics.examples.shapes import CLASSES, CONCEPTS, make_shapes, train_toy_clip
from alchemist_magics.images import concept_scores, concept_table, embed_images, load_image_table
from alchemist_magics.synth import synthesize_score_programs
from alchemist_magics.images.scores import scores_dataset

TASK = TaskSpec("shapes", "Is the object in the image a square or a circle?", CLASSES)


def planted_scores(n=300, seed=0):
    """Scores with a known structure: the object concepts track the class, the background
    concept tracks a spurious attribute; labels for the first 60 rows only."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    water = np.where(rng.random(n) < 0.9, y == 0, y == 1)  # squares mostly on water
    table = concept_table([
        {"feature": "outline", "class": "square", "concept": "sharp corners"},
        {"feature": "outline", "class": "circle", "concept": "a round outline"},
        {"feature": "colour", "class": "circle", "concept": "a red object"},
        {"concept": "noise"},
    ])
    frame = pd.DataFrame({
        "outline_square": 0.20 + 0.05 * (y == 0) + 0.01 * rng.standard_normal(n),
        "outline_circle": 0.20 + 0.05 * (y == 1) + 0.01 * rng.standard_normal(n),
        "colour_circle": 0.10 + 0.03 * (y == 1) + 0.03 * rng.standard_normal(n),
        "noise": 0.1 * rng.standard_normal(n) + 0.02 * water,
    })
    frame.attrs["concepts"] = table.to_dict("records")
    labels = np.where(np.arange(n) < 60, y, -1)
    return frame, labels, y


def run(program, frame):
    """Execute a program's source on every row (the Workbench test below runs the real sandbox)."""
    namespace = {}
    exec(program.source, namespace)
    function = namespace[program.name]
    return np.array([{"square": 0, "circle": 1}.get(v, v) for v in
                     (function(SimpleNamespace(**row)) for row in frame.to_dict("records"))])


def test_writes_threshold_and_contrast_programs_whose_stats_are_true():
    frame, labels, y = planted_scores()
    programs = synthesize_score_programs(TASK, frame, labels, n_programs=6)
    kinds = [p.provenance["stats"]["kind"] for p in programs]
    assert "contrast" in kinds and "above" in kinds and len(programs) <= 6
    assert len({p.name for p in programs}) == len(programs)
    assert not any("noise" in p.source for p in programs)  # it never beat the class prior
    contrast = programs[kinds.index("contrast")]
    assert contrast.name == "by_outline" and "x.outline_square" in contrast.source and "x.outline_circle" in contrast.source
    known = labels >= 0
    for program in programs:
        votes = run(program, frame)
        stats = program.provenance["stats"]
        assert program.provenance["source"] == "offline-score-synthesizer"
        assert stats["labeled_fired"] == int((votes[known] >= 0).sum())
        assert stats["labeled_right"] == int((votes[known] == y[known]).sum())
        assert f"{stats['labeled_right']}/{stats['labeled_fired']} right" in program.source
        fired = votes >= 0
        labeled_precision = stats["labeled_right"] / stats["labeled_fired"]
        assert (votes[fired] == y[fired]).mean() >= min(0.95, labeled_precision) - 0.1  # it holds on unlabeled rows
        if stats["kind"] == "above":
            typical = {"outline_square": 0, "outline_circle": 1, "colour_circle": 1}[stats["columns"][0]]
            assert stats["label"] == typical  # a concept typical of a class votes only for it


def test_programs_run_through_the_workbench_and_label_the_data(tmp_path):
    frame, labels, y = planted_scores()
    dataset = scores_dataset(frame, _images(y))
    programs = synthesize_score_programs(TASK, frame, labels)
    bench = Workbench(TASK, dataset, dataset, root=tmp_path, workers=1)
    assert bench.add_all(programs) == len(programs), bench.rejected
    bench.apply(progress=False)
    L = bench.matrix("train")
    for j, program in enumerate(programs):
        np.testing.assert_array_equal(L[:, j], run(program, frame))
    bench.fit()
    assert (bench.predict("train", uncovered="prior") == y).mean() >= 0.9


def _images(y):
    from alchemist_magics.images.data import ImageSet

    return ImageSet(paths=[f"{i}.jpg" for i in range(len(y))], labels=np.asarray(y), classes=list(CLASSES), name="planted")


def test_bad_input_gives_clear_errors():
    frame, labels, _ = planted_scores()
    with pytest.raises(ValueError, match="59 labels for 300 score rows"):
        synthesize_score_programs(TASK, frame, labels[:59])
    with pytest.raises(ValueError, match="at least two different classes"):
        synthesize_score_programs(TASK, frame, np.where(labels == 1, -1, labels))
    with pytest.raises(ValueError, match="label 'triangle' is not a class"):
        synthesize_score_programs(TASK, frame, ["triangle"] + [None] * 299)
    broken = frame.copy()
    broken.iloc[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        synthesize_score_programs(TASK, broken, labels)
    names = [CLASSES[v] if v >= 0 else None for v in labels]  # class names and None work as labels
    assert [p.source for p in synthesize_score_programs(TASK, frame, names)] == \
        [p.source for p in synthesize_score_programs(TASK, frame, labels)]


def test_toy_shapes_are_reproducible_with_the_asked_spurious_share(tmp_path):
    table = make_shapes(tmp_path / "a", 200, spurious=0.9, seed=3)
    again = make_shapes(tmp_path / "b", 200, spurious=0.9, seed=3)
    digest = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in table["path"]]
    assert digest == [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in again["path"]]
    usual = table["group"].isin(["square on water", "circle on land"]).mean()
    assert 0.84 <= usual <= 0.96 and set(table["label"]) == set(CLASSES)
    images = load_image_table(table, label_column="label", classes=CLASSES, group_column="group")
    assert len(images) == 200 and images.skipped == []
    with pytest.raises(ValueError, match="spurious must be a share"):
        make_shapes(tmp_path / "c", 5, spurious=1.5)


def test_toy_clip_trains_deterministically_and_scores_the_concepts(tmp_path):
    first = train_toy_clip(n_images=250, epochs=1, progress=False)
    second = train_toy_clip(n_images=250, epochs=1, progress=False)
    assert first.identity == second.identity  # same seed, same weights
    assert train_toy_clip(n_images=250, epochs=1, seed=1, progress=False).identity != first.identity
    table = make_shapes(tmp_path, 20, seed=0)
    images = load_image_table(table, label_column="label", classes=CLASSES, group_column="group")
    embedded = embed_images(images, first, cache_dir=None, progress=False)
    scores = concept_scores(embedded, CONCEPTS, first)
    assert scores.shape == (20, len(CONCEPTS)) and np.isfinite(scores.to_numpy()).all()
    assert list(scores.columns) == list(concept_table(CONCEPTS)["column"])
