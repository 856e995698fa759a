"""Training the student (§3.2; the paper's BiLSTM or another `arch`) and the CE-only baseline (Table 1 row 7).

Loss L = alpha * CE(z_S, t) + (1 - alpha) * ||z_B - z_S||^2 (squared error summed over classes, mean over the
batch); t is the gold label for original rows and the teacher's argmax for synthetic ones. AdaDelta (lr 1.0,
rho 0.95), early stopping on dev accuracy, best epoch kept.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from distill.student.params import BaselineParams, StudentParams
from distill.data.splits import texts_of
from distill.io import UserError, get_logger, publish, write_csv, write_json
from distill.layout import ITERATION, LABEL, LOGITS, ORIGIN, SYNTHETIC, TEACHER_LABEL, TRAINING_FILE
from distill.metrics import accuracy, f1_positive
from distill import runtime
from distill.runtime import hardware_record, resolve_bf16
from distill.student.batching import Dataset, batch_order, predict_logits
from distill.student.embeddings import build_embeddings
from distill.student.model import StudentClassifier, StudentConfig, count_parameters, save_student
from distill.student.optim import RowSparseAdadelta
from distill.student.vocab import Vocab
from distill.tasks import TASK_FILE, Task, write_task

log = get_logger("train")
DEV_BATCH = 512  # dev scoring each epoch: any size gives the same predictions


def distill_loss(student: torch.Tensor, teacher: torch.Tensor | None, targets: torch.Tensor | None,
                 alpha: float) -> torch.Tensor:
    """alpha * CE + (1 - alpha) * ||z_B - z_S||^2 (mean over the batch); a zero-weighted term is not computed."""
    loss = student.new_zeros(())
    if alpha > 0:
        loss = loss + alpha * F.cross_entropy(student, targets)
    if alpha < 1:
        loss = loss + (1 - alpha) * (teacher - student).pow(2).sum(dim=1).mean()
    return loss


@dataclass
class TrainResult:
    best_epoch: int
    best_dev_accuracy: float
    curve: pd.DataFrame
    rows_per_s: float
    precision: str = "fp32"


def adadelta(model: StudentClassifier, lr: float, rho: float) -> RowSparseAdadelta:
    """AdaDelta over the trainable parameters; the embedding table's zero-gradient rows only decay (same numbers
    as torch.optim.Adadelta, fewer passes: distill.student.optim)."""
    table = model.encoder.embed.trainable.weight
    rest = [p for p in model.parameters() if p.requires_grad and p is not table]
    return RowSparseAdadelta([{"params": [table], "row_sparse": True}, {"params": rest}], lr=lr, rho=rho)


def train(model: StudentClassifier, train_data: Dataset, dev_data: Dataset, dev_labels: np.ndarray,
          cfg: BaselineParams, alpha: float, name: str, with_f1: bool = False, f1_class: int = 1,
          progress: bool = True) -> TrainResult:
    """Train with early stopping on dev accuracy; the model is left holding the best epoch's weights.
    `name` labels the curve's rows (student / baseline), so several curves share one chart."""
    if alpha > 0 and train_data.targets is None:
        raise UserError("alpha > 0 needs CE targets")
    if alpha < 1 and train_data.teacher is None:
        raise UserError("alpha < 1 needs teacher logits")
    device = runtime.device()
    model.to(device)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    optimizer = adadelta(model, cfg.lr, cfg.rho)
    lengths = train_data.total_lengths()
    # bf16 autocast where native (auto) or asked for: the student's param only, the baseline trains in fp32
    bf16 = isinstance(cfg, StudentParams) and resolve_bf16(cfg.bf16, device, StudentParams.key("bf16"))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    curve, stale, seen, elapsed = [], 0, 0, 0.0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, count, start = 0.0, 0, time.perf_counter()
        bar = tqdm(batch_order(lengths, cfg.batch_size, rng), desc=f"epoch {epoch}/{cfg.epochs}",
                   disable=not progress, mininterval=1.0)
        for rows in bar:
            inputs = [t.to(device) for t in train_data.inputs(rows)]
            targets = None if train_data.targets is None else torch.from_numpy(train_data.targets[rows]).to(device)
            teacher = None if train_data.teacher is None else torch.from_numpy(train_data.teacher[rows]).to(device)
            with autocast:  # bf16 matmuls when asked for; the loss and the update stay fp32
                outputs = model(*inputs)
            loss = distill_loss(outputs.float(), teacher, targets, alpha)
            if not torch.isfinite(loss):
                raise UserError(f"epoch {epoch}: the training loss became {loss.item()} (non-finite inputs or "
                                "a diverging lr); nothing written")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
            count += len(rows)
        elapsed += time.perf_counter() - start
        seen += count
        preds = predict_logits(model, dev_data, DEV_BATCH).argmax(axis=1)
        row = {"model": name, "epoch": epoch, "train_loss": round(total / max(count, 1), 6),
               "dev_accuracy": round(accuracy(dev_labels, preds), 4)}
        if with_f1:
            row["dev_f1"] = round(f1_positive(dev_labels, preds, f1_class), 4)
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
    return TrainResult(best[1], best[0], pd.DataFrame(curve), seen / max(elapsed, 1e-9), "bf16" if bf16 else "fp32")


