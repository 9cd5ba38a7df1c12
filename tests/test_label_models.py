"""Label models: correctness on small synthetic matrices (speed lives in bench/labelmodel.py)."""
import numpy as np
import pytest
import torch

from alchemist_magics.aggregate import (
    DawidSkene, MajorityVote, SnorkelLabelModel, Triplet, WeightedMajorityVote, check_matrix,
    coverage, covered, select_label_model,
)
from alchemist_magics.aggregate.base import break_ties
from alchemist_magics.aggregate.synthetic import make_label_matrix

ALL = [MajorityVote, WeightedMajorityVote, DawidSkene, Triplet, SnorkelLabelModel]


@pytest.fixture(scope="module")
def synth():
    return make_label_matrix(20_000, 12, 3, seed=3)


# ---------- input checks --------------------------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    (np.zeros(5, dtype=np.int8), "must be 2-D"),
    (np.zeros((3, 2), dtype=float), "must hold integers"),
    (np.full((3, 2), -2), "found -2"),
    (np.full((3, 2), 3), "found 3"),
])
def test_bad_matrix_gives_one_line_value_error(bad, message):
    with pytest.raises(ValueError, match=message) as info:
        MajorityVote(cardinality=3).fit(bad)
    assert "\n" not in str(info.value)


def test_other_int_dtypes_and_lists_are_accepted():
    L = [[0, 1], [1, 1]]
    for dtype in (np.int64, np.int16, np.uint8):
        assert check_matrix(np.array(L, dtype)).dtype == np.int8
    assert MajorityVote(2).fit(L).predict(L)[1] == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="cardinality"):
        MajorityVote(cardinality=1)
    with pytest.raises(ValueError, match="uncovered"):
        MajorityVote(2).predict(np.zeros((2, 2), np.int8), uncovered="zero")
    with pytest.raises(ValueError, match="not fitted"):
        DawidSkene(2).predict_proba(np.zeros((2, 2), np.int8))
    with pytest.raises(ValueError, match="weights"):
        WeightedMajorityVote(2, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="2 weights for 3 programs"):
        WeightedMajorityVote(2, weights=[1.0, 1.0]).fit(np.zeros((4, 3), np.int8))


# ---------- uncovered rows and ties ----------------------------------------------------------

@pytest.mark.parametrize("Model", ALL)
def test_uncovered_rows_are_reported(Model, synth):
    L = synth[0][:6000].copy()
    L[:50] = -1
    model = Model(cardinality=3, seed=0).fit(L)
    cov = covered(L)
    assert not cov[:50].any() and coverage(L) == pytest.approx(cov.mean()) and cov.mean() > 0.8
    pred = model.predict(L)
    assert (pred[~cov] == -1).all() and (pred[cov] >= 0).all()
    prior_pred = model.predict(L, uncovered="prior")
    assert (prior_pred >= 0).all() and (prior_pred[cov] == pred[cov]).all()
    proba = model.predict_proba(L)
    assert proba.shape == (len(L), 3) and np.allclose(proba.sum(axis=1), 1)


def test_uncovered_prior_is_the_majority_class_for_majority_vote():
    L = np.array([[0, -1], [0, 0], [1, -1], [0, -1], [-1, -1]], np.int8)
    mv = MajorityVote(2).fit(L)
    assert mv.prior_[0] > mv.prior_[1]
    assert mv.predict(L, uncovered="prior")[-1] == 0


def test_ties_are_broken_by_seed_not_towards_class_zero():
    L = np.tile(np.array([[0, 1], [1, 0], [2, 1]], np.int8), (300, 1))  # every row a 2-way tie
    preds = {seed: MajorityVote(3, seed=seed).predict(L) for seed in (0, 1)}
    assert (preds[0] == MajorityVote(3, seed=0).predict(L)).all()  # deterministic
    assert (preds[0] != preds[1]).any()
    for p in preds.values():
        rows = p.reshape(-1, 3)
        assert set(np.unique(rows[:, 0])) == {0, 1}  # both tied classes get picked
        assert set(np.unique(rows[:, 2])) == {1, 2}
        assert 0.4 < (rows[:, 0] == 0).mean() < 0.6


