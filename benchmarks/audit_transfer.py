"""Independent audit of a transfer set (data/<task>/transfer.parquet) against the §3.3 augmentation rules: it
shares no code with distill/data/augment.py, derives every expected value from the rules as the paper states
them, only reads the files, and exits 1 when a check fails.

    python -m benchmarks.audit_transfer --task sst2        # the rates and n_iter of params.yaml

One candidate (n_iter per training example, independent): each word is masked with probability p_mask, replaced
by word w of its tag t with probability p_pos * q_t(w) (q: the tag's unigram distribution, tag_unigrams.parquet;
w = the word leaves it unchanged), so it stays with probability u = 1 - p_mask - p_pos + p_pos * q_t(word); then
with probability p_ng the candidate becomes a contiguous n-gram, n ~ U{1..5} (clipped), start uniform. Candidates
equal to the original, to an earlier candidate or to any earlier row of the file are dropped, so the kept rows of
an origin are the distinct outcomes not already in the file: for a per-outcome statistic g, E[sum over kept rows
of g] = sum_v g(v) (1 - (1 - pi(v))^N), pi(v) the chance of outcome v in one candidate. Expanding
1 - (1 - pi)^N = sum_k (-1)^(k+1) C(N, k) pi^k factorizes every sum over word positions (sum_v pi(v)^k =
prod_i S_i(k), S_i(k) = sum_x p_i(x)^k), so the expectations are exact, with no simulation.
- Full-length checks (1, 3, p_ng) use the isolated origins: longer than 5 words (a full-length row is no n-gram)
  and no other same-length training sentence within Hamming distance 1, so within-origin dedup is the whole bias.
- Kept n-gram rows (n = 3, 4, 5; origins longer than 5 words) also condition on the file: an outcome of kept and
  masked words only that occurs in an earlier row leaves the expectation exactly (all 2^n mask patterns are
  looked up); outcomes with a replaced word that collide with other origins' rows are not modelled (small).
  n = 1, 2 are dominated by such collisions ("the", "[MASK] ,") and only reported.
- The s.d. of a total is sqrt(sum over origins of (observed - expected)^2); a check fails beyond 4 s.d.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import cached_property
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from distill import config
from distill.data.params import AugmentParams
from distill.io import UserError, read_parquet
from distill.layout import MASK, ORIGIN, SINGLE_TEXT, SYNTHETIC, TaskPaths, tag_columns

TEXT, TAGS = SINGLE_TEXT[0], tag_columns(SINGLE_TEXT)[0]
MASK_ID = 0  # MASK's word code: encode() numbers it first
MAX_NGRAM = 5
LONG = 5  # origins longer than this: a full-length row of theirs is never an n-gram
Z_TOL = 4.0


class Report:
    """Rows of (quantity, observed, expected, s.d., z, PASS | FAIL | INFO)."""

    def __init__(self):
        self.rows = []

    def add(self, name, observed, expected, sd, z, status):
        self.rows.append((name, observed, expected, sd, z, status))

    def test(self, name, observed, expected, sd):
        """PASS within Z_TOL standard deviations."""
        z = (observed - expected) / sd if sd > 0 else (0.0 if observed == expected else np.inf)
        self.add(name, observed, expected, sd, z, "PASS" if abs(z) <= Z_TOL else "FAIL")

    def exact(self, name, observed, expected):
        self.add(name, observed, expected, None, np.nan, "PASS" if observed == expected else "FAIL")

    def info(self, name, observed, expected=None):
        self.add(name, observed, expected, None, np.nan, "INFO")

    @property
    def failed(self):
        return [row for row in self.rows if row[5] == "FAIL"]

    def print(self, out=None):
        def fmt(x):
            if x is None or (isinstance(x, float) and np.isnan(x)):
                return "-"
            return str(int(x)) if isinstance(x, (int, np.integer)) else f"{x:.6g}"
        width = max(len(row[0]) for row in self.rows)
        print(f"{'quantity':<{width}}  {'observed':>12} {'expected':>12} {'s.d.':>10} {'z':>8}  status", file=out)
        for name, observed, expected, sd, z, status in self.rows:
            print(f"{name:<{width}}  {fmt(observed):>12} {fmt(expected):>12} {fmt(sd):>10} {fmt(z):>8}  {status}",
                  file=out)


def spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The ranges starts[i] .. starts[i] + lengths[i] - 1, one after another."""
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))


