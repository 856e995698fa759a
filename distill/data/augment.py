"""Task-agnostic data augmentation of Tang et al. 2019, §3.3: masking, POS-guided word replacement, n-gram sampling.

For each training example, n_iter times:
  1. every word draws X ~ U[0, 1]: X < p_mask -> "[MASK]"; p_mask <= X < p_mask + p_pos -> a word drawn from the
     training set's unigram distribution restricted to that word's POS tag (one roll per word, so the two rules are
     mutually exclusive). As in the paper, the draw is from the whole tag distribution, so it may return the word
     itself; such a word is unchanged (and an example left unchanged is dropped as a duplicate, see 3).
  2. with probability p_ng the example is replaced by one of its n-grams: n uniform in {1, ..., 5} (clipped to the
     example's length), start uniform over the valid positions.
  3. duplicates are discarded: of other synthetic examples and of the original training examples.
Sentence pairs cycle through augmenting sentence 1 only, sentence 2 only, and both (iteration i uses mode i % 3);
an augmented sentence of a pair goes through 1 and 2 on its own, the other sentence is held fixed.

Everything is vectorized over flat token-id arrays (one RNG draw for all words of an iteration), so the full SST-2
training set x 20 iterations runs in seconds on one core. The random stream is numpy's PCG64, seeded once.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from distill.io import UserError, atomic_path
from distill.layout import LABEL, MASK, ORIGIN, SYNTHETIC, UNLABELLED
MAX_N = 5  # n-gram sizes {1, ..., 5}
ROW_GROUP = 65536  # fixed, so a rerun writes identical bytes
_SEP = "\n"  # sentence terminator when rendering many sentences with one join; never inside a space-split token

KEEP, MASKED, REPLACED = 0, 1, 2  # per-word decisions


@dataclass
class Tokens:
    """One text column, flattened: token ids, their tag ids and per-example offsets (len = examples + 1)."""
    ids: np.ndarray
    tags: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class TagSampler:
    """Per-tag unigram distributions: rows grouped by tag, one global cumulative count array.

    Drawing r ~ U{0, ..., total[t]-1} and searching base[t] + r in `cum` samples a word of tag t with probability
    count / total[t], i.e. the unigram distribution re-normalized by the tag.
    """
    word_ids: np.ndarray  # row -> word id
    cum: np.ndarray  # inclusive cumulative counts over rows
    base: np.ndarray  # tag id -> cum value before the tag's first row
    total: np.ndarray  # tag id -> total count of the tag

    def sample(self, tag_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        r = rng.integers(0, self.total[tag_ids])
        return self.word_ids[np.searchsorted(self.cum, self.base[tag_ids] + r, side="right")]


def encode(texts: dict[str, Sequence[str]], tags: dict[str, Sequence[Sequence[str]]], unigrams: pd.DataFrame):
    """Map words and tags to integer ids. Returns (vocab: object array, {column: Tokens}, TagSampler)."""
    flat_words, flat_tags, offsets = {}, {}, {}
    for col, sents in texts.items():
        sents = list(sents)
        # == concatenation of s.split(" ") (the text is pre-tokenized); no sentences -> no words
        words = " ".join(sents).split(" ") if sents else []
        lengths = np.fromiter((s.count(" ") + 1 for s in sents), np.int64, len(sents))
        tag_lists = tags[col]
        tag_lengths = np.fromiter((len(t) for t in tag_lists), np.int64, len(tag_lists))
        if len(tag_lengths) != len(lengths) or not np.array_equal(tag_lengths, lengths):
            raise UserError(f"POS tags of column {col!r} do not line up with its words (rerun the postag stage)")
        flat_words[col] = np.array(words, dtype=object)
        flat_tags[col] = np.array(list(itertools.chain.from_iterable(tag_lists)), dtype=object)
        offsets[col] = np.concatenate([[0], np.cumsum(lengths)])
    # Unigram rows grouped by tag (stable: keeps the file's order within a tag).
    uni = unigrams.sort_values("tag", kind="stable")
    all_words = np.concatenate([[MASK], uni["word"].to_numpy(object), *flat_words.values()])
    word_codes, vocab = pd.factorize(all_words)
    if any(_SEP in w for w in vocab):
        raise UserError("a word contains a newline; the text is expected to be space-tokenized single lines")
    all_tags = np.concatenate([uni["tag"].to_numpy(object), *flat_tags.values()])
    tag_codes, tag_names = pd.factorize(all_tags)
    n_uni = len(uni)
    counts = uni["count"].to_numpy(np.int64)
    uni_tags = tag_codes[:n_uni]
    cum = np.cumsum(counts)
    total = np.bincount(uni_tags, weights=counts, minlength=len(tag_names)).astype(np.int64)
    base = np.zeros(len(tag_names), np.int64)
    first = np.unique(uni_tags, return_index=True)
    base[first[0]] = cum[first[1]] - counts[first[1]]
    sampler = TagSampler(word_ids=word_codes[1:n_uni + 1].astype(np.int64), cum=cum, base=base, total=total)

    columns, w_at, t_at = {}, 1 + n_uni, n_uni
    for col in texts:
        n = len(flat_words[col])
        columns[col] = Tokens(ids=word_codes[w_at:w_at + n].astype(np.int64),
                              tags=tag_codes[t_at:t_at + n].astype(np.int64), offsets=offsets[col])
        w_at, t_at = w_at + n, t_at + n
        missing = total[columns[col].tags] == 0
        if missing.any():
            raise UserError(f"tag {tag_names[columns[col].tags[missing][0]]!r} has no unigram counts "
                            "(tag_unigrams.parquet is not from this training set; rerun the postag stage)")
    return np.asarray(vocab, dtype=object), columns, sampler


def perturb_words(tokens: Tokens, sampler: TagSampler, mask_id: int, p_mask: float, p_pos: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Step 1 for every word at once: (new token ids, decision per word: KEEP, MASKED or REPLACED)."""
    x = rng.random(len(tokens.ids))
    decision = np.full(len(x), KEEP, np.int8)
    decision[x < p_mask] = MASKED
    decision[(x >= p_mask) & (x < p_mask + p_pos)] = REPLACED
    new = tokens.ids.copy()
    new[decision == MASKED] = mask_id
    repl = np.flatnonzero(decision == REPLACED)
    new[repl] = sampler.sample(tokens.tags[repl], rng)
    return new, decision