def distillation_targets(logits_df: pd.DataFrame, task: Task) -> tuple[np.ndarray, np.ndarray]:
    """(CE targets, teacher logits) of teacher_logits.parquet: gold labels for original rows, the teacher's argmax
    for synthetic ones; logits checked finite and of the task's width."""
    targets = np.where(logits_df[SYNTHETIC].to_numpy(bool), logits_df[TEACHER_LABEL].to_numpy(np.int64),
                       logits_df[LABEL].to_numpy(np.int64))
    teacher = np.stack(logits_df[LOGITS].to_numpy()).astype(np.float32)
    if teacher.shape[1] != task.num_labels:
        raise UserError(f"teacher logits have {teacher.shape[1]} classes, task {task.name} has {task.num_labels}")
    bad = np.flatnonzero(~np.isfinite(teacher).all(axis=1))
    if len(bad):
        raise UserError(f"teacher logits: {len(bad)} row(s) with NaN/inf, first at row(s) {bad[:5].tolist()}; "
                        "re-run teacher_logits")
    return targets, teacher


def first_iterations(logits_df: pd.DataFrame, iterations_df: pd.DataFrame, n: int) -> pd.DataFrame:
    """The rows of teacher_logits.parquet that augment's first `n` iterations made, and the originals (iteration -1);
    iterations_df is transfer_iterations.parquet, row for row (checked on the origin column)."""
    if len(iterations_df) != len(logits_df) or not np.array_equal(iterations_df[ORIGIN].to_numpy(),
                                                                 logits_df[ORIGIN].to_numpy()):
        raise UserError("transfer_iterations.parquet does not match teacher_logits.parquet row for row; re-run "
                        "augment and teacher_logits")
    made = int(iterations_df[ITERATION].max()) + 1 if len(iterations_df) else 0
    if n > made:
        raise UserError(f"student.transfer_iters={n}: the transfer set has only {made} augment iteration(s)")
    keep = iterations_df[ITERATION].to_numpy() < n
    return logits_df[keep].reset_index(drop=True)