def split_words(sentences) -> tuple[list[str], np.ndarray]:
    """(every word, words per sentence) of space-tokenized sentences."""
    sentences = list(sentences)
    lengths = np.fromiter((s.count(" ") + 1 for s in sentences), np.int64, len(sentences))
    return (" ".join(sentences).split(" ") if sentences else []), lengths


@dataclass
class Corpus:
    """The training sentences, the synthetic rows and tag_unigrams as integer codes (MASK is word 0); sentence i's
    words are train[train_offsets[i]:train_offsets[i + 1]], and likewise for the synthetic rows."""
    train: np.ndarray
    train_lengths: np.ndarray
    train_tags: np.ndarray  # the tag of every training word
    synthetic: np.ndarray
    synthetic_lengths: np.ndarray
    origin: np.ndarray  # per synthetic row: its training row
    unigram_word: np.ndarray
    unigram_tag: np.ndarray
    unigram_q: np.ndarray  # q_tag(word): the word's share of its tag's count
    tag_names: np.ndarray
    vocab_size: int

    def __post_init__(self):
        self.train_offsets = np.concatenate([[0], np.cumsum(self.train_lengths)])
        self.synthetic_offsets = np.concatenate([[0], np.cumsum(self.synthetic_lengths)])

    @cached_property
    def _sorted_pairs(self):
        keys = self.unigram_tag * self.vocab_size + self.unigram_word
        order = np.argsort(keys)
        return keys[order], self.unigram_q[order]

    def q(self, tag: np.ndarray, word: np.ndarray) -> np.ndarray:
        """q_tag(word); 0 where tag_unigrams has no (tag, word): then it is no legal replacement."""
        keys, q = self._sorted_pairs
        key = tag * self.vocab_size + word
        i = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        return np.where(keys[i] == key, q[i], 0.0)


def encode(train: pd.Series, tags: pd.Series, synthetic: pd.DataFrame, unigrams: pd.DataFrame) -> Corpus:
    train_words, train_lengths = split_words(train)
    synthetic_words, synthetic_lengths = split_words(synthetic[TEXT])
    word_tags = np.array([t for sentence in tags for t in sentence], dtype=object)
    if len(word_tags) != len(train_words) or not np.array_equal(
            np.fromiter(map(len, tags), np.int64, len(tags)), train_lengths):
        raise SystemExit("postag.parquet does not line up with train.parquet")
    n_unigrams, n_train = len(unigrams), len(train_words)
    codes, vocab = pd.factorize(np.concatenate([[MASK], unigrams["word"].to_numpy(object),
                                                np.array(train_words, object), np.array(synthetic_words, object)]))
    tag_codes, tag_names = pd.factorize(np.concatenate([unigrams["tag"].to_numpy(object), word_tags]))
    unigram_tag = tag_codes[:n_unigrams].astype(np.int64)
    counts = unigrams["count"].to_numpy(np.float64)
    tag_totals = np.bincount(unigram_tag, weights=counts, minlength=len(tag_names))
    return Corpus(train=codes[1 + n_unigrams:1 + n_unigrams + n_train].astype(np.int64), train_lengths=train_lengths,
                  train_tags=tag_codes[n_unigrams:].astype(np.int64),
                  synthetic=codes[1 + n_unigrams + n_train:].astype(np.int64), synthetic_lengths=synthetic_lengths,
                  origin=synthetic[ORIGIN].to_numpy(np.int64), unigram_word=codes[1:1 + n_unigrams],
                  unigram_tag=unigram_tag, unigram_q=counts / tag_totals[unigram_tag], tag_names=tag_names,
                  vocab_size=len(vocab))


