import numpy as np
import pytest

from alchemist_magics.programs import ABSTAIN, INVALID, LabelSpace, to_label_matrix


def test_ints_names_aliases_and_abstain():
    ls = LabelSpace(["ham", "Spam Comment"], aliases={"junk": "spam comment", "unsure": -1, "fine": 0})
    assert [ls.normalize(v) for v in (0, 1, -1, None, np.int64(1), np.int8(0))] == [0, 1, -1, -1, 1, 0]
    assert [ls.normalize(v) for v in ("HAM", "  spam   COMMENT ", "Junk", "unsure", "fine")] == [0, 1, 1, -1, 0]


def test_bool_only_for_binary():
    assert LabelSpace(["no", "yes"]).normalize(True) == 1
    assert LabelSpace(["no", "yes"]).normalize(np.bool_(False)) == 0
    assert LabelSpace(["a", "b", "c"]).normalize(True) == INVALID


@pytest.mark.parametrize("value", [1.0, 0.5, float("nan"), 2, -2, 200, "maybe", "", [1], {"label": 1}, (0,), b"ham", object()])
def test_everything_else_is_invalid(value):
    assert LabelSpace(["ham", "spam"]).normalize(value) == INVALID


def test_bad_label_spaces_say_why():
    with pytest.raises(ValueError, match="2 to 100"):
        LabelSpace(["only"])
    with pytest.raises(ValueError, match="repeats"):
        LabelSpace(["Spam", "spam "])
    with pytest.raises(ValueError, match="neither a class name"):
        LabelSpace(["a", "b"], aliases={"x": "c"})


def test_signature_tracks_normalisation():
    a, b = LabelSpace(["ham", "spam"]), LabelSpace(["ham", "spam"], aliases={"junk": 1})
    assert a.signature == LabelSpace(["ham", "spam"]).signature != b.signature


def test_label_matrix_hides_fault_codes():
    codes = np.array([1, 0, ABSTAIN, INVALID, -3, -4], dtype=np.int8)
    assert to_label_matrix(codes).tolist() == [1, 0, -1, -1, -1, -1]