def ngram_spans(lengths: np.ndarray, p_ng: float, rng: np.random.Generator):
    """Step 2 for every example at once: (applied, n drawn in 1..MAX_N, start, span length kept).

    Examples without n-gram sampling keep their whole span (start 0, span = length)."""
    m = len(lengths)
    applied = rng.random(m) < p_ng
    n = rng.integers(1, MAX_N + 1, m)
    clipped = np.minimum(n, lengths)
    start = rng.integers(0, lengths - clipped + 1)
    start = np.where(applied, start, 0)
    span = np.where(applied, clipped, lengths)
    return applied, n, start, span


def render(ids: np.ndarray, offsets: np.ndarray, start: np.ndarray, span: np.ndarray, vocab: np.ndarray,
           with_space: np.ndarray, with_sep: np.ndarray) -> np.ndarray:
    """Join the kept span of every example into a string with a single str.join (no per-example Python loop)."""
    lengths = np.diff(offsets)
    example = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(len(ids)) - offsets[:-1][example]
    first = start[example]
    keep = (pos >= first) & (pos < first + span[example])
    kept = ids[keep]
    last = (pos == first + span[example] - 1)[keep]
    pieces = np.where(last, with_sep[kept], with_space[kept])
    out = "".join(pieces.tolist()).split(_SEP)[:-1]
    assert len(out) == len(lengths)
    return np.array(out, dtype=object)