@dataclass
class PositionSums:
    """Per training word i and k = 1..N: S_i(k), the sum over the word's outcomes x (masked, unchanged, each other
    word of its tag) of P(x)^k, and the parts the checks need apart."""
    ks: np.ndarray
    keep: np.ndarray  # u_i: P(the word stays)
    replace_k: np.ndarray  # (words, N): sum over the other words w of its tag of (p_pos q(w))^k
    log_s: np.ndarray  # (words, N)
    cum_log_s: np.ndarray  # (words + 1, N): prefix sums, so a span's product of S is one difference
    dedup: np.ndarray  # (N,): (-1)^(k+1) C(N, k), so that sum_k dedup_k pi^k = 1 - (1 - pi)^N


def position_sums(corpus: Corpus, rules: AugmentParams) -> PositionSums:
    n = rules.n_iter
    ks = np.arange(1, n + 1)
    q_word = corpus.q(corpus.train_tags, corpus.train)
    tag_power_sums = np.zeros((len(corpus.tag_names), n))  # sum over the tag's words of q^k
    np.add.at(tag_power_sums, corpus.unigram_tag, corpus.unigram_q[:, None] ** ks[None, :])
    keep = 1 - rules.p_mask - rules.p_pos + rules.p_pos * q_word
    with np.errstate(divide="ignore"):
        replace_k = rules.p_pos ** ks[None, :] * np.maximum(
            tag_power_sums[corpus.train_tags] - q_word[:, None] ** ks[None, :], 0.0)
        log_s = np.log(rules.p_mask ** ks[None, :] + keep[:, None] ** ks[None, :] + replace_k)
    dedup = np.where(ks % 2 == 1, 1.0, -1.0) * np.array([comb(n, k) for k in ks], np.float64)
    return PositionSums(ks, keep, replace_k, log_s, np.vstack([np.zeros((1, n)), np.cumsum(log_s, axis=0)]), dedup)


def kept_fraction(pi: np.ndarray, n_iter: int) -> np.ndarray:
    """1 - (1 - pi)^N: the chance that an outcome of chance pi comes up among N candidates."""
    return -np.expm1(n_iter * np.log1p(-np.minimum(pi, 1 - 1e-300)))


class WindowHash:
    """Sums of word keys times per-position random odd multipliers (mod 2^64): equal word sequences hash equal.
    Word keys are codes + 2, so 1 is a wildcard no word has."""

    def __init__(self, seed: int = 12345):
        rng = np.random.default_rng(seed)
        self.position = rng.integers(1, 2 ** 63, size=64, dtype=np.int64).astype(np.uint64) | np.uint64(1)
        self.length = rng.integers(1, 2 ** 63, size=128, dtype=np.int64).astype(np.uint64)

    @staticmethod
    def key(codes) -> np.ndarray:
        return np.asarray(codes).astype(np.uint64) + np.uint64(2)

    def of_columns(self, columns: list[np.ndarray]) -> np.ndarray:
        """The hash of each row of n word columns."""
        h = np.zeros(len(columns[0]), np.uint64)
        for i, column in enumerate(columns):
            h += self.key(column) * self.position[i]
        return h


def isolated_origins(corpus: Corpus, hashes: WindowHash) -> np.ndarray:
    """Training rows longer than LONG words with no other same-length training sentence within Hamming distance 1
    (exact duplicates included): only their own candidates can collide with their full-length rows."""
    lengths = corpus.train_lengths
    position = np.arange(len(corpus.train)) - np.repeat(corpus.train_offsets[:-1], lengths)
    multiplier = hashes.position[np.minimum(position, 63)]
    contribution = hashes.key(corpus.train) * multiplier * (position < 64)  # (longer sentences would alias)
    sentence = np.repeat(np.arange(len(lengths)), lengths)
    whole = np.zeros(len(lengths), np.uint64)
    np.add.at(whole, sentence, contribution)
    whole = whole + hashes.length[np.minimum(lengths, 127)]
    one_wildcard = whole[sentence] - contribution + multiplier  # the sentence with word i the wildcard
    _, inverse, counts = np.unique(np.concatenate([whole, one_wildcard]), return_inverse=True, return_counts=True)
    clash = counts[inverse[:len(lengths)]] > 1
    np.logical_or.at(clash, sentence, counts[inverse[len(lengths):]] > 1)
    return (lengths > LONG) & ~clash


