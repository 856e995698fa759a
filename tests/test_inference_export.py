"""The export stage and distill.inference.predictor: the ONNX export equals the torch student on the whole dev
set (single sentence and siamese pair), serving needs no torch, and raw text is handled as the pipeline did."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_stage
from distill.data.text import normalize
from distill.inference.predictor import Predictor, ServingError
from distill.layout import TaskPaths
from distill.student.batching import Dataset, predict_logits
from distill.student.model import load_student, save_student
from distill.student.vocab import Vocab
from distill.tasks import TASK_FILE, write_task
from helpers import builtin_task, cli_dirs, make_student, random_texts, write_params, write_task_file

WORDS = [f"w{i}" for i in range(40)] + ["it", "'s", "[MASK]", "n't", "é", "great", "!"]


def make_task(root, task: str, n_dev: int = 137, seed: int = 0) -> TaskPaths:
    """data/<task>/{task.json, dev.parquet} and models/<task>/{student,baseline} (jittered random BiLSTMs of
    their own vocabularies, multichannel student, single-channel baseline), as the pipeline lays them out."""
    rng = np.random.default_rng(seed)
    paths = write_task_file(TaskPaths(task, root / "data", root / "models", root / "metrics"))
    spec = builtin_task(task)
    dev = {"idx": np.arange(n_dev), "label": rng.integers(0, spec.num_labels, n_dev), "split": "dev"}
    for col in spec.text_columns:
        dev[col] = random_texts(rng, n_dev, WORDS)  # empty texts and unknown words included
    pd.DataFrame(dev).to_parquet(paths.split("dev"), index=False)
    for i, kind in enumerate(("student", "baseline")):
        vocab = Vocab.build(random_texts(rng, 150 + 50 * i, WORDS))
        model = make_student(len(vocab), pair=spec.is_pair, multichannel=(kind == "student"), embedding_dim=6,
                             hidden=9, fc=10, num_labels=spec.num_labels, seed=3 + i, jitter=0.3)
        save_student(model, vocab, paths.model(kind))
        write_task(spec, paths.model(kind) / TASK_FILE)
    return paths


@pytest.mark.parametrize("task", ["rotten_tomatoes", "qqp"])  # single sentence; siamese pair
def test_export_equals_torch_on_the_whole_dev_set(tmp_path, task):
    paths = make_task(tmp_path, task)
    write_params(tmp_path)
    run_stage("export.py", "--task", task, *cli_dirs(tmp_path, "data", "models", "params"))
    spec = builtin_task(task)
    dev = pd.read_parquet(paths.split("dev"))
    columns = [dev[c].tolist() for c in spec.text_columns]
    for kind in ("student", "baseline"):
        folder = paths.model("export") / kind
        assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model.onnx", "vocab.txt"]
        info = json.loads((folder / "export.json").read_text())
        assert info["labels"] == list(spec.labels) and info["pair"] == spec.is_pair and info["kind"] == kind
        assert info["text"]["lowercase"] is True and info["text"]["tokenizer"] == "nltk-treebank"
        assert info["model"]["inputs"] == (["ids", "lengths", "ids2", "lengths2"] if spec.is_pair else ["ids", "lengths"])
        model, vocab = load_student(paths.model(kind))
        want = predict_logits(model, Dataset(vocab, columns), 50)
        predictor = Predictor.load(folder)
        assert predictor.backend == "onnxruntime" and predictor.pair == spec.is_pair
        got = predictor.predict_normalized(columns)
        np.testing.assert_allclose(got.logits, want, atol=1e-5, rtol=0)
        assert info["check"]["rows"] == len(dev) and info["check"]["max_abs_logit_diff_vs_torch"] <= 1e-5
        assert info["check"]["argmax_agreement"] == 1.0
        assert got.labels == [spec.labels[i] for i in want.argmax(1)]
        np.testing.assert_allclose(got.probs.sum(1), 1.0, atol=1e-12)
        # batch size does not change the answers (length-sorted batches, each row its own length)
        small = Predictor.load(folder, batch_size=7).predict_normalized(columns)
        np.testing.assert_allclose(small.logits, got.logits, atol=1e-6, rtol=0)


def test_raw_text_is_handled_as_the_pipeline_did(tmp_path):
    paths = make_task(tmp_path, "rotten_tomatoes")
    write_params(tmp_path)
    run_stage("export.py", "--task", "rotten_tomatoes", *cli_dirs(tmp_path, "data", "models", "params"))
    raw = ["It's GREAT!", "  W1   w2\tw3 ", "", "\"W4\" isn't w5", "W6\u2028w7"]
    onnx = Predictor.load(paths.model("export") / "student")
    torch_dir = Predictor.load(paths.model("student"))
    assert torch_dir.backend == "torch" and torch_dir.label_names == onnx.label_names
    model, vocab = load_student(paths.model("student"))
    want = predict_logits(model, Dataset(vocab, [[normalize(t) for t in raw]]), 8)
    np.testing.assert_allclose(onnx.predict(raw).logits, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(torch_dir.predict(raw).logits, want, atol=1e-6, rtol=0)
    assert onnx.normalize("It's GREAT!") == "it 's great !"
    with pytest.raises(ServingError, match="single-sentence model"):
        onnx.predict_pairs(["a"], ["b"])


def test_pair_predictor_refuses_single_texts(tmp_path):
    paths = make_task(tmp_path, "qqp", n_dev=20)
    write_params(tmp_path)
    run_stage("export.py", "--task", "qqp", *cli_dirs(tmp_path, "data", "models", "params"))
    p = Predictor.load(paths.model("export") / "student")
    out = p.predict_pairs(["How do I cook rice?", "why?"], ["How is rice cooked?", "why not?"])
    assert len(out.labels) == 2 and set(out.labels) <= {"not_duplicate", "duplicate"} and out.probs.shape == (2, 2)
    with pytest.raises(ServingError, match="predict_pairs"):
        p.predict(["a"])


def test_serving_an_export_imports_no_torch(tmp_path):
    """A fresh interpreter loads the folder and classifies raw text with onnxruntime, numpy and nltk's Treebank
    tokenizer; torch is never imported, and no nltk data is needed (NLTK_DATA points at an empty folder)."""
    paths = make_task(tmp_path, "rotten_tomatoes", n_dev=20)
    write_params(tmp_path)
    run_stage("export.py", "--task", "rotten_tomatoes", *cli_dirs(tmp_path, "data", "models", "params"))
    folder = paths.model("export") / "student"
    code = f"""
