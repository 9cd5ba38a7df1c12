"""The distilled model: soft labels, coverage, early stopping, determinism, persistence."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from alchemist_magics.aggregate.select import score
from alchemist_magics.data import from_dataframe
from alchemist_magics.distill import MLP, DistilledModel, soft_cross_entropy


def planted(n, dim=16, k=3, seed=0, temperature=4.0):
    """Gaussian features and soft labels from a random linear teacher; also the teacher's argmax."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim)).astype(np.float32)
    logits = temperature * X @ rng.standard_normal((dim, k)) / np.sqrt(dim)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    return X, proba, proba.argmax(axis=1)


X, PROBA, TRUTH = planted(3000)
TRAIN, TEST = slice(0, 2000), slice(2000, None)


def mlp(**kwargs):
    return DistilledModel(features="precomputed", device="cpu", **{"epochs": 30, "batch_size": 250, **kwargs})


def test_soft_cross_entropy_matches_a_hand_computed_value():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    # Row 1: log-sum-exp(1,2,3) = 3.407606; -(0.2*-2.407606 + 0.3*-1.407606 + 0.5*-0.407606) = 1.107606
    # Row 2: uniform logits, all mass on class 0: log(3) = 1.098612. Mean of the rows: 1.103109.
    assert soft_cross_entropy(logits, targets).item() == pytest.approx(1.103109, abs=1e-6)


def test_mlp_learns_a_planted_rule_from_soft_labels():
    model = mlp().fit(X[TRAIN], PROBA[TRAIN])
    assert (model.predict(X[TEST]) == TRUTH[TEST]).mean() >= 0.9
    proba = model.predict_proba(X[TEST])
    assert proba.shape == (1000, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2, None])
def test_fit_and_predict_run_with_the_models_thread_count_and_restore_it(monkeypatch, threads):
    seen = []
    forward = MLP.forward
    monkeypatch.setattr(MLP, "forward", lambda self, x: seen.append(torch.get_num_threads()) or forward(self, x))
    before = torch.get_num_threads()
    model = mlp(epochs=2, threads=threads).fit(X[TRAIN], PROBA[TRAIN])
    model.predict(X[TEST])
    assert torch.get_num_threads() == before
    assert len(seen) == 2 * 8 + 1 and set(seen) == {threads or before}


def test_same_seed_gives_identical_predictions_and_another_seed_does_not():
    first = mlp(epochs=5).fit(X[TRAIN], PROBA[TRAIN]).predict_proba(X[TEST])
    second = mlp(epochs=5).fit(X[TRAIN], PROBA[TRAIN]).predict_proba(X[TEST])
    other = mlp(epochs=5, seed=1).fit(X[TRAIN], PROBA[TRAIN]).predict_proba(X[TEST])
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    noise = np.random.default_rng(1).integers(0, 3, 300)  # dev labels the features cannot predict
    model = mlp(epochs=200, patience=3).fit(X[TRAIN], PROBA[TRAIN], dev=X[TEST][:300], dev_labels=noise)
    assert len(model.history_) == model.best_epoch_ + 1 + 3 < 200
    assert model.dev_score_ == max(model.history_)
    restored = (model.predict(X[TEST][:300]) == noise).mean()
    assert restored == pytest.approx(model.dev_score_)
    # Same seed, no dev set, stopped exactly after the best epoch: the same weights.
    best_only = mlp(epochs=model.best_epoch_ + 1).fit(X[TRAIN], PROBA[TRAIN])
    np.testing.assert_array_equal(model.predict_proba(X[TEST]), best_only.predict_proba(X[TEST]))


def test_uncovered_rows_are_left_out_of_the_loss_but_still_predicted():
    covered = np.random.default_rng(2).random(2000) < 0.5
    adversarial = PROBA[TRAIN].copy()
    adversarial[~covered] = np.eye(3)[(TRUTH[TRAIN][~covered] + 1) % 3]  # confidently wrong
    used = mlp().fit(X[TRAIN], adversarial, covered=np.ones(2000, bool))
    assert (used.predict(X[TEST]) == TRUTH[TEST]).mean() < 0.75  # the labels do hurt when used
    model = mlp().fit(X[TRAIN], adversarial, covered=covered)
    assert (model.predict(X[TEST]) == TRUTH[TEST]).mean() >= 0.9
    assert model.coverage_ == pytest.approx(covered.mean())
    # Every training row gets a label, the uncovered ones (no program voted) included.
    assert (model.predict(X[TRAIN][~covered]) == TRUTH[TRAIN][~covered]).mean() >= 0.9
    # NaN rows and all -1 rows count as uncovered when no mask is given.
    for blank in (np.nan, -1.0):
        marked = adversarial.copy()
        marked[~covered] = blank
        inferred = mlp().fit(X[TRAIN], marked)
        np.testing.assert_array_equal(inferred.predict_proba(X[TEST]), model.predict_proba(X[TEST]))