def check_structure(report: Report, train: pd.Series, transfer: pd.DataFrame, n_iter: int) -> None:
    """Checks 5 and 6: the training rows first, unchanged and in order, then synthetic rows only, none a duplicate
    of an earlier row, at most n_iter per origin."""
    n = len(train)
    originals, synthetic = transfer.iloc[:n], transfer.iloc[n:]
    report.exact("originals block == train.parquet (text, order, origin)",
                 int((originals[TEXT].to_numpy() == train.to_numpy()).all()
                     and (originals[ORIGIN].to_numpy() == np.arange(n)).all() and not originals[SYNTHETIC].any()), 1)
    report.exact("rows after the originals all synthetic", int(synthetic[SYNTHETIC].all()), 1)
    duplicate = transfer[TEXT].duplicated().to_numpy()
    report.info("duplicate sentences inside train.parquet (inherited, not augmentation)", int(duplicate[:n].sum()))
    report.exact("check 5: synthetic rows duplicating any earlier row", int(duplicate[n:].sum()), 0)
    report.exact("check 5: synthetic rows equal to a training sentence", int(synthetic[TEXT].isin(set(train)).sum()), 0)
    per_origin = np.bincount(synthetic[ORIGIN].to_numpy(), minlength=n)
    report.exact(f"check 6: origins with > n_iter={n_iter} synthetic rows", int((per_origin > n_iter).sum()), 0)
    report.info("synthetic rows (kept) / candidates", len(synthetic), n * n_iter)


@dataclass
class FullLengthWords:
    """Every word of the synthetic rows as long as their origin, beside the origin's word at its position."""
    rows: np.ndarray  # those synthetic rows
    row: np.ndarray  # per word: its synthetic row
    origin: np.ndarray  # per word: its row's origin
    train_pos: np.ndarray  # per word: the origin's word at the same position (an index into corpus.train)
    new: np.ndarray
    old: np.ndarray

    def __post_init__(self):
        self.masked = (self.new == MASK_ID) & (self.old != MASK_ID)
        self.replaced = (self.new != self.old) & (self.new != MASK_ID)


def full_length_words(corpus: Corpus) -> FullLengthWords:
    rows = np.flatnonzero(corpus.synthetic_lengths == corpus.train_lengths[corpus.origin])
    lengths = corpus.synthetic_lengths[rows]
    positions = spans(corpus.synthetic_offsets[rows], lengths)
    row = np.repeat(rows, lengths)
    origin = corpus.origin[row]
    train_pos = corpus.train_offsets[origin] + positions - corpus.synthetic_offsets[row]
    return FullLengthWords(rows, row, origin, train_pos, corpus.synthetic[positions], corpus.train[train_pos])


def check_replacements_legal(report: Report, corpus: Corpus, words: FullLengthWords) -> None:
    """Check 2: every replacement is a word of the original word's tag; and no row is its origin."""
    legal = corpus.q(corpus.train_tags[words.train_pos], words.new) > 0
    report.exact("check 2: replaced words not under the original word's tag", int((words.replaced & ~legal).sum()), 0)
    changed_rows = np.unique(words.row[words.new != words.old])
    report.exact("full-length rows equal to their origin", len(words.rows) - len(changed_rows), 0)


@dataclass
class FullLengthModel:
    """The isolated origins' full-length outcomes, summed per power k."""
    origins: np.ndarray
    positions: np.ndarray  # their words (indices into corpus.train)
    word_origin: np.ndarray  # per word: its index into origins
    changed_k: np.ndarray  # (origins, N): sum over the origin's full-length outcomes but itself of pi^k
    others_k: np.ndarray  # (words, N): product of S_i(k) over the origin's other words
    coef: np.ndarray  # (N,): dedup_k (1 - p_ng)^k: kept fraction of full-length outcomes is sum_k coef_k pi^k