def augment(texts: dict[str, Sequence[str]], tags: dict[str, Sequence[Sequence[str]]], unigrams: pd.DataFrame,
            p_mask: float, p_pos: float, p_ng: float, n_iter: int, seed: int, progress: bool = True) -> dict:
    """Synthetic examples of §3.3. Returns {"columns": {text column: pyarrow string array}, "origin": int64 array,
    "candidates": number generated before de-duplication}; rows are ordered by origin, then iteration."""
    if not (0 <= p_mask and 0 <= p_pos and p_mask + p_pos <= 1 and 0 <= p_ng <= 1):
        raise UserError(f"need 0 <= p_mask, p_pos, p_mask + p_pos <= 1 and 0 <= p_ng <= 1 "
                        f"(got {p_mask}, {p_pos}, {p_ng})")
    if n_iter < 0:
        raise UserError(f"n_iter must be >= 0 (got {n_iter})")
    cols = list(texts)
    originals = {c: np.array(list(texts[c]), dtype=object) for c in cols}
    m = len(originals[cols[0]])
    vocab, tokens, sampler = encode(texts, tags, unigrams)
    mask_id = 0  # MASK is the first word factorized
    with_space = np.array([w + " " for w in vocab], dtype=object)
    with_sep = np.array([w + _SEP for w in vocab], dtype=object)
    rng = np.random.Generator(np.random.PCG64(seed))

    # Pairs: iteration i augments sentence 1 only, sentence 2 only, both (i % 3); singles: always the sentence.
    # Each iteration's strings go into Arrow at once (about 4 bytes of overhead a string instead of a Python
    # object's 50+), so memory per candidate stays near its text's length.
    modes = [cols] if len(cols) == 1 else [[cols[0]], [cols[1]], cols]
    held = {c: pa.array(originals[c], type=pa.string()) for c in cols}
    per_iter = {c: [] for c in cols}
    for i in tqdm(range(n_iter), desc="augment", unit="iter", disable=not progress):
        for c in cols:
            if c in modes[i % len(modes)]:
                new_ids, _ = perturb_words(tokens[c], sampler, mask_id, p_mask, p_pos, rng)
                _, _, start, span = ngram_spans(tokens[c].lengths, p_ng, rng)
                per_iter[c].append(pa.array(render(new_ids, tokens[c].offsets, start, span, vocab, with_space,
                                                   with_sep), type=pa.string()))
            else:
                per_iter[c].append(held[c])
    # Duplicates, exactly as pandas' duplicated(keep="first") over [originals; candidates in origin-major order]
    # (all samples of example 0, then of example 1, ...): equal strings share a dictionary code, a pair's key
    # combines its two codes, and a row is kept if it is its key's first occurrence.
    key = np.zeros(m + n_iter * m, np.int64)
    for c in cols if m else ():  # no examples, no keys (and Arrow drops an empty array's only chunk)
        encoded = pa.chunked_array([held[c], *per_iter[c]], type=pa.string()).dictionary_encode()
        codes = np.concatenate([np.asarray(ch.indices, dtype=np.int64) for ch in encoded.chunks])
        # every chunk shares one dictionary; codes < its size, so distinct (code1, code2) give distinct keys
        key = key * len(encoded.chunk(0).dictionary) + codes
    by_origin = np.arange(n_iter * m, dtype=np.int64).reshape(n_iter, m).T.ravel()  # iteration-major positions
    key = np.concatenate([key[:m], key[m:][by_origin]])
    first = np.zeros(len(key), bool)
    first[np.unique(key, return_index=True)[1]] = True
    keep = first[m:]
    taken = pa.array(by_origin[keep])
    columns = {c: pa.chunked_array(per_iter[c], type=pa.string()).take(taken).combine_chunks() for c in cols}
    origin = np.repeat(np.arange(m, dtype=np.int64), n_iter)
    return {"columns": columns, "origin": origin[keep], "candidates": len(origin)}


def transfer_table(train: pd.DataFrame, text_columns: Sequence[str], synthetic: dict) -> pa.Table:
    """Originals (gold label, own position as origin) followed by synthetic rows (label -1)."""
    m, k = len(train), len(synthetic["origin"])
    arrays = {c: pa.concat_arrays([pa.array(train[c].astype(str).to_numpy(object), type=pa.string()),
                                   pa.array(synthetic["columns"][c], type=pa.string())]) for c in text_columns}
    arrays[LABEL] = pa.array(np.concatenate([train[LABEL].to_numpy(np.int64), np.full(k, UNLABELLED, np.int64)]))
    arrays[SYNTHETIC] = pa.array(np.concatenate([np.zeros(m, bool), np.ones(k, bool)]))
    arrays[ORIGIN] = pa.array(np.concatenate([np.arange(m, dtype=np.int64), synthetic["origin"]]))
    return pa.table(arrays)


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Plain pyarrow write (no pandas metadata, fixed row groups): same table -> same bytes."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=ROW_GROUP, compression="snappy")
    return Path(path)