def test_uncovered_prior_learns_the_label_models_answer_there_and_auto_keeps_the_better_dev_fit():
    rng = np.random.default_rng(4)
    few = rng.random(2000) < 0.1  # programs cover 10%; the label model's answer elsewhere is right
    every_row = mlp().fit(X[TRAIN], PROBA[TRAIN], covered=np.ones(2000, bool))
    prior = mlp(uncovered="prior").fit(X[TRAIN], PROBA[TRAIN], covered=few)
    np.testing.assert_array_equal(prior.predict_proba(X[TEST]), every_row.predict_proba(X[TEST]))
    assert prior.uncovered_ == "prior" and prior.coverage_ == pytest.approx(few.mean())
    dev = {"dev": X[TEST], "dev_labels": TRUTH[TEST]}
    ignore = mlp().fit(X[TRAIN], PROBA[TRAIN], covered=few, **dev)
    prior = mlp(uncovered="prior").fit(X[TRAIN], PROBA[TRAIN], covered=few, **dev)
    auto = mlp(uncovered="auto").fit(X[TRAIN], PROBA[TRAIN], covered=few, **dev)
    assert prior.dev_score_ > ignore.dev_score_ and auto.uncovered_ == "prior"
    assert auto.dev_score_ == prior.dev_score_ and auto.history_ == prior.history_
    np.testing.assert_array_equal(auto.predict_proba(X[TEST]), prior.predict_proba(X[TEST]))
    # Confidently wrong answers on the uncovered rows: the dev set now prefers leaving them out.
    wrong = PROBA[TRAIN].copy()
    wrong[~few] = np.eye(3)[(TRUTH[TRAIN][~few] + 1) % 3]
    auto = mlp(uncovered="auto").fit(X[TRAIN], wrong, covered=few, **dev)
    ignore = mlp().fit(X[TRAIN], wrong, covered=few, **dev)
    assert auto.uncovered_ == "ignore" and auto.dev_score_ == ignore.dev_score_
    np.testing.assert_array_equal(auto.predict_proba(X[TEST]), ignore.predict_proba(X[TEST]))


def test_sparse_rows_train_and_predict_like_their_dense_copy():
    dense = sp.random(600, 40, density=0.1, dtype=np.float32, random_state=3).toarray()
    dense[5] = 0  # an empty row: no non-zero to sum, the first layer gives just the bias
    sparse = sp.csr_matrix(dense)
    proba = PROBA[:600]
    fitted = {kind: mlp(epochs=3, batch_size=64).fit(data, proba).predict_proba(data)
              for kind, data in (("sparse", sparse), ("dense", dense))}
    np.testing.assert_allclose(fitted["sparse"], fitted["dense"], atol=1e-5)


SPAM = ["win free cash now", "free prize claim now", "cheap pills offer", "claim your cash prize",
        "win a free offer today", "cash offer win now"]
HAM = ["see you at lunch", "meeting moved to noon", "call me tomorrow", "lunch with the team",
       "notes from the meeting", "see you tomorrow at noon"]


def text_data():
    texts = (SPAM + HAM) * 5
    proba = np.array([[0.1, 0.9]] * len(SPAM) + [[0.8, 0.2]] * len(HAM) * 1, dtype=float)
    return texts, np.tile(proba, (5, 1))


@pytest.mark.parametrize("kind", ["mlp", "logreg"])
def test_save_load_round_trip_labels_new_texts_identically(tmp_path, kind):
    texts, proba = text_data()
    model = DistilledModel(model=kind, epochs=20, device="cpu").fit(texts, proba)
    new = ["free cash prize", "lunch meeting tomorrow", "words never seen"]
    assert model.predict(new)[:2].tolist() == [1, 0]
    model.save(tmp_path / "model")
    loaded = DistilledModel.load(tmp_path / "model", device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(new), model.predict_proba(new))
    assert loaded.classes_ == model.classes_ and loaded.params == model.params
    assert loaded.uncovered_ == model.uncovered_ == "ignore"


def test_logistic_regression_learns_from_soft_labels_with_a_dev_score():
    model = DistilledModel(features="precomputed", model="logreg").fit(
        X[TRAIN], PROBA[TRAIN], dev=X[TEST], dev_labels=TRUTH[TEST])
    accuracy = (model.predict(X[TEST]) == TRUTH[TEST]).mean()
    assert accuracy >= 0.9 and model.dev_score_ == pytest.approx(accuracy)


def test_dataset_inputs_give_class_names_and_dev_labels():
    texts, proba = text_data()
    frame = pd.DataFrame({"text": texts, "label": ["spam" if p[1] > 0.5 else "ham" for p in proba]})
    train = from_dataframe(frame, label_column="label", classes=["ham", "spam"])
    model = DistilledModel(epochs=50, patience=5, metric="f1", device="cpu").fit(train, proba, dev=train)
    assert model.classes_ == ["ham", "spam"] and model.dev_score_ == 1.0
    assert model.predict(train).tolist() == train.labels.tolist()


def test_dev_score_is_the_shared_metric_helper():
    labels = TRUTH[TEST].copy()
    labels[:300] = (labels[:300] + 1) % 3  # some wrong gold labels so the score is well below 1
    model = mlp(epochs=3, metric="macro_f1").fit(X[TRAIN], PROBA[TRAIN], dev=X[TEST], dev_labels=labels)
    expected = score(labels, model.predict(X[TEST]), "macro_f1")
    assert model.dev_score_ == pytest.approx(expected) and 0.4 < expected < 0.8