def full_length_model(corpus: Corpus, sums: PositionSums, rules: AugmentParams, isolated: np.ndarray):
    origins = np.flatnonzero(isolated)
    starts, stops = corpus.train_offsets[origins], corpus.train_offsets[origins + 1]
    log_all = sums.cum_log_s[stops] - sums.cum_log_s[starts]
    cum_log_keep = np.concatenate([[0], np.cumsum(np.log(sums.keep))])
    log_unchanged = (cum_log_keep[stops] - cum_log_keep[starts])[:, None] * sums.ks[None, :]
    positions = spans(starts, corpus.train_lengths[origins])
    word_origin = np.repeat(np.arange(len(origins)), corpus.train_lengths[origins])
    others = np.exp(log_all[word_origin] - sums.log_s[positions])
    return FullLengthModel(origins, positions, word_origin, np.exp(log_all) - np.exp(log_unchanged), others,
                           sums.dedup * (1 - rules.p_ng) ** sums.ks)


def test_total(report: Report, name: str, observed: np.ndarray, expected: np.ndarray, scale: float = 1.0) -> None:
    """Per-origin observed and expected counts, tested as totals (divided by scale for a rate)."""
    sd = float(np.sqrt(((observed - expected) ** 2).sum()))
    report.test(name, float(observed.sum()) / scale, float(expected.sum()) / scale, sd / scale)


def check_full_length_rates(report: Report, corpus: Corpus, words: FullLengthWords, model: FullLengthModel,
                            sums: PositionSums, rules: AugmentParams, isolated: np.ndarray) -> None:
    """Check 1 (kept rows, mask and replacement rates per word) and p_ng from the number of full-length rows."""
    n = len(corpus.train_lengths)
    mine = isolated[words.origin]
    observed_rows = np.bincount(corpus.origin[words.rows], minlength=n)[model.origins]
    observed_masked = np.bincount(words.origin[mine], weights=words.masked[mine], minlength=n)[model.origins]
    observed_replaced = np.bincount(words.origin[mine], weights=words.replaced[mine], minlength=n)[model.origins]

    def per_origin(per_word_k):
        return np.bincount(model.word_origin, weights=per_word_k @ model.coef, minlength=len(model.origins))

    expected_rows = model.changed_k @ model.coef
    words_seen = float((observed_rows * corpus.train_lengths[model.origins]).sum())
    test_total(report, "check 1: kept full-length rows (dedup-exact)", observed_rows, expected_rows)
    test_total(report, "check 1: mask rate per word in kept full-length rows", observed_masked,
               per_origin(rules.p_mask ** sums.ks[None, :] * model.others_k), words_seen)
    test_total(report, "check 1: replacement rate per word (changed words)", observed_replaced,
               per_origin(sums.replace_k[model.positions] * model.others_k), words_seen)
    report.info("  naive (uncorrected) mask rate | p_mask", float(observed_masked.sum() / words_seen), rules.p_mask)

    def rows_at(p_ng):
        return float((model.changed_k @ (sums.dedup * (1 - p_ng) ** sums.ks)).sum())
    name = "check 4: p_ng inferred from kept full-length rows"
    try:
        p_hat = optimize.brentq(lambda p: rows_at(p) - float(observed_rows.sum()), 1e-6, 1 - 1e-6)
    except ValueError:  # no p_ng in (0, 1) gives that many rows
        report.add(name, np.nan, rules.p_ng, 0.0, np.nan, "FAIL")
        return
    slope = (rows_at(rules.p_ng + 1e-4) - rows_at(rules.p_ng - 1e-4)) / 2e-4
    report.test(name, p_hat, rules.p_ng, abs(np.sqrt(((observed_rows - expected_rows) ** 2).sum()) / slope))


