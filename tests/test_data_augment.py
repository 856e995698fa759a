"""distill/data/augment.py (§3.3): per-word rates, tag-preserving unigram replacement, n-grams, dedup, pair cycling,
determinism; and the augment stage."""
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats

from conftest import one_line_error, run_stage
from distill.data import dedup
from distill.data.augment import (KEEP, MASKED, REPLACED, augment, encode, generate, hash_strings, ngram_spans,
                                  perturb_words, render, transfer_table, write_table, write_transfer)
from distill.data.postag import tag_frame
from distill.io import TMP_DIR, UserError
from distill.layout import MASK, TaskPaths
from helpers import cli_dirs, write_params, write_task_file

# A controlled vocabulary: two tags with known unigram counts.
UNIGRAMS = pd.DataFrame({"tag": ["NN"] * 5 + ["VB"] * 3,
                         "word": ["n0", "n1", "n2", "n3", "n4", "v0", "v1", "v2"],
                         "count": [50, 25, 12, 8, 5, 60, 30, 10]})
TAG_OF = dict(zip(UNIGRAMS["word"], UNIGRAMS["tag"]))


def corpus(m=3000, length=8, seed=0):
    rng = np.random.default_rng(seed)
    words = np.array(list(TAG_OF))
    sents = [list(rng.choice(words, length)) for _ in range(m)]
    return [" ".join(s) for s in sents], [[TAG_OF[w] for w in s] for s in sents]


def sd4(p, n):
    return 4 * np.sqrt(p * (1 - p) / n)


def test_per_word_mask_and_replacement_rates():
    texts, tags = corpus()
    vocab, tokens, sampler = encode({"sentence": texts}, {"sentence": tags}, UNIGRAMS)
    assert vocab[0] == MASK
    new, decision = perturb_words(tokens["sentence"], sampler, 0, 0.1, 0.1, np.random.Generator(np.random.PCG64(1)))
    n = len(decision)
    assert abs((decision == MASKED).mean() - 0.1) < sd4(0.1, n)
    assert abs((decision == REPLACED).mean() - 0.1) < sd4(0.1, n)
    assert (vocab[new[decision == MASKED]] == MASK).all()
    assert (new[decision == KEEP] == tokens["sentence"].ids[decision == KEEP]).all()


def test_replacements_keep_the_tag_and_follow_unigram_counts():
    texts, tags = corpus(m=4000)
    vocab, tokens, sampler = encode({"sentence": texts}, {"sentence": tags}, UNIGRAMS)
    new, decision = perturb_words(tokens["sentence"], sampler, 0, 0.0, 0.5, np.random.Generator(np.random.PCG64(2)))
    repl = decision == REPLACED
    old_words, new_words = vocab[tokens["sentence"].ids[repl]], vocab[new[repl]]
    assert [TAG_OF[w] for w in new_words] == [TAG_OF[w] for w in old_words]
    for tag in ("NN", "VB"):
        table = UNIGRAMS[UNIGRAMS["tag"] == tag]
        drawn = pd.Series(new_words[[TAG_OF[w] == tag for w in old_words]]).value_counts()
        observed = np.array([drawn.get(w, 0) for w in table["word"]])
        expected = table["count"].to_numpy() / table["count"].sum() * observed.sum()
        assert observed.sum() > 3000
        assert stats.chisquare(observed, expected).pvalue > 1e-4, (tag, observed, expected)
    # A wrong distribution (uniform within the tag) is rejected by the same test, so the test can fail.
    observed_nn = np.array([pd.Series(new_words).value_counts().get(w, 0) for w in ["n0", "n1", "n2", "n3", "n4"]])
    assert stats.chisquare(observed_nn, np.full(5, observed_nn.sum() / 5)).pvalue < 1e-6


