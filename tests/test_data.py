"""Data layer: loaders, fingerprints and the visible handling of bad input."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alchemist_magics.data import DataError, from_dataframe, load_csv, load_wrench

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_dataframe_labels_by_name_case_insensitive():
    df = pd.DataFrame({"text": ["a", "b", "c"], "y": ["Spam", " ham", None]})
    ds = from_dataframe(df, "text", "y", classes=["ham", "spam"])
    assert ds.labels.tolist() == [1, 0, -1]
    assert ds.texts == ["a", "b", "c"]
    assert any("no gold label" in n for n in ds.notes)


def test_unknown_class_name_is_one_clear_error():
    df = pd.DataFrame({"text": ["a", "b"], "y": ["ham", "eggs"]})
    with pytest.raises(DataError, match=r"unknown class name\(s\) \['eggs'\]"):
        from_dataframe(df, "text", "y", classes=["ham", "spam"])


def test_missing_column_names_the_available_ones():
    with pytest.raises(DataError, match=r"\['body'\] not in the data; available columns: \['text'\]"):
        from_dataframe(pd.DataFrame({"text": ["a"]}), "body")


def test_empty_data_is_an_error():
    with pytest.raises(DataError, match="empty"):
        from_dataframe(pd.DataFrame({"text": []}), "text")


def test_nan_rows_error_by_default_and_are_counted_when_dropped():
    df = pd.DataFrame({"text": ["a", None, "c", np.nan]})
    with pytest.raises(DataError, match=r"2 row\(s\).*missing='drop'"):
        from_dataframe(df, "text")
    with pytest.warns(UserWarning, match="dropped 2"):
        ds = from_dataframe(df, "text", missing="drop")
    assert ds.texts == ["a", "c"] and ds.ids == [0, 2]
    with pytest.warns(UserWarning):
        assert from_dataframe(df, "text", missing="empty").texts == ["a", "", "c", ""]


def test_non_text_values_are_converted_visibly():
    with pytest.warns(UserWarning, match="converted 2 non-text"):
        ds = from_dataframe(pd.DataFrame({"text": ["a", 5, 2.5]}), "text")
    assert ds.texts == ["a", "5", "2.5"]


def test_fingerprint_is_stable_and_content_sensitive():
    a = from_dataframe(pd.DataFrame({"text": ["x", "y"], "y": [0, 1]}), "text", "y")
    b = from_dataframe(pd.DataFrame({"text": ["x", "y"], "y": [1, 0]}), "text", "y")
    c = from_dataframe(pd.DataFrame({"text": ["x", "z"]}), "text")
    assert a.fingerprint == b.fingerprint  # labels are not part of the input
    assert a.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 16


def test_multi_column_rows_are_read_only_with_both_access_styles():
    ds = from_dataframe(pd.DataFrame({"title": ["t"], "body": ["b"]}), ["title", "body"])
    (row,) = ds.inputs()
    assert row.title == "t" and row["body"] == "b" and row.get("nope") is None
    with pytest.raises(AttributeError):
        row.title = "changed"


def test_row_keeps_column_names_that_are_not_identifiers():
    ds = from_dataframe(pd.DataFrame({"foot type": ["toed"], "class": ["x"]}), ["foot type", "class"])
    (row,) = ds.inputs()
    assert row["foot type"] == "toed" and row["class"] == "x"
    with pytest.raises(KeyError):
        row["nope"]


def test_tsv_without_header(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("ham\thello there\nspam\tWIN cash now\n")
    ds = load_csv(path, "text", "label", classes=["ham", "spam"], header=None, names=["label", "text"])
    assert ds.texts == ["hello there", "WIN cash now"] and ds.labels.tolist() == [0, 1]
    assert ds.source == str(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_csv(tmp_path / "nope.csv")


def test_wrench_youtube_drops_appended_labeled_duplicates():
    splits = load_wrench(DATA / "youtube")
    assert len(splits["train"]) == 1586 and len(splits["labeled"]) == 100
    assert (len(splits["valid"]), len(splits["test"])) == (120, 250)
    assert np.bincount(splits["train"].labels).tolist() == [755, 831]
    assert splits["train"].weak_labels.shape == (1586, 10)
    assert splits["train"].weak_labels.dtype == np.int8
    assert splits["train"].classes == ["HAM", "SPAM"]


def test_wrench_sms_keeps_labeled_rows_inside_train():
    splits = load_wrench(DATA / "sms")
    assert len(splits["train"]) == 4571 and "labeled" not in splits


def test_wrench_trec_test_leak_is_removed():
    test = load_wrench(DATA / "trec")["test"]
    assert test.texts[0] == "how far is it from denver to aspen ?"
    assert any("label word" in n for n in test.notes)
    raw = load_wrench(DATA / "trec", fix_known_defects=False)["test"]
    assert raw.texts[0].startswith("dist How far")
