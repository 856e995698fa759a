"""Text normalisation: lower-cased, Penn-Treebank-tokenized, space-separated — the form GLUE SST-2 ships in."""
from __future__ import annotations

import re
from functools import lru_cache

_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _treebank():
    """nltk's Penn Treebank tokenizer, imported on first use: importing nltk takes about a second (it loads scipy
    and scikit-learn), which every stage and `predict` would pay even when no raw text is tokenized."""
    from nltk.tokenize import TreebankWordTokenizer

    return TreebankWordTokenizer()


def normalize(text: str, lowercase: bool = True, tokenize: bool = True) -> str:
    """Lower-case and tokenize like SST-2 ("It's great!" -> "it 's great !"); a task may turn either off."""
    text = _SPACES.sub(" ", str(text)).strip()
    if lowercase:
        text = text.lower()
    if not text or not tokenize:
        return text
    # Treebank rewrites double quotes as `` and ''; SST-2 keeps plain tokens, so map them back.
    tokens = ["\"" if t in ("``", "''") else t for t in _treebank().tokenize(text)]
    return " ".join(tokens)


def clean_pretokenized(text: str) -> str:
    """Already-tokenized text (SST-2): only collapse whitespace."""
    return _SPACES.sub(" ", str(text)).strip()