def test_break_ties_only_among_maxima():
    P = np.array([[0.2, 0.4, 0.4], [0.7, 0.2, 0.1]])
    for seed in range(10):
        a = break_ties(P, seed)
        assert a[0] in (1, 2) and a[1] == 0


# ---------- majority votes ---------------------------------------------------------------------

def test_majority_vote_numbers():
    L = np.array([[0, 0, 1], [2, -1, 2], [1, -1, -1]], np.int8)
    P = MajorityVote(3).predict_proba(L)
    np.testing.assert_allclose(P, [[2 / 3, 1 / 3, 0], [0, 0, 1], [0, 1, 0]])
    assert MajorityVote(3).predict(L).tolist() == [0, 2, 1]


def test_weighted_majority_vote_with_given_weights():
    L = np.array([[0, 1, 1], [1, 0, 0], [0, -1, 1]], np.int8)
    wmv = WeightedMajorityVote(2, weights=[3.0, 1.0, 1.0]).fit(L)
    np.testing.assert_allclose(wmv.predict_proba(L)[0], [0.6, 0.4])
    assert wmv.predict(L).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="fitted on 3 programs"):
        wmv.predict(L[:, :2])


def test_weighted_majority_learns_better_weights_for_better_programs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    acc = np.array([0.95, 0.9, 0.8, 0.7, 0.55])
    L = np.where(rng.random((5000, 5)) < acc, y[:, None], 1 - y[:, None]).astype(np.int8)
    w = WeightedMajorityVote(2).fit(L).weights_
    assert (np.diff(w) < 0).all() and w[-1] >= 0


# ---------- Dawid-Skene ------------------------------------------------------------------------

def test_dawid_skene_recovers_confusions_and_prior(synth):
    L, y, truth = synth
    ds = DawidSkene(3).fit(L)
    assert np.abs(ds.confusion_ - truth["confusion"]).mean() < 0.02
    np.testing.assert_allclose(ds.prior_, truth["prior"], atol=0.02)
    cov = covered(L)
    mv_acc = (MajorityVote(3).predict(L) == y)[cov].mean()
    assert (ds.predict(L) == y)[cov].mean() > mv_acc + 0.02


def test_dawid_skene_reads_one_sided_abstains():
    # four "spam keyword" programs that only ever vote spam (1): abstaining is evidence of ham
    rng = np.random.default_rng(1)
    y = (rng.random(8000) < 0.3).astype(int)
    fires = np.stack([rng.random(8000) < np.where(y == 1, 0.7, 0.05) for _ in range(4)], 1)
    L = np.where(fires, 1, -1).astype(np.int8)
    ds = DawidSkene(2).fit(L)
    assert ds.abstain_[:, 0].min() > 0.9 and ds.abstain_[:, 1].max() < 0.4
    np.testing.assert_allclose(ds.prior_[1], 0.3, atol=0.05)
    # a row nobody labels is most likely ham under this model
    assert ds.predict(np.full((1, 4), -1, np.int8), uncovered="prior")[0] == 0


def _dawid_skene_numpy(L, k, n_iter, alpha=1.0):
    """Plain float64 numpy EM of the same model, for comparing the torch implementation."""
    n, m = L.shape
    onehot = np.stack([(L == c) for c in range(k)] + [L == -1], axis=2).astype(float)  # n, m, k+1
    votes = onehot[:, :, :k].sum(1)
    q = np.where(votes.sum(1, keepdims=True) > 0, votes / np.maximum(votes.sum(1, keepdims=True), 1), 1 / k)
    for _ in range(n_iter + 1):
        table = np.einsum("njc,ny->jcy", onehot, q) + alpha
        log_theta = np.log(table / table.sum(1, keepdims=True))
        log_prior = np.log((q.sum(0) + alpha) / (n + k * alpha))
        scores = np.einsum("njc,jcy->ny", onehot, log_theta) + log_prior
        q = np.exp(scores - scores.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
    return q


def test_dawid_skene_matches_float64_numpy_reference():
    L, _, _ = make_label_matrix(3000, 6, 3, seed=5)
    ds = DawidSkene(3, max_iter=7, tol=-np.inf).fit(L)
    assert ds.n_iter_ == 7
    np.testing.assert_allclose(ds.predict_proba(L), _dawid_skene_numpy(L, 3, 7), atol=1e-5)


# ---------- Triplet ------------------------------------------------------------------------------

def test_triplet_recovers_accuracies():
    rng = np.random.default_rng(2)
    n, k = 20_000, 4
    acc = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.85])
    y = rng.choice(k, n, p=[0.4, 0.3, 0.2, 0.1])
    wrong = (y[:, None] + rng.integers(1, k, (n, len(acc)))) % k  # uniform over other classes
    L = np.where(rng.random((n, len(acc))) < acc, y[:, None], wrong)
    L = np.where(rng.random(L.shape) < 0.6, L, -1).astype(np.int8)
    tr = Triplet(k).fit(L)
    np.testing.assert_allclose(tr.accuracy_, acc, atol=0.03)
    np.testing.assert_allclose(tr.prior_, [0.4, 0.3, 0.2, 0.1], atol=0.03)


