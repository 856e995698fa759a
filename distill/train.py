"""Training the BiLSTM student (§3.2) and the CE-only baseline (Table 1 row 7).

Loss L = alpha * CE(z_S, t) + (1 - alpha) * ||z_B - z_S||^2 (squared error summed over classes, mean over the
batch); t is the gold label for original rows and the teacher's argmax for synthetic ones. AdaDelta (lr 1.0,
rho 0.95), early stopping on dev accuracy, best epoch kept.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .io import UserError, atomic_path, get_logger
from .metrics import accuracy, f1_positive
from .student import StudentClassifier
from .vocab import Vocab

log = get_logger("train")
CHUNK_BATCHES = 50  # length bucketing happens within shuffled chunks of this many batches


@dataclass
class TrainConfig:
    alpha: float = 0.0
    lr: float = 1.0
    rho: float = 0.95
    batch_size: int = 50
    epochs: int = 10
    patience: int = 3
    seed: int = 13


class Encoded:
    """Texts pre-encoded once into a flat id array; batches are padded to their own longest text."""

    def __init__(self, vocab: Vocab, texts):
        flat, self.lengths = vocab.encode_batch(texts)
        self.flat = np.append(flat, 0)  # a trailing PAD keeps gathers in range even when every text is empty
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = self.lengths[rows]
        width = max(int(lengths.max()), 1)
        pos = np.arange(width)
        inside = pos[None, :] < lengths[:, None]
        idx = np.where(inside, self.offsets[rows][:, None] + pos[None, :], len(self.flat) - 1)
        return torch.from_numpy(self.flat[idx]), torch.from_numpy(lengths)


class Dataset:
    """One or two encoded text columns, plus optional targets (CE) and teacher logits (MSE)."""

    def __init__(self, vocab: Vocab, columns: list, targets=None, teacher_logits=None):
        self.columns = [Encoded(vocab, list(c)) for c in columns]
        self.targets = None if targets is None else np.asarray(targets, dtype=np.int64)
        self.teacher = None if teacher_logits is None else np.asarray(teacher_logits, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.columns[0])

    def inputs(self, rows: np.ndarray) -> list[torch.Tensor]:
        out = []
        for col in self.columns:
            out.extend(col.batch(rows))
        return out

    def total_lengths(self) -> np.ndarray:
        return sum(c.lengths for c in self.columns)


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Batches of row indices. Training (rng given): seeded shuffle, then rows sorted by length inside chunks of
    CHUNK_BATCHES batches (little padding, still random), batch order shuffled. Inference: sorted by length."""
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    perm = rng.permutation(n)
    chunk = batch_size * CHUNK_BATCHES
    batches = []
    for start in range(0, n, chunk):
        part = perm[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def distill_loss(student: torch.Tensor, teacher: torch.Tensor | None, targets: torch.Tensor | None,
                 alpha: float) -> torch.Tensor:
    """alpha * CE + (1 - alpha) * ||z_B - z_S||^2 (mean over the batch); a zero-weighted term is not computed."""
    loss = student.new_zeros(())
    if alpha > 0:
        loss = loss + alpha * F.cross_entropy(student, targets)
    if alpha < 1:
        loss = loss + (1 - alpha) * (teacher - student).pow(2).sum(dim=1).mean()
    return loss


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def use_all_cores() -> int:
    """torch threads = the cores we may use, unless OMP_NUM_THREADS says otherwise: on a busy shared machine more
    threads than free cores make the small per-step LSTM kernels spin-wait (measured 10x slower)."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        n = max(int(os.environ["OMP_NUM_THREADS"]), 1)
    else:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


@torch.no_grad()
def predict_logits(model: StudentClassifier, data: Dataset, batch_size: int = 512,
                   progress: bool = False) -> np.ndarray:
    """(N, num_labels) float32 logits in input order."""
    model.eval()
    dev = next(model.parameters()).device
    out = np.zeros((len(data), model.cfg.num_labels), dtype=np.float32)
    for rows in tqdm(batch_order(data.total_lengths(), batch_size, None), desc="predict", disable=not progress,
                     leave=False):
        out[rows] = model(*(t.to(dev) for t in data.inputs(rows))).float().cpu().numpy()
    return out


@dataclass
class TrainResult:
    best_state: dict
    best_epoch: int
    best_dev_accuracy: float
    curve: pd.DataFrame
    rows_per_s: float


def train(model: StudentClassifier, train_data: Dataset, dev_data: Dataset, dev_labels: np.ndarray,
          cfg: TrainConfig, with_f1: bool = False, progress: bool = True) -> TrainResult:
    """Train with early stopping on dev accuracy; the model is left holding the best epoch's weights."""
    if cfg.alpha > 0 and train_data.targets is None:
        raise UserError("alpha > 0 needs CE targets")
    if cfg.alpha < 1 and train_data.teacher is None:
        raise UserError("alpha < 1 needs teacher logits")
    dev = device()
    model.to(dev)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adadelta(params, lr=cfg.lr, rho=cfg.rho)
    lengths = train_data.total_lengths()
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    curve, stale, seen, elapsed = [], 0, 0, 0.0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, count, start = 0.0, 0, time.perf_counter()
        bar = tqdm(batch_order(lengths, cfg.batch_size, rng), desc=f"epoch {epoch}/{cfg.epochs}",
                   disable=not progress, mininterval=1.0)
        for rows in bar:
            inputs = [t.to(dev) for t in train_data.inputs(rows)]
            targets = None if train_data.targets is None else torch.from_numpy(train_data.targets[rows]).to(dev)
            teacher = None if train_data.teacher is None else torch.from_numpy(train_data.teacher[rows]).to(dev)
            loss = distill_loss(model(*inputs), teacher, targets, cfg.alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
            count += len(rows)
        elapsed += time.perf_counter() - start
        seen += count
        preds = predict_logits(model, dev_data).argmax(axis=1)
        row = {"epoch": epoch, "train_loss": round(total / max(count, 1), 6),
               "dev_accuracy": round(accuracy(dev_labels, preds), 4)}
        if with_f1:
            row["dev_f1"] = round(f1_positive(dev_labels, preds), 4)
        curve.append(row)
        log.info("epoch %d: train loss %.4f, dev accuracy %.4f (%.0f rows/s)", epoch, row["train_loss"],
                 row["dev_accuracy"], count / max(time.perf_counter() - start, 1e-9))
        if row["dev_accuracy"] > best[0]:
            best, stale = (row["dev_accuracy"], epoch, copy.deepcopy(model.state_dict())), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("early stop after epoch %d (best: epoch %d)", epoch, best[1])
                break
    model.load_state_dict(best[2])
    return TrainResult(best[2], best[1], best[0], pd.DataFrame(curve), seen / max(elapsed, 1e-9))


def write_curve(curve: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        curve.to_csv(tmp, index=False)


def texts_of(df: pd.DataFrame, columns: tuple[str, ...]) -> list[list[str]]:
    return [df[c].fillna("").astype(str).tolist() for c in columns]


def fit(task, train_df: pd.DataFrame, dev_df: pd.DataFrame, opts: dict, teacher_dir, model_dir, curve_path,
        distill: bool, progress: bool = True) -> dict:
    """Build vocab + embeddings from train_df, train, save the best model and the curve; returns the run's info.

    distill=True: train_df is teacher_logits.parquet (targets: gold for originals, teacher argmax for synthetic
    rows; logits for the MSE term). distill=False: the CE-only baseline on gold labels (alpha forced to 1).
    """
    from .embeddings import build_embeddings
    from .student import StudentConfig, count_parameters, save_student

    cols = task.text_columns
    if distill:
        missing = [c for c in (*cols, "label", "synthetic", "logits", "teacher_label") if c not in train_df.columns]
        if missing:
            raise UserError(f"teacher logits file lacks column(s) {missing}")
        targets = np.where(train_df["synthetic"].to_numpy(bool), train_df["teacher_label"].to_numpy(np.int64),
                           train_df["label"].to_numpy(np.int64))
        teacher = np.stack(train_df["logits"].to_numpy()).astype(np.float32)
        if teacher.shape[1] != task.num_labels:
            raise UserError(f"teacher logits have {teacher.shape[1]} classes, task {task.name} has {task.num_labels}")
        alpha = float(opts["alpha"])
    else:
        train_df = train_df[train_df["label"] >= 0]
        targets, teacher, alpha = train_df["label"].to_numpy(np.int64), None, 1.0
    if (targets < 0).any() or (targets >= task.num_labels).any():
        raise UserError(f"training targets outside 0..{task.num_labels - 1}")
    dev_df = dev_df[dev_df["label"] >= 0]
    if dev_df.empty:
        raise UserError(f"{task.name}: the {task.dev_split} split has no labelled rows for early stopping")

    train_texts = texts_of(train_df, cols)
    vocab = Vocab.build(t for column in train_texts for t in column)
    vectors, emb_info = build_embeddings(opts["embeddings"], vocab, int(opts["seed"]), teacher_dir)
    log.info("vocabulary %d words; %s embeddings %d-d cover %.1f%% of it", len(vocab), emb_info["embeddings"],
             emb_info["embedding_dim"], 100 * emb_info["coverage"])
    cfg = StudentConfig(vocab_size=len(vocab), embedding_dim=emb_info["embedding_dim"], hidden=int(opts["hidden"]),
                        fc=int(opts["fc"]), num_labels=task.num_labels, pair=task.is_pair,
                        multichannel=bool(opts["multichannel"]), embeddings=emb_info["embeddings"])
    torch.manual_seed(int(opts["seed"]))  # same seed -> student and baseline start from the same kind of init
    model = StudentClassifier(cfg, torch.from_numpy(vectors))
    params = {"total": count_parameters(model), "without_embeddings": count_parameters(model, False)}
    log.info("model: %d parameters (%d without embeddings)", params["total"], params["without_embeddings"])

    train_data = Dataset(vocab, train_texts, targets, teacher)
    dev_data = Dataset(vocab, texts_of(dev_df, cols))
    tcfg = TrainConfig(alpha=alpha, lr=float(opts["lr"]), rho=float(opts["rho"]),
                       batch_size=int(opts["batch_size"]), epochs=int(opts["epochs"]),
                       patience=int(opts["patience"]), seed=int(opts["seed"]))
    log.info("training on %d rows (alpha %.2f), early stopping on %d %s rows", len(train_data), alpha,
             len(dev_data), task.dev_split)
    result = train(model, train_data, dev_data, dev_df["label"].to_numpy(np.int64), tcfg, with_f1=task.f1,
                   progress=progress)
    info = {"coverage": emb_info["coverage"], "alpha": alpha, "best_epoch": result.best_epoch,
            "dev_accuracy": result.best_dev_accuracy, "params": params, "train_rows": len(train_data),
            "seed": tcfg.seed}
    model.cpu()
    save_student(model, vocab, model_dir, extra=info)  # speed stays out: outputs must be deterministic
    log.info("training speed: %.0f rows/s", result.rows_per_s)
    write_curve(result.curve, curve_path)
    log.info("wrote %s (best epoch %d, dev accuracy %.4f) and %s", model_dir, result.best_epoch,
             result.best_dev_accuracy, curve_path)
    return {**info, "rows_per_s": round(result.rows_per_s, 1)}
