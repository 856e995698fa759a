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

Memory does not grow with the candidates' text (SST-2, 67,349 examples x 120 = 8.1M candidates: 450 MB peak, of
which 300 MB are there at n_iter 0; about 18 bytes a candidate, at the key sort). `generate` renders one iteration
at a time, spills its strings to an Arrow IPC file and keeps an 8-byte key (a hash) a candidate; `Candidates.blocks`
reads back all iterations of a block of origins, finds duplicates by key and confirms them on the strings
(distill/data/dedup.py: exact, hash collisions included); `write_transfer` writes the blocks as they come, in row
groups of exactly ROW_GROUP rows, so the file has the bytes that writing the whole in-memory table (`transfer_table`,
`write_table`) gives.
"""
from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from distill.data.dedup import ExactCheck, first_occurrence
from distill.io import UserError, atomic_path
from distill.layout import ITERATION, LABEL, MASK, ORIGIN, SYNTHETIC, UNLABELLED
MAX_N = 5  # n-gram sizes {1, ..., 5}
ROW_GROUP = 65536  # fixed, so a rerun writes identical bytes
BLOCK_ROWS = 1 << 18  # candidates de-duplicated and written at a time (all iterations of a block of origins)
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


def hash_strings(strings: np.ndarray) -> np.ndarray:
    """64-bit keys for de-duplication (any function works: equal keys are checked against the strings)."""
    return pd.util.hash_array(strings, categorize=False)


def _combine(hashes: list[np.ndarray]) -> np.ndarray:
    """One key per pair: equal pairs, equal keys (unequal pairs that collide are caught by the exact check)."""
    key = hashes[0].copy()
    for h in hashes[1:]:
        key = key * np.uint64(0x9E3779B97F4A7C15) ^ h
    return key


class _Spill:
    """One column's rendered strings on disk, an Arrow IPC file: batch (iteration, block) holds that iteration's
    strings of the block's origins, so a block of all iterations is read back without the rest."""

    def __init__(self, path: Path):
        self.path, self.writer, self.file, self.reader, self.first, self.n = path, None, None, None, {}, 0

    def write(self, iteration: int, strings: pa.Array, bounds: list[int]) -> None:
        if self.writer is None:
            self.writer = pa.ipc.new_file(str(self.path), pa.schema([("s", pa.string())]))
        self.first[iteration] = self.n
        for a, b in zip(bounds[:-1], bounds[1:]):
            self.writer.write_batch(pa.record_batch([strings.slice(a, b - a)], names=["s"]))
        self.n += len(bounds) - 1

    def read(self, iteration: int, block: int) -> pa.Array:
        if self.reader is None:
            self.writer.close()
            self.writer = None
            # plain reads, not a memory map: mapped pages would count towards the process's resident memory
            self.file = pa.OSFile(str(self.path))
            self.reader = pa.ipc.open_file(self.file)
        return self.reader.get_batch(self.first[iteration] + block).column(0)

    def close(self) -> None:
        for f in (self.writer, self.file):
            if f is not None:
                f.close()
        self.writer = self.file = self.reader = None


@dataclass
class Candidates:
    """The synthetic candidates of all iterations, spilled to disk, with each one's key representative
    (`dedup.first_occurrence` over [originals; candidates in origin-major order]). Iterate `blocks()` to get
    the kept rows; close when done (a context manager)."""
    columns: list[str]
    originals: dict[str, pa.Array]
    n_iter: int
    bounds: list[int]  # origins of block k: [bounds[k], bounds[k + 1])
    augmented: dict[int, list[str]]  # iteration -> columns it augmented (the others hold the original)
    spills: dict[str, _Spill]
    rep: np.ndarray
    kept: int = 0
    collisions: int = 0  # keys found shared by different strings (a 64-bit hash: expect 0)

    @property
    def candidates(self) -> int:
        return len(self.rep) - len(self.originals[self.columns[0]])

    def blocks(self, progress: bool = False, iterations: bool = False):
        """Kept rows block by block, ordered by origin, then iteration: ({column: strings}, origin int64 array), and
        with `iterations` the iteration (int16) that generated each row as a third item."""
        m, n = len(self.originals[self.columns[0]]), self.n_iter
        self.kept = self.collisions = 0
        spans = list(zip(self.bounds[:-1], self.bounds[1:])) if n else []
        check = ExactCheck(self.rep, self.originals, [m + a * n for a, _ in spans])
        for k, (a, b) in enumerate(tqdm(spans, desc="dedup", unit="block", disable=not progress)):
            w = b - a
            origin_major = pa.array((np.arange(w)[:, None] + np.arange(n)[None, :] * w).ravel())
            strings = {c: pa.concat_arrays([self.spills[c].read(i, k) if c in self.augmented[i]
                                            else self.originals[c].slice(a, w) for i in range(n)]).take(origin_major)
                       for c in self.columns}
            keep = check.keep(m + a * n, strings)
            self.kept, self.collisions = self.kept + int(keep.sum()), len(check.seen)
            mask = pa.array(keep)
            kept = ({c: s.filter(mask) for c, s in strings.items()}, np.repeat(np.arange(a, b, dtype=np.int64), n)[keep])
            yield (*kept, np.tile(np.arange(n, dtype=np.int16), w)[keep]) if iterations else kept
            del strings
            pa.default_memory_pool().release_unused()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for spill in self.spills.values():
            spill.close()