import json, sys
sys.path.insert(0, {str(REPO)!r})
from distill.inference.predictor import Predictor
p = Predictor.load({str(folder)!r})
out = p.predict(["It's a gem!", "Boring and far too long."])
print(json.dumps({{"labels": out.labels, "probs": out.probs.tolist(), "torch": "torch" in sys.modules,
                   "mods": sorted(m for m in sys.modules if m.startswith(("torch", "transformers")))}}))
"""
    (tmp_path / "nltk_data").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["NLTK_DATA"] = str(tmp_path / "nltk_data")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch"] is False and result["mods"] == []
    want = Predictor.load(paths.model("student")).predict(["It's a gem!", "Boring and far too long."])
    assert result["labels"] == want.labels
    np.testing.assert_allclose(result["probs"], want.probs, atol=1e-5)


def test_predict_stage_reads_an_export_folder(tmp_path):
    paths = make_task(tmp_path, "rotten_tomatoes", n_dev=20)
    params = write_params(tmp_path)
    run_stage("export.py", "--task", "rotten_tomatoes", *cli_dirs(tmp_path, "data", "models", "params"))
    (tmp_path / "in.txt").write_text("It's a gem!\n\nw1 w2 w3\r\n")
    answers = {}
    for name, model in (("onnx", paths.model("export") / "student"), ("torch", paths.model("student"))):
        proc = run_stage("predict.py", "--model", str(model), "--input", str(tmp_path / "in.txt"),
                         "--params-file", str(params))
        answers[name] = proc.stdout.split("\n")
    assert answers["onnx"] == answers["torch"]
    assert answers["onnx"][0] == "label\tp_negative\tp_positive" and len(answers["onnx"]) == 5
    assert answers["onnx"][2] == "" and answers["onnx"][4] == ""  # blank line kept; output ends with "\n"


def test_export_help_explains_every_option():
    proc = run_stage("export.py", "--help")
    for option in ("--task", "--data-dir", "--models-dir", "--params-file"):
        assert option in proc.stdout
