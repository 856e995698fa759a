"""Word-level vocabulary of the student, with dedicated padding, unknown and [MASK] rows."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from distill.layout import MASK

PAD, UNK = "[PAD]", "[UNK]"
SPECIALS = (PAD, UNK, MASK)  # ids 0, 1, 2


class Vocab:
    def __init__(self, words: Iterable[str]):
        words = list(words)
        if tuple(words[:3]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}")
        self.itos = words
        self.stoi = {w: i for i, w in enumerate(words)}
        if len(self.stoi) != len(words):
            raise ValueError("vocabulary has duplicate words")

    pad_id, unk_id, mask_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> "Vocab":
        """Words of the (space-tokenized) texts, most frequent first, ties broken alphabetically (deterministic)."""
        counts = Counter(w for t in texts for w in t.split())
        for s in SPECIALS:
            counts.pop(s, None)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *words])

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(w, self.unk_id) for w in text.split()]

    def encode_batch(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Flat ids and per-text lengths (no per-sentence padding)."""
        ids, lengths = [], []
        get = self.stoi.get
        for t in texts:
            toks = t.split()
            ids.extend(get(w, 1) for w in toks)
            lengths.append(len(toks))
        return np.asarray(ids, dtype=np.int64), np.asarray(lengths, dtype=np.int64)

    def save(self, path: str | Path) -> None:
        Path(path).write_text("\n".join(self.itos) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        return cls(Path(path).read_text(encoding="utf-8").rstrip("\n").split("\n"))