def generate(texts: dict[str, Sequence[str]], tags: dict[str, Sequence[Sequence[str]]], unigrams: pd.DataFrame,
             p_mask: float, p_pos: float, p_ng: float, n_iter: int, seed: int, spill_dir: str | Path,
             progress: bool = True, block_rows: int = BLOCK_ROWS, hash_fn=hash_strings) -> Candidates:
    """Synthetic candidates of §3.3, spilled under spill_dir (which the caller removes); memory holds one
    iteration's strings and an 8-byte key a candidate. block_rows: candidates a block of origins holds."""
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
    per_block = max(1, block_rows // max(n_iter, 1))
    bounds = [*range(0, m, per_block), m]
    held_keys = {c: hash_fn(originals[c]) for c in cols}
    keys = np.empty(m + m * n_iter, np.uint64)  # position m + origin * n_iter + iteration: origin-major
    keys[:m] = _combine(list(held_keys.values()))
    spills = {c: _Spill(Path(spill_dir) / f"candidates-{j}.arrow") for j, c in enumerate(cols)}

    # Pairs: iteration i augments sentence 1 only, sentence 2 only, both (i % 3); singles: always the sentence.
    modes = [cols] if len(cols) == 1 else [[cols[0]], [cols[1]], cols]
    augmented = {}
    try:
        for i in tqdm(range(n_iter), desc="augment", unit="iter", disable=not progress):
            augmented[i], hashes = modes[i % len(modes)], []
            for c in cols:
                if c in augmented[i]:
                    new_ids, _ = perturb_words(tokens[c], sampler, mask_id, p_mask, p_pos, rng)
                    _, _, start, span = ngram_spans(tokens[c].lengths, p_ng, rng)
                    strings = render(new_ids, tokens[c].offsets, start, span, vocab, with_space, with_sep)
                    hashes.append(hash_fn(strings))
                    spills[c].write(i, pa.array(strings, type=pa.string()), bounds)
                else:
                    hashes.append(held_keys[c])
            keys[m + i::n_iter] = _combine(hashes)
    except BaseException:
        for spill in spills.values():
            spill.close()
        raise
    # Duplicates as pandas' duplicated(keep="first") over [originals; candidates in origin-major order] (all
    # samples of example 0, then of example 1, ...): keys here, checked against the strings in Candidates.blocks.
    pa.default_memory_pool().release_unused()  # mimalloc keeps freed pages mapped otherwise
    rep = first_occurrence(keys)  # in keys' buffer
    return Candidates(cols, {c: pa.array(originals[c], type=pa.string()) for c in cols}, n_iter, bounds, augmented,
                      spills, rep)


def augment(texts: dict[str, Sequence[str]], tags: dict[str, Sequence[Sequence[str]]], unigrams: pd.DataFrame,
            p_mask: float, p_pos: float, p_ng: float, n_iter: int, seed: int, progress: bool = True,
            **options) -> dict:
    """`generate`, all kept rows in memory (small sets, tests): {"columns": {text column: pyarrow string array},
    "origin": int64 array, "candidates": number generated before de-duplication}; rows ordered by origin, then
    iteration. options: generate's block_rows, hash_fn."""
    with tempfile.TemporaryDirectory(prefix="augment-") as spill_dir, \
            generate(texts, tags, unigrams, p_mask, p_pos, p_ng, n_iter, seed, spill_dir, progress, **options) as cands:
        blocks = list(cands.blocks())
        columns = {c: pa.concat_arrays([pa.array([], pa.string()), *(s[c] for s, _ in blocks)]) for c in cands.columns}
        origin = np.concatenate([np.zeros(0, np.int64), *(o for _, o in blocks)])
        return {"columns": columns, "origin": origin, "candidates": cands.candidates}


def _originals_table(train: pd.DataFrame, text_columns: Sequence[str]) -> pa.Table:
    m = len(train)
    arrays = {c: pa.array(train[c].astype(str).to_numpy(object), type=pa.string()) for c in text_columns}
    arrays[LABEL] = pa.array(train[LABEL].to_numpy(np.int64))
    arrays[SYNTHETIC] = pa.array(np.zeros(m, bool))
    arrays[ORIGIN] = pa.array(np.arange(m, dtype=np.int64))
    return pa.table(arrays)


def _synthetic_table(columns: dict[str, pa.Array], origin: np.ndarray) -> pa.Table:
    arrays = {c: pa.array(s, type=pa.string()) for c, s in columns.items()}
    arrays[LABEL] = pa.array(np.full(len(origin), UNLABELLED, np.int64))
    arrays[SYNTHETIC] = pa.array(np.ones(len(origin), bool))
    arrays[ORIGIN] = pa.array(np.asarray(origin, np.int64))
    return pa.table(arrays)


def transfer_table(train: pd.DataFrame, text_columns: Sequence[str], synthetic: dict) -> pa.Table:
    """Originals (gold label, own position as origin) followed by synthetic rows (label -1), in memory."""
    table = pa.concat_tables([_originals_table(train, text_columns),
                              _synthetic_table(synthetic["columns"], synthetic["origin"])])
    return table.combine_chunks()


def write_table(table: pa.Table, path: str | Path, row_group: int = ROW_GROUP) -> Path:
    """Plain pyarrow write (no pandas metadata, fixed row groups): same table -> same bytes."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group, compression="snappy")
    return Path(path)


class _RowGroups:
    """Rows buffered into row groups of exactly `size` rows (the last one shorter), each written from contiguous
    arrays: the same bytes as pq.write_table(whole table, row_group_size=size)."""

    def __init__(self, writer: pq.ParquetWriter, size: int):
        self.writer, self.size, self.pending, self.rows, self.written = writer, size, [], 0, 0

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        while self.rows >= self.size:
            self._flush(self.size)

    def close(self) -> None:
        if self.rows or not self.written:  # an empty table still writes its (empty) row group
            self._flush(self.rows)

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.pending)
        self.writer.write_table(table.slice(0, n).combine_chunks(), row_group_size=self.size)
        self.pending, self.rows, self.written = [table.slice(n)], self.rows - n, self.written + n


def write_transfer(path: str | Path, train: pd.DataFrame, text_columns: Sequence[str], candidates: Candidates,
                   row_group: int = ROW_GROUP, progress: bool = False, iterations_path: str | Path | None = None
                   ) -> Path:
    """Stream the transfer set to `path` (not atomic: the caller renames it): the bytes of
    write_table(transfer_table(...)) without holding the synthetic rows. With `iterations_path`, also write there
    one row per transfer row: its origin and the iteration that generated it (ITERATION, -1 for an original), so
    a student can train on the rows of the first k iterations without new teacher logits."""
    originals = _originals_table(train, text_columns)
    iteration_parts = [np.full(len(train), -1, np.int16)]
    with pq.ParquetWriter(path, originals.schema, compression="snappy") as writer:
        groups = _RowGroups(writer, row_group)
        groups.add(originals)
        for columns, origin, iteration in candidates.blocks(progress, iterations=True):
            groups.add(_synthetic_table(columns, origin))
            iteration_parts.append(iteration)
        groups.close()
    if iterations_path is not None:
        origin = pq.read_table(path, columns=[ORIGIN]).column(ORIGIN)
        pq.write_table(pa.table({ORIGIN: origin, ITERATION: pa.array(np.concatenate(iteration_parts))}),
                       iterations_path, compression="snappy")
    return Path(path)