def test_ngram_rate_sizes_and_bounds():
    rng = np.random.Generator(np.random.PCG64(3))
    lengths = np.random.default_rng(4).integers(1, 13, 20000)
    applied, n, start, span = ngram_spans(lengths, 0.25, rng)
    assert abs(applied.mean() - 0.25) < sd4(0.25, len(lengths))
    assert set(np.unique(n[applied])) == {1, 2, 3, 4, 5}
    assert stats.chisquare(np.bincount(n[applied])[1:]).pvalue > 1e-4  # n uniform in 1..5
    assert (span[applied] == np.minimum(n, lengths)[applied]).all()
    assert ((start >= 0) & (start + span <= lengths)).all()
    assert ((start == 0) & (span == lengths))[~applied].all()
    # start uniform over the valid positions: for length 12 and n = 3, positions 0..9
    sel = applied & (lengths == 12) & (n == 3)
    assert set(np.unique(start[sel])) == set(range(10))


def test_ngrams_are_contiguous_pieces_of_the_source():
    texts = [" ".join(f"w{i}_{j}" for j in range(3 + i % 7)) for i in range(500)]
    tags = [["NN"] * len(t.split(" ")) for t in texts]
    unigrams = pd.DataFrame({"tag": "NN", "word": ["w0_0"], "count": [1]})
    out = augment({"sentence": texts}, {"sentence": tags}, unigrams, 0.0, 0.0, 1.0, 4, seed=5, progress=False)
    for sent, origin in zip(out["columns"]["sentence"].to_pylist(), out["origin"]):
        words, source = sent.split(" "), texts[origin].split(" ")
        assert 1 <= len(words) <= 5
        first = source.index(words[0])
        assert source[first:first + len(words)] == words


def test_no_duplicates_and_originals_first():
    texts, tags = corpus(m=2000, length=3, seed=6)  # short sentences over 8 words: many collisions
    out = augment({"sentence": texts}, {"sentence": tags}, UNIGRAMS, 0.1, 0.1, 0.25, 10, seed=7, progress=False)
    synth = out["columns"]["sentence"].to_pylist()
    assert out["candidates"] == 20000 and 0 < len(synth) < 20000
    assert len(set(synth)) == len(synth)
    assert not set(synth) & set(texts)
    assert (np.diff(out["origin"]) >= 0).all()
    train = pd.DataFrame({"sentence": texts, "label": np.arange(2000) % 2})
    df = transfer_table(train, ["sentence"], out).to_pandas()
    assert list(df.columns) == ["sentence", "label", "synthetic", "origin"]
    assert df["sentence"][:2000].tolist() == texts and df["origin"][:2000].tolist() == list(range(2000))
    assert (df["label"][:2000] == train["label"]).all() and (df["label"][2000:] == -1).all()
    assert (~df["synthetic"][:2000]).all() and df["synthetic"][2000:].all()


def test_pairs_cycle_first_second_both():
    # Lengths differ per example so that fully masked sentences of different examples differ.
    s1 = [" ".join(["one"] * (i + 1)) for i in range(50)]
    s2 = [" ".join(["two"] * (i + 2)) for i in range(50)]
    tags = {"sentence1": [["NN"] * (i + 1) for i in range(50)], "sentence2": [["NN"] * (i + 2) for i in range(50)]}
    unigrams = pd.DataFrame({"tag": ["NN"], "word": ["x"], "count": [1]})
    # p_mask = 1: an augmented sentence is all [MASK], so iterations 3..5 repeat 0..2 and are dropped.
    out = augment({"sentence1": s1, "sentence2": s2}, tags, unigrams, 1.0, 0.0, 0.0, 6, seed=8, progress=False)
    a, b = out["columns"]["sentence1"].to_pylist(), out["columns"]["sentence2"].to_pylist()
    assert out["candidates"] == 300
    assert out["origin"].tolist() == [i for i in range(50) for _ in range(3)]
    for i in range(50):
        m1, m2 = " ".join([MASK] * (i + 1)), " ".join([MASK] * (i + 2))
        assert list(zip(a[3 * i:3 * i + 3], b[3 * i:3 * i + 3])) == [(m1, s2[i]), (s1[i], m2), (m1, m2)]