def fit(task: Task, train_df: pd.DataFrame, dev_df: pd.DataFrame, cfg: BaselineParams, model_dir, curve_path,
        report_path, teacher_vectors: pd.DataFrame | None = None, progress: bool = True) -> dict:
    """Build vocab + embeddings from train_df, train, save the best model (with its training.json: precision and
    hardware), the curve and the run's report (the info returned, with its training speed).

    cfg a StudentParams: train_df is teacher_logits.parquet, the loss alpha*CE + (1-alpha)*MSE on logits.
    cfg a BaselineParams: the CE-only baseline on gold labels (train.parquet)."""
    started = time.perf_counter()
    distill = isinstance(cfg, StudentParams)
    if distill:
        targets, teacher = distillation_targets(train_df, task)
        alpha = cfg.alpha
    else:
        train_df = train_df[train_df[LABEL] >= 0]
        targets, teacher, alpha = train_df[LABEL].to_numpy(np.int64), None, 1.0
    if (targets < 0).any() or (targets >= task.num_labels).any():
        raise UserError(f"training targets outside 0..{task.num_labels - 1}")
    if len(targets) == 0:
        raise UserError(f"{task.name}: no training rows")
    dev_df = dev_df[dev_df[LABEL] >= 0]
    if dev_df.empty:
        raise UserError(f"{task.name}: the {task.dev_split} split has no labelled rows for early stopping")

    train_texts = texts_of(train_df, task)
    vocab = Vocab.build(t for column in train_texts for t in column)
    vectors, emb_info = build_embeddings(cfg.embeddings, vocab, cfg.seed, teacher_vectors)
    log.info("vocabulary %d words; %s embeddings %d-d cover %.1f%% of it", len(vocab), emb_info["embeddings"],
             emb_info["embedding_dim"], 100 * emb_info["coverage"])
    arch = StudentConfig(vocab_size=len(vocab), embedding_dim=emb_info["embedding_dim"],
                         hidden=cfg.hidden if cfg.arch == "bilstm" else 0, fc=cfg.fc if cfg.arch != "linear" else 0,
                         num_labels=task.num_labels, pair=task.is_pair, multichannel=cfg.multichannel,
                         embeddings=emb_info["embeddings"], arch=cfg.arch,
                         filters=cfg.filters if cfg.arch == "cnn" else 0)  # widths the arch has no use for: 0
    torch.manual_seed(cfg.seed)  # same seed -> student and baseline start from the same kind of init
    model = StudentClassifier(arch, torch.from_numpy(vectors))
    params = {"total": count_parameters(model), "without_embeddings": count_parameters(model, False)}
    log.info("model: %s, %d parameters (%d without embeddings)", arch.arch, params["total"],
             params["without_embeddings"])

    train_data = Dataset(vocab, train_texts, targets, teacher)
    dev_data = Dataset(vocab, texts_of(dev_df, task))
    log.info("training on %d rows (alpha %.2f), early stopping on %d %s rows", len(train_data), alpha,
             len(dev_data), task.dev_split)
    name = "student" if distill else "baseline"
    result = train(model, train_data, dev_data, dev_df[LABEL].to_numpy(np.int64), cfg, alpha, name,
                   with_f1=task.f1, f1_class=task.f1_index, progress=progress)
    info = {"coverage": emb_info["coverage"], "alpha": alpha, "best_epoch": result.best_epoch,
            "dev_accuracy": result.best_dev_accuracy, "params": params, "train_rows": len(train_data),
            "seed": cfg.seed}
    model.cpu()
    training = {"precision": result.precision, "hardware": hardware_record(runtime.device())}
    report = {"model": name, "task": task.name, **info, **training, "rows_per_s": round(result.rows_per_s, 1),
              "wall_s": round(time.perf_counter() - started, 1)}
    if distill:
        report["transfer_iters"] = cfg.transfer_iters
    with publish(model_dir, curve_path, report_path) as (model_tmp, curve_tmp, report_tmp):
        save_student(model, vocab, model_tmp, extra=info)  # speed stays out: outputs must be deterministic
        write_task(task, model_tmp / TASK_FILE)  # label names and text handling travel with the model (predict)
        write_json(training, model_tmp / TRAINING_FILE)
        write_csv(result.curve, curve_tmp)
        write_json(report, report_tmp)
    log.info("training speed: %.0f rows/s (%s, %s)", result.rows_per_s, result.precision, training["hardware"]["device"])
    log.info("wrote %s (best epoch %d, dev accuracy %.4f), %s and %s", model_dir, result.best_epoch,
             result.best_dev_accuracy, curve_path, report_path)
    return report
