"""Classify raw text with an exported folder (onnxruntime + numpy, no torch) or a model directory (torch).

    from distill.inference.predictor import Predictor
    p = Predictor.load("models/rotten_tomatoes/export/student")
    out = p.predict(["A charming, often affecting journey.", "Boring and far too long."])
    out.labels        # ['positive', 'negative']
    out.probs         # (2, 2) float64, columns in p.label_names order

`Predictor.load(folder)` takes an export folder (model.onnx, vocab.txt, export.json: the export stage's output)
and then imports only numpy, onnxruntime and the text handling (distill.data.text: nltk's Penn Treebank
tokenizer, pure Python, no data files). It also takes a model directory of the pipeline (models/<task>/student,
.../baseline, .../teacher): those run through torch (imported then, not before); a teacher truncates its input at
the max_length it was fine-tuned with (its training.json). Raw text is normalised exactly as the pipeline
normalised the task's data (task.json / export.json: lower-casing, tokenization).

Problems (a missing or damaged file, a pair model given single texts) raise ServingError (or, from the torch
loaders, distill.io.UserError), one line naming the file and what to re-run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from distill.data.text import normalize
from distill.layout import TRAINING_FILE

MODEL_FILE, VOCAB_FILE, EXPORT_FILE = "model.onnx", "vocab.txt", "export.json"  # = distill.inference.export's
FORMAT = "bilstm-distill-onnx"


class ServingError(Exception):
    """A one-line problem with a model folder or an input (the predict CLI prints it as `error: ...`)."""


@dataclass
class Predictions:
    labels: list[str]  # the predicted class name of each input
    probs: np.ndarray  # (N, C) float64 softmax probabilities, columns in Predictor.label_names order
    logits: np.ndarray  # (N, C) float32


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True)) if len(z) else z
    return z / z.sum(axis=1, keepdims=True) if len(z) else z


def _rerun(folder: Path, stage: str) -> str:
    """`dvc repro -f -s <stage>@<task>` for a folder laid out as models/<task>/..., else the stage alone."""
    parts = folder.resolve().parts
    task = parts[-3] if stage == "export" and len(parts) >= 3 else parts[-2] if len(parts) >= 2 else None
    return f"dvc repro -f -s {stage}@{task}" if task else f"the {stage} stage"


def trained_max_length(teacher_dir: Path) -> int:
    """The max_length a teacher directory was fine-tuned with, as its training.json records it."""
    record = teacher_dir / TRAINING_FILE
    try:
        value = json.loads(record.read_text(encoding="utf-8"))["max_length"]
    except (OSError, ValueError, KeyError, TypeError):
        value = None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ServingError(f"{record}: no max_length recorded (the teacher was fine-tuned before it was); re-run "
                           f"`{_rerun(teacher_dir, 'finetune_teacher')}`, or give it (predict: --set "
                           f"teacher.max_length=N)")
    return value


def session_options(threads: int = 1):
    """onnxruntime settings for low latency at batch 1: `threads` intra-op threads (1: no thread pool to wake),
    sequential execution, every graph optimisation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class Predictor:
    """`predict(texts)` (single-sentence models) or `predict_pairs(first, second)` (pair models) -> Predictions."""

    def __init__(self, label_names: Sequence[str], pair: bool, lowercase: bool, tokenize: bool,
                 logits_fn: Callable[[list[list[str]]], np.ndarray], backend: str, source: Path):
        self.label_names = list(label_names)
        self.pair = pair
        self.lowercase, self.tokenize = lowercase, tokenize
        self._logits_fn = logits_fn  # normalised text columns -> (N, C) logits
        self.backend = backend  # "onnxruntime" | "torch" | "teacher"
        self.source = source

    # ---- loading ---------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: str | Path, threads: int = 1, batch_size: int = 512, max_length: int | None = None
             ) -> "Predictor":
        """An export folder (onnxruntime; `threads` intra-op threads) or a model directory (torch; a teacher
        truncates to `max_length` tokens, by default the max_length its training.json records); batch_size = rows
        per inference call for long inputs."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ServingError(f"{folder}: model folder not found")
        if (folder / EXPORT_FILE).exists() or (folder / MODEL_FILE).exists():
            return cls._load_export(folder, threads, batch_size)
        return cls._load_model_dir(folder, batch_size, max_length)

    @classmethod
    def _load_export(cls, folder: Path, threads: int, batch_size: int) -> "Predictor":
        rerun = _rerun(folder, "export")
        for name in (EXPORT_FILE, VOCAB_FILE, MODEL_FILE):
            if not (folder / name).is_file():
                raise ServingError(f"{folder / name}: missing; not a complete export folder (re-run `{rerun}`)")
        try:
            info = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))
            if info.get("format") != FORMAT:
                raise ValueError(f"format {info.get('format')!r}, not {FORMAT!r}")
            labels, pair, text = list(info["labels"]), bool(info["pair"]), info["text"]
            lowercase, tokenize = bool(text["lowercase"]), text["tokenizer"] == "nltk-treebank"
            size, pad_id, unk_id = (int(info["vocab"][k]) for k in ("size", "pad_id", "unk_id"))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise ServingError(f"{folder / EXPORT_FILE}: not an export description ({type(err).__name__}: "
                               f"{err}); re-run `{rerun}`") from None
        try:
            words = (folder / VOCAB_FILE).read_text(encoding="utf-8").rstrip("\n").split("\n")
        except UnicodeDecodeError:
            words = []
        if len(words) != size or len(set(words)) != len(words):
            raise ServingError(f"{folder / VOCAB_FILE}: {len(words)} words, export.json says {size} (or repeated "
                               f"words); re-run `{rerun}`")
        stoi = {w: i for i, w in enumerate(words)}
        session = _onnx_session(folder / MODEL_FILE, threads, rerun)
        names = [i.name for i in session.get_inputs()]
        want = ["ids", "lengths", "ids2", "lengths2"] if pair else ["ids", "lengths"]
        outputs = [o.name for o in session.get_outputs()]
        if names != want or "logits" not in outputs:
            raise ServingError(f"{folder / MODEL_FILE}: inputs {names} and outputs {outputs}, not the "
                               f"{'pair' if pair else 'single-sentence'} student export's; re-run `{rerun}`")

        def encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
            rows = [[stoi.get(w, unk_id) for w in t.split()] or [pad_id] for t in texts]
            lengths = np.fromiter((len(r) for r in rows), np.int32, len(rows))
            ids = np.full((len(rows), int(lengths.max())), pad_id, np.int64)
            for i, r in enumerate(rows):
                ids[i, :len(r)] = r
            return ids, lengths

        def logits(columns: list[list[str]]) -> np.ndarray:
            n = len(columns[0])
            out = np.empty((n, len(labels)), np.float32)
            if n == 0:
                return out
            # length-sorted batches: little padding (each row still runs exactly its own length)
            order = np.argsort([len(t) for t in columns[0]], kind="stable") if n > batch_size else np.arange(n)
            for s in range(0, n, batch_size):
                rows = order[s:s + batch_size]
                feed = {}
                for suffix, col in zip(("", "2"), columns):
                    feed["ids" + suffix], feed["lengths" + suffix] = encode([col[i] for i in rows])
                out[rows] = session.run(["logits"], feed)[0]
            return out

        return cls(labels, pair, lowercase, tokenize, logits, "onnxruntime", folder)

    @classmethod
    def _load_model_dir(cls, folder: Path, batch_size: int, max_length: int | None) -> "Predictor":
        """A pipeline model directory, through torch (imported here, never by the export path)."""
        from distill.report.evaluate import model_kind, model_task, student_predictor, teacher_predictor

        kind = model_kind(folder)
        if kind == "student":
            predict, info = student_predictor(folder, batch_size)
        else:
            predict, info = teacher_predictor(folder, batch_size, max_length or trained_max_length(folder))
        names, lowercase, tokenize = model_task(folder, info["num_labels"])
        pair = info.get("pair")
        if pair is None:  # the teacher: its task.json says (a model saved without one takes what it is given)
            from distill.tasks import TASK_FILE, read_task
            pair = read_task(folder / TASK_FILE).is_pair if (folder / TASK_FILE).exists() else None
        return cls(names, pair, lowercase, tokenize, predict, "torch" if kind == "student" else "teacher", folder)

    # ---- inference -------------------------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """Raw text as the pipeline prepared the task's data (distill.data.text.normalize)."""
        return normalize(text, self.lowercase, self.tokenize)

    def predict(self, texts: Sequence[str]) -> Predictions:
        if self.pair:
            raise ServingError(f"{self.source}: a sentence-pair model; use predict_pairs(first, second)")
        return self.predict_normalized([[self.normalize(t) for t in texts]])

    def predict_pairs(self, first: Sequence[str], second: Sequence[str]) -> Predictions:
        if self.pair is False:
            raise ServingError(f"{self.source}: a single-sentence model; use predict(texts)")
        if len(first) != len(second):
            raise ServingError(f"predict_pairs: {len(first)} first and {len(second)} second texts")
        return self.predict_normalized([[self.normalize(t) for t in first], [self.normalize(t) for t in second]])

    def predict_normalized(self, columns: list[list[str]]) -> Predictions:
        """Text columns already normalised (e.g. the pipeline's data/<task>/*.parquet): 1 list, or 2 for pairs."""
        logits = np.asarray(self._logits_fn([list(c) for c in columns]), np.float32)
        probs = _softmax(logits)
        return Predictions([self.label_names[i] for i in probs.argmax(axis=1)] if len(probs) else [], probs, logits)


def _onnx_session(path: Path, threads: int, rerun: str):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...) for a bad file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ServingError(f"{path}: not a loadable ONNX model ({type(err).__name__}: {first}); re-run "
                           f"`{rerun}`") from None
