"""The student (§3.1, Figures 1-2): a one-layer BiLSTM over word embeddings, nothing added.

Single sentence: last hidden state of each direction, concatenated -> FC + ReLU -> FC -> logits.
Pairs: one shared (siamese) encoder; features [h1, h2, h1*h2, |h1-h2|] -> the same ReLU classifier.
Embeddings: one trainable table, or `multichannel` (Kim 2014): a frozen copy and a trainable copy, concatenated.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from distill.io import UserError, atomic_path, check_published
from distill.student.vocab import Vocab

CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE = "config.json", "model.pt", "vocab.txt"


@dataclass
class StudentConfig:
    """A trained model's architecture, saved in its config.json (the params that chose it live in params.yaml)."""
    vocab_size: int
    embedding_dim: int
    hidden: int
    fc: int
    num_labels: int
    pair: bool
    multichannel: bool
    embeddings: str  # provenance only: which vectors initialised the table


class Embedder(nn.Module):
    def __init__(self, cfg: StudentConfig, vectors: torch.Tensor | None = None):
        super().__init__()
        self.trainable = nn.Embedding(cfg.vocab_size, cfg.embedding_dim, padding_idx=0)
        self.frozen = nn.Embedding(cfg.vocab_size, cfg.embedding_dim, padding_idx=0) if cfg.multichannel else None
        if vectors is not None:
            self.trainable.weight.data.copy_(vectors)
            if self.frozen is not None:
                self.frozen.weight.data.copy_(vectors)
        if self.frozen is not None:
            self.frozen.weight.requires_grad_(False)

    @property
    def output_dim(self) -> int:
        return self.trainable.embedding_dim * (2 if self.frozen is not None else 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.frozen is None:
            return self.trainable(ids)
        return torch.cat([self.frozen(ids), self.trainable(ids)], dim=-1)


class BiLSTMEncoder(nn.Module):
    def __init__(self, cfg: StudentConfig, vectors: torch.Tensor | None = None):
        super().__init__()
        self.embed = Embedder(cfg, vectors)
        self.lstm = nn.LSTM(self.embed.output_dim, cfg.hidden, num_layers=1, bidirectional=True, batch_first=True)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T) right-padded, lengths (B,) >= 1 -> (B, 2*hidden): [forward last, backward last].

        The same maths as nn.LSTM over a packed sequence, run as two whole-sequence LSTM calls on padded input
        (the backward direction on each row's tokens reversed, pads still at the end) and read at each row's
        last token: a packed sequence makes torch step through time op by op, and its backward pass zero-fills
        an input-sized gradient per step (measured: 1.4x slower training on one CPU core, batch 50)."""
        x = self.embed(ids)
        lengths = lengths.to(x.device).clamp(min=1)
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, self.lstm.hidden_size)
        finals = []
        for backward, inputs in ((False, x), (True, reverse_rows(x, lengths))):
            h0 = x.new_zeros(1, x.shape[0], self.lstm.hidden_size)
            out, _, _ = torch.lstm(inputs, (h0, h0), list(self.direction_weights(backward)), True, 1, 0.0,
                                   self.training, False, True)
            finals.append(out.gather(1, last).squeeze(1))  # padding comes after the last token: no effect
        return torch.cat(finals, dim=-1)

    def direction_weights(self, backward: bool) -> tuple[torch.Tensor, ...]:
        """(W_ih, W_hh, b_ih, b_hh) of one direction, as parameters (gradients flow)."""
        suffix = "_reverse" if backward else ""
        return tuple(getattr(self.lstm, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih",
                                                                           "bias_hh"))


def reverse_rows(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x (B, T, E) right-padded -> each row's first lengths[b] steps in reverse order, padding left in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    n = lengths.unsqueeze(1)
    order = torch.where(steps < n, n - 1 - steps, steps)
    return x.gather(1, order.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class StudentClassifier(nn.Module):
    def __init__(self, cfg: StudentConfig, vectors: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder = BiLSTMEncoder(cfg, vectors)
        features = 2 * cfg.hidden * (4 if cfg.pair else 1)
        self.classifier = nn.Sequential(nn.Linear(features, cfg.fc), nn.ReLU(), nn.Linear(cfg.fc, cfg.num_labels))

    # ---- what inference paths other than forward() need (distill.inference.fast, .onnx) -------------------------
    def embedding_table(self) -> torch.Tensor:
        """(V, E) the LSTM's input per word: [frozen, trainable] for multichannel, else the trainable table."""
        embed = self.encoder.embed
        table = embed.trainable.weight.detach().float()
        if embed.frozen is not None:
            table = torch.cat([embed.frozen.weight.detach().float(), table], dim=1)
        return table

    def lstm_weights(self, backward: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_ih (4H, E), W_hh (4H, H), b_ih, b_hh) of one direction, PyTorch gate order i, f, g, o."""
        return tuple(w.detach() for w in self.encoder.direction_weights(backward))

    def classifier_layers(self) -> tuple[nn.Linear, nn.Linear]:
        """(hidden FC, output FC); a ReLU sits between them."""
        return self.classifier[0], self.classifier[2]

    def forward(self, ids, lengths, ids2=None, lengths2=None) -> torch.Tensor:
        h1 = self.encoder(ids, lengths)
        if not self.cfg.pair:
            return self.classifier(h1)
        h2 = self.encoder(ids2, lengths2)
        return self.classifier(torch.cat([h1, h2, h1 * h2, (h1 - h2).abs()], dim=-1))


def count_parameters(model: nn.Module, include_embeddings: bool = True) -> int:
    """All parameters (frozen embedding copy included); without embeddings = the paper's 0.96M count."""
    return sum(p.numel() for name, p in model.named_parameters()
               if include_embeddings or ".embed." not in f".{name}")


def save_student(model: StudentClassifier, vocab: Vocab, path: str | Path, extra: dict | None = None) -> Path:
    with atomic_path(path) as tmp:
        tmp.mkdir()
        (tmp / CONFIG_FILE).write_text(json.dumps({**asdict(model.cfg), **(extra or {})}, indent=2) + "\n")
        vocab.save(tmp / VOCAB_FILE)
        torch.save(model.state_dict(), tmp / WEIGHTS_FILE)
    return Path(path)


def rerun_hint(path: Path) -> str:
    """What rewrites a model directory laid out as models/<task>/<student|baseline>."""
    path = Path(path)
    stage = {"student": "train_student", "baseline": "train_baseline"}.get(path.name)
    return f"dvc repro -f -s {stage}@{path.resolve().parent.name}" if stage else "the training stage"


def load_student(path: str | Path, map_location: str = "cpu") -> tuple[StudentClassifier, Vocab]:
    path = Path(path)
    check_published(path)
    if not (path / CONFIG_FILE).exists() or not (path / WEIGHTS_FILE).exists():
        raise UserError(f"{path}: not a student model directory (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        raw = json.loads((path / CONFIG_FILE).read_text())
        cfg = StudentConfig(**{k: raw[k] for k in StudentConfig.__dataclass_fields__})
    except (ValueError, KeyError) as err:
        raise UserError(f"{path / CONFIG_FILE}: not a student config ({type(err).__name__}: {err})") from None
    model = StudentClassifier(cfg)
    try:
        model.load_state_dict(torch.load(path / WEIGHTS_FILE, map_location=map_location, weights_only=True))
    except Exception as err:  # torch.load: RuntimeError / UnpicklingError / EOFError for a truncated or foreign file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise UserError(f"{path / WEIGHTS_FILE}: unreadable student weights ({type(err).__name__}: {first}); "
                        f"re-run `{rerun_hint(path)}`") from None
    model.eval()
    return model, Vocab.load(path / VOCAB_FILE)
