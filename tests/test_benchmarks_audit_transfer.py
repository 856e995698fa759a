"""benchmarks/audit_transfer.py (an independent audit of the §3.3 rules): passes on a transfer set made by the real
postag + augment stages, fails on a corrupted one (extra masking)."""
import importlib.util
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_stage
from distill.layout import TaskPaths
from helpers import cli_dirs, write_params, write_task_file

spec = importlib.util.spec_from_file_location("audit_transfer", REPO / "benchmarks" / "audit_transfer.py")
audit_transfer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit_transfer)

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


def test_audit_passes_on_stage_output(transfer_dir, capsys):
    rc = audit_transfer.main(["--data-dir", str(transfer_dir / "data"), "--task", "sst2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "check 1: mask rate" in out and "FAIL" not in out


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
    rc = audit_transfer.main(["--data-dir", str(tmp_path / "data"), "--task", "sst2"])
    out = capsys.readouterr().out
    assert rc != 0
    line = next(x for x in out.splitlines() if x.startswith("check 1: mask rate"))
    assert line.rstrip().endswith("FAIL"), out