def reference_candidates(texts, tags, unigrams, p_mask, p_pos, p_ng, n_iter, seed):
    """Every candidate, drawn as the stage did before it streamed (all iterations in memory as Python strings):
    {column: object array in origin-major order}."""
    from distill.data.augment import _SEP, encode, ngram_spans, perturb_words, render
    cols = list(texts)
    vocab, tokens, sampler = encode(texts, tags, unigrams)
    with_space = np.array([w + " " for w in vocab], dtype=object)
    with_sep = np.array([w + _SEP for w in vocab], dtype=object)
    rng = np.random.Generator(np.random.PCG64(seed))
    modes = [cols] if len(cols) == 1 else [[cols[0]], [cols[1]], cols]
    per_iter = {c: [] for c in cols}
    for i in range(n_iter):
        for c in cols:
            if c in modes[i % len(modes)]:
                new_ids, _ = perturb_words(tokens[c], sampler, 0, p_mask, p_pos, rng)
                _, _, start, span = ngram_spans(tokens[c].lengths, p_ng, rng)
                per_iter[c].append(render(new_ids, tokens[c].offsets, start, span, vocab, with_space, with_sep))
            else:
                per_iter[c].append(np.array(texts[c], dtype=object))
    return {c: np.stack(per_iter[c]).T.ravel() for c in cols}


def reference_augment(texts, tags, unigrams, p_mask, p_pos, p_ng, n_iter, seed):
    """The kept candidates as the stage found them before it streamed: pandas' duplicated(keep="first") over
    [originals; candidates in origin-major order]."""
    cand = reference_candidates(texts, tags, unigrams, p_mask, p_pos, p_ng, n_iter, seed)
    m = len(next(iter(texts.values())))
    both = pd.DataFrame({c: np.concatenate([np.array(texts[c], dtype=object), cand[c]]) for c in texts})
    keep = ~both.duplicated(keep="first").to_numpy()[m:]
    return {c: cand[c][keep].tolist() for c in texts}, np.repeat(np.arange(m), n_iter)[keep]


@pytest.mark.parametrize("pairs", [False, True])
def test_duplicates_as_pandas_finds_them(pairs):
    """Keys confirmed on the strings (pairs: both sentences) drop exactly the rows pandas' duplicated() drops: a
    pair repeats only if both of its sentences do."""
    s1, tags1 = corpus(m=600, length=2, seed=21)  # two words over a small vocabulary: many repeats
    s2, tags2 = corpus(m=600, length=3, seed=22)
    texts, tags = ({"sentence1": s1, "sentence2": s2}, {"sentence1": tags1, "sentence2": tags2}) if pairs else \
        ({"sentence": s1}, {"sentence": tags1})
    out = augment(texts, tags, UNIGRAMS, 0.2, 0.2, 0.3, 7, seed=23, progress=False)
    columns, origin = reference_augment(texts, tags, UNIGRAMS, 0.2, 0.2, 0.3, 7, seed=23)
    assert out["candidates"] == 4200 and 0 < len(origin) < 4200
    assert out["origin"].tolist() == origin.tolist()
    for c in texts:
        assert out["columns"][c].to_pylist() == columns[c]
    if pairs:  # sentence 1 alone repeats among the kept pairs
        assert len(set(columns["sentence1"])) < len(columns["sentence1"])


def tiny_hash(strings):
    """Three keys in all: collisions everywhere, among originals too, so only the exact check keeps rows apart."""
    return np.fromiter((len(s) % 3 for s in strings), np.uint64, len(strings))


def pair_or_single(pairs, m=600, length=2):
    s1, tags1 = corpus(m=m, length=length, seed=21)  # two words over 8: originals repeat, many candidates repeat
    s2, tags2 = corpus(m=m, length=length + 1, seed=22)
    s1[1], tags1[1] = s1[0], tags1[0]  # a pair whose first sentence is another pair's
    return ({"sentence1": s1, "sentence2": s2}, {"sentence1": tags1, "sentence2": tags2}) if pairs else \
        ({"sentence": s1}, {"sentence": tags1})