# ---------- snorkel wrapper -----------------------------------------------------------------------

def test_snorkel_wrapper_equals_snorkel(synth):
    from snorkel.labeling.model import LabelModel

    L = synth[0][:5000]
    ours = SnorkelLabelModel(3, seed=7, n_epochs=50, lr=0.02).fit(L)
    theirs = LabelModel(cardinality=3, verbose=False)
    theirs.fit(L, n_epochs=50, lr=0.02, seed=7, progress_bar=False)
    np.testing.assert_allclose(ours.predict_proba(L), theirs.predict_proba(L))
    np.testing.assert_allclose(ours.prior_, theirs.p)


# ---------- device -------------------------------------------------------------------------------

@pytest.mark.parametrize("Model", [MajorityVote, WeightedMajorityVote, DawidSkene, Triplet])
def test_cpu_and_auto_device_agree(Model, synth):
    L = synth[0][:5000]
    cpu = Model(3, device="cpu").fit(L).predict_proba(L)
    auto = Model(3).fit(L).predict_proba(L)
    np.testing.assert_allclose(cpu, auto, atol=1e-5)
    assert Model(3).device.type == ("cuda" if torch.cuda.is_available() else "cpu")


# ---------- selection ------------------------------------------------------------------------------

def test_select_prefers_majority_unless_dev_evidence_is_clear(synth):
    L, y, _ = synth
    train, dev = L[:8000], slice(15000, None)
    res = select_label_model(train, L[dev], y[dev], seed=0)
    assert set(res.scores.index) >= {"majority", "weighted_majority", "dawid_skene", "triplet", "snorkel"}
    assert res.scores["chosen"].sum() == 1 and res.scores.loc[res.name, "chosen"]
    assert res.name == "dawid_skene"  # 5000 dev rows: DS beats MV by > 2 points, clearly
    assert res.majority.predict(L[dev]).shape == (5000,)
    # on a tiny dev set the same gap is not clear evidence: majority vote stays
    small = select_label_model(train, L[15000:15030], y[15000:15030], candidates=["majority", "dawid_skene"])
    assert small.name == "majority"


def test_select_uses_only_dev_labels(synth):
    """Whatever the test rows are, the choice depends on (L_train, L_dev, y_dev) alone, and
    flipping dev labels towards a model's predictions makes that model the choice."""
    L, y, _ = synth
    train, L_dev = L[:15000], L[15000:]
    first = select_label_model(train, L_dev, y[15000:], candidates=["majority", "triplet"])
    again = select_label_model(train, L_dev, y[15000:], candidates=["majority", "triplet"])
    assert first.name == again.name
    fake_dev = Triplet(3).fit(train).predict(L_dev, uncovered="prior")
    assert select_label_model(train, L_dev, fake_dev, candidates=["majority", "triplet"]).name == "triplet"


def test_select_bad_input(synth):
    L, y, _ = synth
    with pytest.raises(ValueError, match="one per L_dev row"):
        select_label_model(L, L[:10], y[:9])
    with pytest.raises(ValueError, match="unknown candidate"):
        select_label_model(L, L[:10], y[:10], candidates=["magic"])
    with pytest.raises(ValueError, match="macro_f1"):
        select_label_model(L, L[:10], y[:10], metric="f1")
