"""distill/teacher/vectors.py and the teacher_vectors stage: static word vectors from the teacher's input
embeddings (mean of a word's WordPiece vectors; [MASK] gets the teacher's own mask vector)."""
import shutil

import numpy as np
import pandas as pd
import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import run_stage
from distill.io import UserError, write_parquet
from distill.teacher.vectors import empty_table, teacher_word_vectors
from helpers import cli_dirs, write_params, write_task_data


def embedding_table(teacher):
    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    return model.get_input_embeddings().weight.detach().numpy(), AutoTokenizer.from_pretrained(teacher)


def test_mean_of_wordpieces(tiny_teacher):
    table, tok = embedding_table(tiny_teacher)
    words = ["unbelievably", "the", "[MASK]", "the", "\u200b"]  # a duplicate, and a word with no pieces
    df = teacher_word_vectors(tiny_teacher, words)
    assert df["word"].tolist() == ["the", "unbelievably", "[MASK]"]  # sorted, distinct, [MASK] last
    pieces = tok("unbelievably", add_special_tokens=False)["input_ids"]
    assert len(pieces) == 5  # un ##bel ##ie ##va ##bly
    np.testing.assert_allclose(df["vector"][1], table[pieces].mean(0), atol=1e-6)
    np.testing.assert_array_equal(df["vector"][0], table[tok.convert_tokens_to_ids("the")])
    np.testing.assert_array_equal(df["vector"][2], table[tok.mask_token_id])
    assert all(v.dtype == np.float32 and v.shape == (32,) for v in df["vector"])


def test_missing_teacher_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no teacher model"):
        teacher_word_vectors(tmp_path, ["a"])
    assert list(empty_table().columns) == ["word", "vector"] and empty_table().empty


def test_stage_reads_the_teacher_only_for_teacher_embeddings(tiny_teacher, tmp_path):
    paths = write_task_data(tmp_path)
    paths.teacher_vectors.unlink()
    write_params(tmp_path, student={"embeddings": "teacher"})
    args = ["--task", "rotten_tomatoes", *cli_dirs(tmp_path, "data", "models", "params")]
    # other embeddings: an empty table, the same bytes every time, and no teacher needed (there is none yet)
    run_stage("teacher_vectors.py", *args, "--set", "student.embeddings=random")
    empty = write_parquet(empty_table(), tmp_path / "empty.parquet")
    assert paths.teacher_vectors.read_bytes() == empty.read_bytes()
    shutil.copytree(tiny_teacher, paths.model("teacher"))
    run_stage("teacher_vectors.py", *args)
    got = pd.read_parquet(paths.teacher_vectors)
    words = {w for s in pd.read_parquet(paths.train)["sentence"] for w in s.split()}
    want = teacher_word_vectors(tiny_teacher, words)
    assert got["word"].tolist() == want["word"].tolist() and len(got) == len(words - {"[MASK]"}) + 1
    np.testing.assert_array_equal(np.stack(got["vector"]), np.stack(want["vector"]))