@pytest.mark.parametrize("pairs", [False, True])
@pytest.mark.parametrize("block_rows", [1 << 18, 20, 1])  # one block; 2 origins a block; 1 (carried strings)
@pytest.mark.parametrize("hash_fn", [hash_strings, tiny_hash], ids=["hash", "tiny_hash"])
def test_streamed_output_is_the_in_memory_reference(tmp_path, pairs, block_rows, hash_fn):
    texts, tags = pair_or_single(pairs)
    with generate(texts, tags, UNIGRAMS, 0.2, 0.2, 0.3, 7, 23, tmp_path, progress=False, block_rows=block_rows,
                  hash_fn=hash_fn) as candidates:
        blocks = list(candidates.blocks())
    columns, origin = reference_augment(texts, tags, UNIGRAMS, 0.2, 0.2, 0.3, 7, seed=23)
    assert candidates.candidates == 4200 and candidates.kept == len(origin)
    assert np.concatenate([o for _, o in blocks]).tolist() == origin.tolist()
    for c in texts:
        assert [s for b, _ in blocks for s in b[c].to_pylist()] == columns[c]
    # a 64-bit hash: no collision, every repeat is confirmed against its first occurrence's strings
    assert (candidates.collisions > 0) == (hash_fn is tiny_hash)
    # what the exact check has to get right is in the data: originals that repeat, candidates that repeat an
    # original, and candidates that repeat one another
    originals = list(zip(*texts.values()))
    cand = list(zip(*reference_candidates(texts, tags, UNIGRAMS, 0.2, 0.2, 0.3, 7, seed=23).values()))
    new = [r for r in cand if r not in set(originals)]
    assert len(set(originals)) < len(originals) and len(new) < len(cand) and len(set(new)) < len(new)
    if hash_fn is tiny_hash:  # at most 3 keys a column: rows that share a key but differ are kept
        assert len(origin) > 3 ** len(texts)


def test_first_occurrence_in_chunks_matches_pandas(monkeypatch):
    monkeypatch.setattr(dedup, "CHUNK", 7)  # runs of equal keys across chunk borders
    keys = np.random.default_rng(24).integers(0, 50, 1000).astype(np.uint64)
    first = pd.Series(keys).groupby(keys).transform(lambda s: s.index[0]).to_numpy()
    assert dedup.first_occurrence(keys.copy()).tolist() == first.tolist()
    assert dedup.first_occurrence(np.zeros(0, np.uint64)).tolist() == []


@pytest.mark.parametrize("pairs", [False, True])
@pytest.mark.parametrize("m,n_iter,row_group,block_rows", [
    (600, 7, 100, 50),  # row groups fill across blocks, the last one is short
    (600, 7, 4200, 1 << 18),  # no row group full
    (2000, 50, 65536, 1 << 14),  # the stage's row group (long sentences: most of the 100,000 candidates are kept)
    (0, 5, 100, 50),  # no examples
    (600, 0, 100, 50),  # no iterations: the originals alone
])
def test_streamed_file_has_the_bytes_of_the_whole_table(tmp_path, pairs, m, n_iter, row_group, block_rows):
    texts, tags = pair_or_single(pairs, m=max(m, 2), length=8 if row_group == 65536 else 2)
    texts, tags = {c: t[:m] for c, t in texts.items()}, {c: t[:m] for c, t in tags.items()}
    train = pd.DataFrame({**texts, "label": np.arange(m) % 2})
    args = (texts, tags, UNIGRAMS, 0.2, 0.2, 0.3, n_iter, 25)
    whole = write_table(transfer_table(train, list(texts), augment(*args, progress=False)), tmp_path / "whole.parquet",
                        row_group=row_group)
    with generate(*args, spill_dir=tmp_path, progress=False, block_rows=block_rows) as candidates:
        streamed = write_transfer(tmp_path / "streamed.parquet", train, list(texts), candidates, row_group=row_group)
    assert streamed.read_bytes() == whole.read_bytes()
    meta = pq.ParquetFile(streamed).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == m + candidates.kept and set(sizes[:-1]) <= {row_group} and sizes[-1] <= row_group
    if m and n_iter and row_group != 4200:
        assert len(sizes) > 1 and sizes[0] == row_group


