"""Static word vectors from the fine-tuned teacher (student.embeddings = teacher): each word's vector is the mean
of its WordPiece input embeddings (no special tokens); [MASK] gets the teacher's own [MASK] vector.

Its own stage, so the BiLSTMs depend on the teacher only when they use its vectors: with any other embeddings the
stage writes an empty table without loading the teacher, its bytes never change, and train_baseline is not re-run
when the teacher is."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.io import UserError, check_published
from distill.layout import MASK, VECTOR, WORD


def empty_table() -> pd.DataFrame:
    return pd.DataFrame({WORD: pd.Series(dtype="object"), VECTOR: pd.Series(dtype="object")})


def teacher_word_vectors(teacher_dir: str | Path, words: Iterable[str]) -> pd.DataFrame:
    """(word, vector) rows for the words (sorted, distinct) that the tokenizer maps to at least one piece."""
    teacher_dir = Path(teacher_dir)
    check_published(teacher_dir)
    if not (teacher_dir / "config.json").exists():
        raise UserError(f"{teacher_dir}: no teacher model (config.json missing); run finetune_teacher first")
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir, local_files_only=True)
    table = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    words = sorted(set(words) - {MASK})
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
    counts = np.array([len(p) for p in pieces], dtype=np.int64)
    found = np.flatnonzero(counts > 0)
    vectors = np.zeros((len(words), table.shape[1]), dtype=np.float64)
    if len(found):
        flat = np.fromiter((i for p in pieces for i in p), dtype=np.int64, count=int(counts.sum()))
        owner = np.repeat(np.arange(len(words)), counts)
        np.add.at(vectors, owner, table[flat])
        vectors[found] /= counts[found, None]
    rows = {WORD: [words[i] for i in found], VECTOR: [vectors[i].astype(np.float32) for i in found]}
    if tokenizer.mask_token_id is not None:
        rows[WORD].append(MASK)
        rows[VECTOR].append(table[tokenizer.mask_token_id].astype(np.float32))
    return pd.DataFrame(rows)
