"""distill/data/glue.py: GLUE TSV readers: quoting disabled, malformed rows reported and left out, labels parsed per
task."""
import pytest

from distill.data.glue import read_glue_split
from distill.io import UserError


def test_qqp_mirror_first_row_is_reported_not_kept(shared_glue):
    df, report = read_glue_split("qqp", "train", shared_glue / "QQP" / "train.tsv")
    assert len(df) == 18797  # the mirror's README: 18,797 good rows + 1 malformed
    assert len(report.malformed) == 1 and report.malformed[0].startswith("line 2:")
    assert set(df["label"]) == {0, 1} and int(df["label"].sum()) == 6953
    assert list(df.columns) == ["idx", "sentence1", "sentence2", "label", "split"]


def test_sst2_mirror_dev_counts(shared_glue):
    df, report = read_glue_split("sst2", "dev", shared_glue / "SST-2" / "dev.tsv")
    assert len(df) == 872 and report.malformed == []
    assert df["label"].value_counts().to_dict() == {1: 444, 0: 428}


def test_stray_quotes_are_text_not_quoting(tmp_path):
    path = tmp_path / "dev_matched.tsv"
    header = ["index", "promptID", "pairID", "genre", "s1b", "s2b", "s1p", "s2p", "sentence1", "sentence2",
              "label1", "gold_label"]
    rows = [
        ["0", "1", "1n", "fiction", "x", "x", "x", "x", 'He said "stop', 'and "left', "neutral", "neutral"],
        ["1", "2", "2e", "fiction", "x", "x", "x", "x", "A man.", "A person.", "entailment", "entailment"],
        ["2", "3", "3c", "fiction", "x", "x", "x", "x", "too", "few"],  # wrong field count
        ["3", "4", "4-", "fiction", "x", "x", "x", "x", "No", "gold", "-", "-"],  # no gold label
    ]
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")
    df, report = read_glue_split("mnli", "dev_matched", path)
    assert df["label"].tolist() == [2, 1]  # GLUE order: contradiction, entailment, neutral
    assert df["sentence1"].iloc[0] == 'he said " stop'
    assert len(report.malformed) == 2
    assert (df["split"] == "dev_matched").all()


def test_missing_column_is_a_clear_error(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("text\tlabel\nhello\t1\n")
    with pytest.raises(UserError, match="missing column 'sentence'"):
        read_glue_split("sst2", "train", path)


def test_unlabelled_test_split(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("index\tsentence\n0\ta fine film .\n1\tawful .\n")
    df, _ = read_glue_split("sst2", "test", path)
    assert df["label"].tolist() == [-1, -1] and df["idx"].tolist() == [0, 1]


def test_bad_bytes_cost_their_row_not_the_file(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_bytes(b"sentence\tlabel\ngood one .\t1\nbad \xff byte\t0\n\t1\nfine .\t2\nlast .\t0\n")
    df, report = read_glue_split("sst2", "dev", path)
    assert df["sentence"].tolist() == ["good one .", "last ."] and df["label"].tolist() == [1, 0]
    assert df["idx"].tolist() == [0, 4]  # idx = data line number - 2: stable whatever was left out
    assert [m.split(":")[0] for m in report.malformed] == ["line 3", "line 4", "line 5"]
    assert "not UTF-8" in report.malformed[0] and "empty text" in report.malformed[1]
    assert "label '2' not in ['0', '1']" in report.malformed[2]
    assert report.as_dict()["rows"] == 2 and report.as_dict()["malformed"] == 3


def test_empty_file_and_unknown_task(tmp_path):
    (tmp_path / "train.tsv").write_bytes(b"")
    with pytest.raises(UserError, match="empty file"):
        read_glue_split("sst2", "train", tmp_path / "train.tsv")
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na\t1\n")
    with pytest.raises(UserError, match="not a GLUE task"):
        read_glue_split("rotten_tomatoes", "train", tmp_path / "train.tsv")