@pytest.mark.parametrize("pairs", [False, True])
def test_the_first_k_iterations_are_the_n_iter_k_set_less_late_repeats(tmp_path, pairs):
    """The rows that iterations < k of an n_iter=7 run kept are the rows an n_iter=k run keeps, except those whose
    text the bigger run first met, at a later iteration, for an earlier example."""
    texts, tags = pair_or_single(pairs, m=300)
    cols = list(texts)
    train = pd.DataFrame({**texts, "label": np.arange(300) % 2})

    def run(n_iter):
        spill = tmp_path / f"spill-{n_iter}"
        spill.mkdir(exist_ok=True)
        out, its = tmp_path / f"transfer-{n_iter}.parquet", tmp_path / f"iterations-{n_iter}.parquet"
        with generate(texts, tags, UNIGRAMS, 0.2, 0.2, 0.3, n_iter, 23, spill, progress=False) as candidates:
            write_transfer(out, train, cols, candidates, iterations_path=its)
        return pd.read_parquet(out), pd.read_parquet(its)

    big, big_iterations = run(7)
    assert big_iterations["origin"].equals(big["origin"])
    assert big_iterations["iteration"].tolist()[:300] == [-1] * 300
    rows = lambda df: list(zip(df["origin"], *(df[c] for c in cols)))  # noqa: E731
    late_repeats = 0
    for k in (0, 3, 7):
        small, _ = run(k)
        subset = big[big_iterations["iteration"].to_numpy() < k]
        assert set(rows(subset)) <= set(rows(small))
        first_origin = {}
        for origin, *text in rows(big):
            first_origin.setdefault(tuple(text), origin)
        missing = [r for r in rows(small) if r not in set(rows(subset))]
        assert all(first_origin[tuple(text)] < origin for origin, *text in missing)
        late_repeats += len(missing)
        if k == 7:
            assert not missing and subset.reset_index(drop=True).equals(small)
    assert late_repeats > 0  # two-word sentences over 8 words: the case is in the data


def test_same_seed_same_bytes(tmp_path):
    texts, tags = corpus(m=1000, seed=9)
    train = pd.DataFrame({"sentence": texts, "label": np.zeros(1000, np.int64)})

    def run(seed, name):
        out = augment({"sentence": texts}, {"sentence": tags}, UNIGRAMS, 0.1, 0.1, 0.25, 5, seed, progress=False)
        return write_table(transfer_table(train, ["sentence"], out), tmp_path / name).read_bytes()

    assert run(13, "a.parquet") == run(13, "b.parquet")
    assert run(13, "a.parquet") != run(14, "c.parquet")


def test_render_joins_the_kept_span_of_each_example():
    vocab = np.array(["[MASK]", "a", "b", "c", "d"], dtype=object)
    ids, offsets = np.array([1, 2, 3, 4, 1, 0]), np.array([0, 4, 6])  # "a b c d", "a [MASK]"
    out = render(ids, offsets, np.array([1, 0]), np.array([2, 2]), vocab,
                 np.array([w + " " for w in vocab], dtype=object), np.array([w + "\n" for w in vocab], dtype=object))
    assert out.tolist() == ["b c", "a [MASK]"]


def test_bad_rates_and_misaligned_tags_are_user_errors():
    texts, tags = corpus(m=5)
    with pytest.raises(UserError, match="p_mask, p_pos"):
        augment({"sentence": texts}, {"sentence": tags}, UNIGRAMS, 0.6, 0.5, 0.0, 1, seed=0, progress=False)
    with pytest.raises(UserError, match="n_iter must be >= 0"):
        augment({"sentence": texts}, {"sentence": tags}, UNIGRAMS, 0.1, 0.1, 0.0, -1, seed=0, progress=False)
    with pytest.raises(UserError, match="do not line up"):
        encode({"sentence": texts}, {"sentence": [t[:-1] for t in tags]}, UNIGRAMS)
    with pytest.raises(UserError, match="tag 'JJ' has no unigram counts"):
        encode({"sentence": ["n0 n1"]}, {"sentence": [["NN", "JJ"]]}, UNIGRAMS)


