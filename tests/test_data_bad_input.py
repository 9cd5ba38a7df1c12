"""Bad input at the data layer: each case is one clear DataError, or a counted and warned conversion."""
import json

import numpy as np
import pandas as pd
import pytest

from alchemist_magics.data.dataset import DataError, from_dataframe, load_csv, load_wrench


def test_fractional_labels_are_an_error_not_truncated():
    for values in ([0, 0.5, 1], [0, 1.7, 1], [0, -1.5, 1]):
        df = pd.DataFrame({"text": ["a", "b", "c"], "y": values})
        with pytest.raises(DataError, match="not whole numbers"):
            from_dataframe(df, label_column="y", classes=["ham", "spam"])
    ok = from_dataframe(pd.DataFrame({"text": ["a", "b", "c"], "y": [0.0, 1.0, np.nan]}), label_column="y", classes=["ham", "spam"])
    assert ok.labels.tolist() == [0, 1, -1]


def test_repeated_class_names_are_an_error():
    df = pd.DataFrame({"text": ["a", "b"], "y": ["spam", "ham"]})
    for classes in (["spam", "ham", "spam"], ["spam", "Ham ", "ham"]):
        with pytest.raises(DataError, match="repeats in classes"):
            from_dataframe(df, label_column="y", classes=classes)
    with pytest.raises(DataError, match="must not be empty"):
        from_dataframe(df, label_column="y", classes=["spam", " "])


def test_lone_surrogates_fingerprint_and_are_counted():
    df = pd.DataFrame({"text": ["fine", "bad \udcff byte", "also \ud800"]})
    with pytest.warns(UserWarning, match="2 value\\(s\\) hold lone surrogates"):
        ds = from_dataframe(df)
    fp = ds.fingerprint
    assert len(fp) == 16 and fp == from_dataframe(df.copy()).fingerprint
    other = from_dataframe(pd.DataFrame({"text": ["fine", "bad \udcfe byte", "also \ud800"]}))
    assert other.fingerprint != fp


def test_duplicate_column_names_are_an_error():
    df = pd.DataFrame([["a", "b"], ["c", "d"]], columns=["text", "text"])
    with pytest.raises(DataError, match="several columns named \\['text'\\]"):
        from_dataframe(df)


def test_an_input_column_listed_twice_is_an_error():
    df = pd.DataFrame({"title": ["a"], "body": ["b"]})
    with pytest.raises(DataError, match="listed more than once"):
        from_dataframe(df, text_column=["title", "body", "title"])


def test_non_utf8_csv_names_the_fix(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\xe9 au lait,0\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid utf-8 .*encoding='latin-1'"):
        load_csv(path)
    assert load_csv(path, encoding="latin-1").texts == ["café au lait"]


def test_duplicate_ids_are_counted_and_warned(tmp_path):
    df = pd.DataFrame({"text": ["a", "b", "c"]}, index=[7, 7, 8])
    with pytest.warns(UserWarning, match="1 row id\\(s\\) repeat an earlier id \\(first: \\[7\\]\\)"):
        ds = from_dataframe(df)
    assert len(ds) == 3 and ds.ids == [7, 7, 8]
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "label.json").write_text(json.dumps({"0": "ham", "1": "spam"}))
    row = '{"data": {"text": "%s"}, "label": 0, "weak_labels": [0]}'
    (folder / "train.json").write_text('{"1": %s, "1": %s, "2": %s}' % (row % "x", row % "y", row % "z"))
    with pytest.warns(UserWarning, match="appear more than once"):
        splits = load_wrench(folder)
    assert splits["train"].texts == ["y", "z"] and "appear more than once" in splits["train"].notes[0]