def test_bad_input_raises_a_clear_value_error():
    model = mlp(epochs=1)
    with pytest.raises(ValueError, match=r"proba has shape \(1999, 3\); expected \(2000, k\)"):
        model.fit(X[TRAIN], PROBA[:1999])
    with pytest.raises(ValueError, match="k >= 2"):
        model.fit(X[TRAIN], PROBA[TRAIN, :1])
    half_nan = PROBA[TRAIN].copy()
    half_nan[7, 0] = np.nan
    with pytest.raises(ValueError, match="1 covered row.* NaN/inf \\(first: row 7\\)"):
        model.fit(X[TRAIN], half_nan)
    all_nan = PROBA[TRAIN].copy()
    all_nan[3] = np.nan
    with pytest.raises(ValueError, match="first: row 3"):  # the mask says covered, the row is NaN
        model.fit(X[TRAIN], all_nan, covered=np.ones(2000, bool))
    with pytest.raises(ValueError, match="summing to 1"):
        model.fit(X[TRAIN], PROBA[TRAIN] * 2)
    with pytest.raises(ValueError, match="no row is covered"):
        model.fit(X[TRAIN], np.full((2000, 3), np.nan))
    with pytest.raises(ValueError, match="boolean mask of shape"):
        model.fit(X[TRAIN], PROBA[TRAIN], covered=np.ones(5, bool))
    with pytest.raises(ValueError, match="empty"):
        DistilledModel().fit([], np.zeros((0, 2)))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        model.fit(np.zeros((0, 4)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="pass dev_labels"):
        model.fit(X[TRAIN], PROBA[TRAIN], dev=X[TEST])
    with pytest.raises(ValueError, match="not fitted"):
        DistilledModel().predict(["text"])
    with pytest.raises(ValueError, match="model='svm'"):
        DistilledModel(model="svm")
    with pytest.raises(ValueError, match="metric='f1_macro': use one of .*'macro_f1'"):
        DistilledModel(metric="f1_macro")
    with pytest.raises(ValueError, match="uncovered='all': use one of"):
        DistilledModel(uncovered="all")
    with pytest.raises(ValueError, match="'auto' chooses on the dev set: pass dev="):
        mlp(uncovered="auto").fit(X[TRAIN], PROBA[TRAIN], covered=np.arange(2000) < 1000)
    blank = PROBA[TRAIN].copy()
    blank[1000:] = np.nan
    with pytest.raises(ValueError, match="NaN/inf there: pass the label model's predict_proba unchanged"):
        mlp(uncovered="prior").fit(X[TRAIN], blank)
    with pytest.raises(ValueError, match="use metric='macro_f1'"):
        mlp(metric="f1").fit(X[TRAIN], PROBA[TRAIN], dev=X[TEST], dev_labels=TRUTH[TEST])


@pytest.mark.parametrize("kind", ["mlp", "logreg"])
def test_labeled_rows_correct_a_wrong_teacher(kind):
    """Semi-supervised: gold-labeled rows weigh `labeled_share` of the loss and pull the student back
    where the teacher is systematically wrong (here it never says class 0: it calls those rows 1)."""
    teacher = TRUTH[TRAIN].copy()
    teacher[teacher == 0] = 1
    wrong = np.eye(3, dtype=np.float32)[teacher] * 0.9 + 0.1 / 3
    gold, test = slice(2000, 2300), slice(2300, None)
    zero = TRUTH[test] == 0
    extra = {"C": 10.0} if kind == "logreg" else {}
    teacher_only = mlp(model=kind, **extra).fit(X[TRAIN], wrong)
    assert (teacher_only.predict(X[test])[zero] == 0).mean() < 0.1
    both = mlp(model=kind, **extra).fit(X[TRAIN], wrong, labeled=X[gold], labeled_labels=TRUTH[gold])
    assert both.labeled_rows_ == 300 and both.labeled_repeat_ == round(0.5 / 0.5 * 2000 / 300)
    recall = (both.predict(X[test])[zero] == 0).mean()
    assert recall > 0.15  # the teacher alone: < 0.1
    if kind == "logreg":  # the more the gold rows weigh, the more they pull (the MLP memorises the copies instead)
        more = mlp(model=kind, **extra).fit(X[TRAIN], wrong, labeled=X[gold], labeled_labels=TRUTH[gold],
                                            labeled_share=0.9)
        assert (more.predict(X[test])[zero] == 0).mean() > recall + 0.1
    # labeled rows marked -1 are unknown and ignored; labels out of range are refused
    part = TRUTH[gold].copy()
    part[:100] = -1
    assert mlp(model=kind, **extra).fit(X[TRAIN], wrong, labeled=X[gold], labeled_labels=part).labeled_rows_ == 200
    with pytest.raises(ValueError, match="labeled_labels"):
        mlp(model=kind).fit(X[TRAIN], wrong, labeled=X[gold], labeled_labels=TRUTH[gold] + 5)