def test_zero_iterations_give_only_the_originals():
    texts, tags = corpus(m=10)
    out = augment({"sentence": texts}, {"sentence": tags}, UNIGRAMS, 0.1, 0.1, 0.25, 0, seed=0, progress=False)
    assert out["candidates"] == 0 and len(out["origin"]) == 0 and len(out["columns"]["sentence"]) == 0


# ---- the augment stage -----------------------------------------------------------------------------------------
class OneTagPerClass:
    """A stand-in POS tagger (the real one is tested in test_data_postag.py): DT for articles, NN otherwise."""

    def tag(self, words):
        return [(w, "DT" if w in ("the", "a") else "NN") for w in words]


@pytest.mark.parametrize("task,cols", [("rotten_tomatoes", ["sentence"]), ("qqp", ["sentence1", "sentence2"])])
def test_augment_stage(tmp_path, task, cols):
    paths = TaskPaths(task, tmp_path / "data")
    write_task_file(paths)
    rows = ["the film is a charming journey .", "it 's a dull , lifeless mess", "what do pigs eat ?",
            "how do pigs eat ?", "a great cast"]
    train = pd.DataFrame({"idx": range(5), **{c: rows[k:] + rows[:k] for k, c in enumerate(cols)},
                          "label": [1, 0, 1, 0, 1], "split": "train"})
    train.to_parquet(paths.train)
    postag, unigrams = tag_frame(OneTagPerClass(), train, tuple(cols))
    postag.to_parquet(paths.postag)
    unigrams.to_parquet(paths.tag_unigrams)
    write_params(tmp_path, augment={"p_mask": 0.1, "p_pos": 0.1, "p_ng": 0.25, "seed": 13,
                                    "n_iter": {"rotten_tomatoes": 20, "sst2": 1, "qqp": 6, "mnli": 1}})
    args = ["--task", task, *cli_dirs(tmp_path, "data", "params")]
    proc = run_stage("augment.py", *args)
    out = pd.read_parquet(paths.transfer)
    assert list(out.columns) == [*cols, "label", "synthetic", "origin"]
    assert out[cols][:5].equals(train[cols]) and out["origin"][:5].tolist() == list(range(5))
    assert out["label"][:5].tolist() == [1, 0, 1, 0, 1] and not out["synthetic"][:5].any()
    n_iter = 6 if task == "qqp" else 20  # this task's entry of the per-task map
    synth = out[out["synthetic"]]
    assert 0 < len(synth) <= 5 * n_iter and (synth["label"] == -1).all()
    assert not out.duplicated(cols).any()
    assert f"{5 * n_iter} candidates, {len(synth)} kept" in proc.stderr
    assert not (paths.transfer.parent / TMP_DIR).exists()  # the spilled candidates are gone
    iterations = pd.read_parquet(paths.transfer_iterations)
    assert iterations["origin"].tolist() == out["origin"].tolist()
    assert ((iterations["iteration"] == -1) == ~out["synthetic"]).all()
    assert iterations["iteration"][out["synthetic"]].between(0, n_iter - 1).all()
    first = paths.transfer.read_bytes()
    run_stage("augment.py", *args)
    assert paths.transfer.read_bytes() == first  # same inputs and seed: same bytes
    proc = run_stage("augment.py", *args, "--set", "augment.p_mask=0.7", "--set", "augment.p_pos=0.5", check=False)
    assert "augment.p_mask + augment.p_pos must be <= 1 (params.yaml, or --set), got 0.7 + 0.5" \
        in one_line_error(proc)
    assert paths.transfer.read_bytes() == first