def pool_small_bins(observed: np.ndarray, expected: np.ndarray, least: float = 5.0):
    """The bins expected >= least, and one pooling the rest (into the last big one if it is still under least)."""
    big = expected >= least
    o, e = np.append(observed[big], observed[~big].sum()), np.append(expected[big], expected[~big].sum())
    if e[-1] < least:
        o, e = o[:-1], e[:-1]
        if len(o) and (~big).any():
            o[-1] += observed[~big].sum()
            e[-1] += expected[~big].sum()
    return o, e


def check_replacement_words(report: Report, corpus: Corpus, words: FullLengthWords, model: FullLengthModel,
                            sums: PositionSums, rules: AugmentParams, isolated: np.ndarray, tags: int = 6) -> None:
    """Check 3, for the most replaced tags: a chi-square test of the replacement words in the isolated origins'
    full-length rows against sum_k coef_k (p_pos q_w)^k [A_t(k) - B_tw(k)], A_t summing others_k over the positions
    tagged t, B_tw over those whose word is w (a word is never replaced by itself)."""
    picked = words.replaced & isolated[words.origin]
    tag, word = corpus.train_tags[words.train_pos][picked], words.new[picked]
    position_tag = corpus.train_tags[model.positions]
    per_tag = np.zeros((len(corpus.tag_names), rules.n_iter))
    np.add.at(per_tag, position_tag, model.others_k)
    keys, inverse = np.unique(position_tag * corpus.vocab_size + corpus.train[model.positions], return_inverse=True)
    per_tag_word = np.zeros((len(keys), rules.n_iter))
    np.add.at(per_tag_word, inverse, model.others_k)
    for t in pd.Series(tag).value_counts().index[:tags]:
        mine = corpus.unigram_tag == t
        tag_words, q = corpus.unigram_word[mine], corpus.unigram_q[mine]
        key = t * corpus.vocab_size + tag_words
        i = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        same_word = np.where((keys[i] == key)[:, None], per_tag_word[i], 0.0)
        expected = ((rules.p_pos ** sums.ks[None, :]) * q[:, None] ** sums.ks[None, :]
                    * (per_tag[t][None, :] - same_word)) @ model.coef
        observed = pd.Series(word[tag == t]).value_counts().reindex(tag_words, fill_value=0).to_numpy(np.float64)
        o, e = pool_small_bins(observed, expected / expected.sum() * observed.sum())
        chi2, df = float(((o - e) ** 2 / e).sum()), len(o) - 1
        if df < 1:
            continue
        z = float(stats.norm.isf(max(stats.chi2.sf(chi2, df), 1e-300)))
        report.add(f"check 3: chi2 replacement words, tag {corpus.tag_names[t]} (n={int(observed.sum())}, df={df})",
                   chi2, float(df), float(np.sqrt(2 * df)), z, "PASS" if z <= Z_TOL else "FAIL")


def ngram_rows(corpus: Corpus) -> dict[int, np.ndarray]:
    """The synthetic rows shorter than their origin, by length 1..MAX_NGRAM."""
    shorter = corpus.synthetic_lengths != corpus.train_lengths[corpus.origin]
    return {n: np.flatnonzero(shorter & (corpus.synthetic_lengths == n)) for n in range(1, MAX_NGRAM + 1)}


def check_ngram_windows(report: Report, corpus: Corpus, ngrams: dict[int, np.ndarray]) -> None:
    """Check 4: a row shorter than its origin is a window of it, each word kept, masked or of the same tag."""
    illegal = 0
    for n, rows in ngrams.items():
        origin = corpus.origin[rows]
        n_windows = np.maximum(corpus.train_lengths[origin] - n + 1, 0)
        row = np.repeat(np.arange(len(rows)), n_windows)
        start = spans(corpus.train_offsets[origin], n_windows)  # each window's first word in corpus.train
        legal = np.ones(len(row), bool)
        for i in range(n):
            new, old = corpus.synthetic[corpus.synthetic_offsets[rows[row]] + i], start + i
            legal &= (new == corpus.train[old]) | (new == MASK_ID) | (corpus.q(corpus.train_tags[old], new) > 0)
        fits = np.zeros(len(rows), bool)
        np.logical_or.at(fits, row, legal)
        illegal += int((~fits).sum())
    report.exact("check 4: rows shorter than origin that are not a legal window", illegal, 0)
    lengths, origin_lengths = corpus.synthetic_lengths, corpus.train_lengths[corpus.origin]
    report.exact("synthetic rows longer than their origin", int((lengths > origin_lengths).sum()), 0)
    report.exact("n-gram rows longer than 5 words", int(((lengths != origin_lengths) & (lengths > MAX_NGRAM)).sum()), 0)


