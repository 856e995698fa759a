"""benchmarks/audit_transfer.py (an independent audit of the §3.3 rules): passes on a small transfer set made by
the real postag + augment stages, fails on a corrupted one (extra masking); its dedup algebra and its choice of
isolated origins."""
import shutil
from math import comb

import numpy as np
import pandas as pd
import pytest

from benchmarks import audit_transfer
from conftest import run_stage
from distill.data.params import AugmentParams
from distill.layout import TaskPaths
from helpers import cli_dirs, write_params, write_task_file

DET = ["the", "a", "this", "that", "every"]
ADJ = ["good", "bad", "dull", "charming", "great", "lifeless", "funny", "long", "clever", "slow", "sharp", "warm",
       "bland", "bright", "dark", "odd", "smart", "tired", "fresh", "cold"]
NOUN = ["film", "movie", "story", "cast", "plot", "script", "actor", "director", "scene", "ending", "comedy",
        "drama", "score", "camera", "hero", "villain", "picture", "show", "tale", "journey"]
VERB = ["is", "was", "seems", "feels", "remains", "looks"]
ADV = ["very", "really", "quite", "too", "so", "rather", "hardly", "truly"]


def make_train(m=2500, seed=0):
    rng = np.random.default_rng(seed)
    sents = set()
    while len(sents) < m:
        words = [rng.choice(DET), rng.choice(ADJ), rng.choice(NOUN), rng.choice(VERB), rng.choice(ADV),
                 rng.choice(ADJ)]
        if rng.random() < 0.5:
            words += ["and", rng.choice(ADV), rng.choice(ADJ)]
        if rng.random() < 0.3:
            words = words[:3]  # some short sentences too
        sents.add(" ".join(words + ["."]))
    sents = sorted(sents)
    rng.shuffle(sents)
    return pd.DataFrame({"idx": range(m), "sentence": sents, "label": rng.integers(0, 2, m), "split": "train"})


@pytest.fixture(scope="module")
def transfer_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    data = write_task_file(TaskPaths("sst2", root / "data")).data
    make_train().to_parquet(data / "train.parquet")
    write_params(root, postag={"tagger": "textblob"},
                 augment={"p_mask": 0.1, "p_pos": 0.1, "p_ng": 0.25, "seed": 13,
                          "n_iter": {"rotten_tomatoes": 1, "sst2": 20, "qqp": 1, "mnli": 1}})
    common = ["--task", "sst2", *cli_dirs(root, "data", "params")]
    run_stage("postag.py", *common, "--nltk-dir", str(root / "cache"))
    run_stage("augment.py", *common)
    return root


def audit(root, data, capsys) -> tuple[int, str]:
    rc = audit_transfer.main(["--data-dir", str(data), "--task", "sst2", "--params-file", str(root / "params.yaml")])
    return rc, capsys.readouterr().out


def test_audit_passes_on_stage_output(transfer_dir, capsys):
    rc, out = audit(transfer_dir, transfer_dir / "data", capsys)
    assert rc == 0, out
    assert "check 1: mask rate" in out and "FAIL" not in out
    assert "check 6: origins with > n_iter=20 synthetic rows" in out  # n_iter from the params file


def test_audit_fails_on_extra_masking(transfer_dir, tmp_path, capsys):
    data = tmp_path / "data" / "sst2"
    shutil.copytree(transfer_dir / "data" / "sst2", data)
    tr = pd.read_parquet(data / "transfer.parquet")
    rng = np.random.default_rng(1)
    syn = np.flatnonzero(tr["synthetic"].to_numpy())
    sents = tr["sentence"].to_numpy(object).copy()
    for r in syn:  # mask a further ~22% of the words: mask rate ~0.3
        words = sents[r].split(" ")
        sents[r] = " ".join("[MASK]" if rng.random() < 0.22 else w for w in words)
    tr["sentence"] = sents
    tr = tr[~tr["sentence"].duplicated()]  # keep the file duplicate-free: only the rates are wrong
    tr.to_parquet(data / "transfer.parquet")
    rc, out = audit(transfer_dir, tmp_path / "data", capsys)
    assert rc != 0
    line = next(x for x in out.splitlines() if x.startswith("check 1: mask rate"))
    assert line.rstrip().endswith("FAIL"), out


def test_audit_of_other_rates_fails(transfer_dir, capsys):
    """The same set judged against a p_mask it was not made with (--p-mask overrides the params file)."""
    rc = audit_transfer.main(["--data-dir", str(transfer_dir / "data"), "--task", "sst2", "--params-file",
                              str(transfer_dir / "params.yaml"), "--p-mask", "0.2"])
    assert rc == 1 and "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("n_iter", [1, 5, 20])
def test_dedup_series_is_the_chance_of_coming_up(n_iter):
    """sum_k (-1)^(k+1) C(N, k) pi^k, the series every expectation is built on, equals 1 - (1 - pi)^N."""
    rules = AugmentParams(p_mask=0.1, p_pos=0.1, p_ng=0.25, n_iter=n_iter, seed=0)
    corpus = audit_transfer.encode(pd.Series(["a b"]), pd.Series([["DT", "NN"]]),
                                   pd.DataFrame({"sentence": ["a [MASK]"], "origin": [0]}),
                                   pd.DataFrame({"tag": ["DT", "NN"], "word": ["a", "b"], "count": [1, 1]}))
    dedup = audit_transfer.position_sums(corpus, rules).dedup
    assert list(dedup) == [(-1) ** (k + 1) * comb(n_iter, k) for k in range(1, n_iter + 1)]
    pi = np.array([0.0, 0.01, 0.3, 0.9])
    series = (pi[:, None] ** np.arange(1, n_iter + 1)[None, :] * dedup[None, :]).sum(1)
    assert np.allclose(series, 1 - (1 - pi) ** n_iter)
    assert np.allclose(audit_transfer.kept_fraction(pi, n_iter), 1 - (1 - pi) ** n_iter)


def test_isolated_origins_are_long_and_have_no_near_twin():
    sentences = ["a b c d e f", "a b c d e x",  # one word apart: neither is isolated
                 "p q r s t u", "p q r s t u v",  # different lengths: both isolated
                 "a b c"]  # too short
    tags = pd.Series([["X"] * len(s.split()) for s in sentences])
    words = sorted({w for s in sentences for w in s.split()})
    corpus = audit_transfer.encode(pd.Series(sentences), tags, pd.DataFrame({"sentence": [], "origin": []}),
                                   pd.DataFrame({"tag": "X", "word": words, "count": 1}))
    isolated = audit_transfer.isolated_origins(corpus, audit_transfer.WindowHash())
    assert isolated.tolist() == [False, False, True, True, False]