def file_rows_of_length(corpus: Corpus, hashes: WindowHash, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted hashes of the file's n-word rows, the origin of each hash's first row; -1 for a training row)."""
    lengths = np.concatenate([corpus.train_lengths, corpus.synthetic_lengths])
    starts = np.concatenate([corpus.train_offsets[:-1], len(corpus.train) + corpus.synthetic_offsets[:-1]])
    words = np.concatenate([corpus.train, corpus.synthetic])
    origin = np.concatenate([np.full(len(corpus.train_lengths), -1, np.int64), corpus.origin])
    rows = np.flatnonzero(lengths == n)
    h = hashes.of_columns([words[starts[rows] + i] for i in range(n)])
    order = np.argsort(h, kind="stable")
    return h[order], origin[rows][order]


def expected_ngram_rows(corpus: Corpus, sums: PositionSums, rules: AugmentParams, hashes: WindowHash,
                        n: int) -> np.ndarray:
    """Expected kept n-gram rows of each origin longer than LONG words."""
    long_origins = np.flatnonzero(corpus.train_lengths > LONG)
    n_windows = corpus.train_lengths[long_origins] - n + 1
    origin = np.repeat(long_origins, n_windows)
    start = spans(corpus.train_offsets[long_origins], n_windows)
    words = np.stack([corpus.train[start + i] for i in range(n)], axis=1)
    h = hashes.of_columns(list(words.T))
    groups = pd.DataFrame({"o": origin, "h": h}).groupby(["o", "h"], sort=False)  # equal windows of an origin
    first = groups.head(1).index.to_numpy()
    copies = groups.size().to_numpy().astype(np.float64)  # (size() keeps head()'s order: first appearance)
    origin, start, words, h = origin[first], start[first], words[first], h[first]
    chance = rules.p_ng / MAX_NGRAM / (corpus.train_lengths[origin] - n + 1) * copies  # P(a candidate is it)
    log_window = sums.cum_log_s[start + n] - sums.cum_log_s[start]
    series = (np.exp(log_window + sums.ks[None, :] * np.log(chance)[:, None]) * sums.dedup[None, :]).sum(1)
    # The 2^n outcomes of kept and masked words alone, exactly: out of the series, then back in, merged over the
    # origin's windows and left out where the file has them in an earlier row.
    keep = sums.keep[start[:, None] + np.arange(n)[None, :]]
    pattern_pi, pattern_h = [], []
    for pattern in range(2 ** n):
        masked = np.array([(pattern >> i) & 1 for i in range(n)], bool)
        pattern_pi.append(chance * np.prod(np.where(masked[None, :], rules.p_mask, keep), axis=1))
        masked_h = h.copy()
        for i in np.flatnonzero(masked):
            masked_h = masked_h - hashes.key(words[:, i]) * hashes.position[i] + hashes.key(MASK_ID) * hashes.position[i]
        pattern_h.append(masked_h)
    pattern_pi, pattern_h = np.concatenate(pattern_pi), np.concatenate(pattern_h)
    removed = np.bincount(np.tile(np.arange(len(origin)), 2 ** n),
                          weights=kept_fraction(pattern_pi, rules.n_iter), minlength=len(origin))
    merged = pd.DataFrame({"o": np.tile(origin, 2 ** n), "h": pattern_h, "pi": pattern_pi}).groupby(
        ["o", "h"], sort=False)["pi"].sum()
    merged_origin = merged.index.get_level_values(0).to_numpy()
    merged_h = merged.index.get_level_values(1).to_numpy().astype(np.uint64)
    file_h, file_origin = file_rows_of_length(corpus, hashes, n)
    in_file = np.zeros(len(merged_h), bool)
    if len(file_h):
        i = np.minimum(np.searchsorted(file_h, merged_h), len(file_h) - 1)
        in_file = (file_h[i] == merged_h) & (file_origin[i] < merged_origin)
    added = np.where(in_file, 0.0, kept_fraction(merged.to_numpy(), rules.n_iter))
    expected = pd.Series(series - removed).groupby(origin).sum()
    expected = expected.add(pd.Series(added).groupby(merged_origin).sum(), fill_value=0.0)
    return expected.reindex(long_origins, fill_value=0.0).to_numpy()


def check_ngram_counts(report: Report, corpus: Corpus, sums: PositionSums, rules: AugmentParams,
                       hashes: WindowHash, ngrams: dict[int, np.ndarray]) -> None:
    """Check 4: kept n-gram rows of the origins longer than LONG words, n = 3..5 tested, 1 and 2 reported."""
    long_origins = np.flatnonzero(corpus.train_lengths > LONG)
    for n, rows in ngrams.items():
        observed = np.bincount(corpus.origin[rows], minlength=len(corpus.train_lengths))[long_origins]
        if n < 3:
            report.info(f"check 4: kept {n}-gram rows, origins len > 5 (cross-origin dedup; untested)",
                        int(observed.sum()))
            continue
        expected = expected_ngram_rows(corpus, sums, rules, hashes, n)
        test_total(report, f"check 4: kept {n}-gram rows, origins len > 5 (dedup-corrected)", observed, expected)
        report.info(f"  implied p_ng from {n}-grams (~ p_ng * obs/exp)",
                    float(rules.p_ng * observed.sum() / expected.sum()))


def audit(paths: TaskPaths, rules: AugmentParams) -> Report:
    train = read_parquet(paths.train, columns=[TEXT])[TEXT]
    transfer = read_parquet(paths.transfer)
    report = Report()
    check_structure(report, train, transfer, rules.n_iter)
    corpus = encode(train, read_parquet(paths.postag, columns=[TAGS])[TAGS], transfer.iloc[len(train):],
                    read_parquet(paths.tag_unigrams))
    report.exact("training words missing from tag_unigrams under their tag",
                 int((corpus.q(corpus.train_tags, corpus.train) == 0).sum()), 0)
    sums, hashes = position_sums(corpus, rules), WindowHash()
    isolated = isolated_origins(corpus, hashes)
    report.info("origins used for full-length checks (len > 5, isolated)", int(isolated.sum()),
                int((corpus.train_lengths > LONG).sum()))
    words = full_length_words(corpus)
    check_replacements_legal(report, corpus, words)
    model = full_length_model(corpus, sums, rules, isolated)
    check_full_length_rates(report, corpus, words, model, sums, rules, isolated)
    check_replacement_words(report, corpus, words, model, sums, rules, isolated)
    ngrams = ngram_rows(corpus)
    check_ngram_windows(report, corpus, ngrams)
    check_ngram_counts(report, corpus, sums, rules, hashes, ngrams)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sst2", help="the task whose data/<task>/ is audited")
    ap.add_argument("--data-dir", type=Path, default=Path("data"), help="root of the per-task data folders")
    ap.add_argument("--params-file", type=Path, default=Path("params.yaml"),
                    help="augment.p_mask, p_pos, p_ng and n_iter the set was made with come from here")
    for name in ("p_mask", "p_pos", "p_ng", "n_iter"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int if name == "n_iter" else float,
                        help=f"instead of the params file's augment.{name}")
    args = ap.parse_args(argv)
    try:
        rules = config.load(AugmentParams, args.task, args.params_file, p_mask=args.p_mask, p_pos=args.p_pos,
                            p_ng=args.p_ng, n_iter=args.n_iter)
    except UserError as err:
        ap.error(str(err))
    report = audit(TaskPaths(args.task, args.data_dir), rules)
    report.print()
    print(f"\n{len(report.failed)} check(s) failed" if report.failed else "\nall checks passed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
