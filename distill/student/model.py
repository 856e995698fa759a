"""The student (§3.1, Figures 1-2): a one-layer BiLSTM over word embeddings, nothing added; and, as the paper's §6
proposes, other students distilled from the same logits (`arch`):

    bilstm  (the paper's) last hidden state of each direction, concatenated: 2 x hidden features
    cnn     Kim (2014): filters of widths 3, 4 and 5 over the embeddings, ReLU, max over each text's own windows
            (a text shorter than 5 tokens is padded with [PAD] to 5): 3 x filters features
    bow     bag of words (fastText-like): the mean and the max of each text's embeddings: 2 x embedding features
    linear  the mean of each text's embeddings straight into the output layer (no hidden FC)

Single sentence: encoder -> FC + ReLU -> FC -> logits (linear: encoder -> FC -> logits).
Pairs: one shared (siamese) encoder; features [h1, h2, h1*h2, |h1-h2|] -> the same classifier.
Embeddings: one trainable table, or `multichannel` (Kim 2014): a frozen copy and a trainable copy, concatenated.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from distill.io import UserError, atomic_path, check_published
from distill.student.params import ARCHS
from distill.student.vocab import Vocab

CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE = "config.json", "model.pt", "vocab.txt"
CNN_WIDTHS = (3, 4, 5)  # Kim (2014)'s filter widths


@dataclass
class StudentConfig:
    """A trained model's architecture, saved in its config.json (the params that chose it live in params.yaml).
    A width the architecture has no use for is 0 (hidden: bilstm only; filters: cnn only; fc: not linear)."""
    vocab_size: int
    embedding_dim: int
    hidden: int
    fc: int
    num_labels: int
    pair: bool
    multichannel: bool
    embeddings: str  # provenance only: which vectors initialised the table
    arch: str = "bilstm"  # one of ARCHS; a config.json written before there was a choice is a BiLSTM's
    filters: int = 0  # cnn: feature maps per filter width

    def problem(self) -> str | None:
        """Why this configuration builds no model, or None."""
        if self.arch not in ARCHS:
            return f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}"
        needed = {"bilstm": ("hidden", "fc"), "cnn": ("filters", "fc"), "bow": ("fc",), "linear": ()}[self.arch]
        for name in needed:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                return f"arch {self.arch} needs {name} >= 1, got {getattr(self, name)!r}"
        return None


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

    @property
    def output_dim(self) -> int:
        return 2 * self.lstm.hidden_size

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


def token_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) True where a position holds one of the row's tokens (lengths >= 1)."""
    return torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class CNNEncoder(nn.Module):
    """Kim (2014): one Conv1d per width of CNN_WIDTHS over the embeddings, ReLU, max over time.

    Each text counts as its tokens followed by [PAD] up to max(length, 5): width w reads the windows starting at
    0 .. max(length - w + 1, 1) - 1, none of them past that; the others (over a longer row's padding in the same
    batch) are masked to 0 after the ReLU, which cannot change a max over values >= 0. So a text's features do not
    depend on what it is batched with."""

    def __init__(self, cfg: StudentConfig, vectors: torch.Tensor | None = None):
        super().__init__()
        self.embed = Embedder(cfg, vectors)
        self.convs = nn.ModuleList(nn.Conv1d(self.embed.output_dim, cfg.filters, w) for w in CNN_WIDTHS)

    @property
    def output_dim(self) -> int:
        return len(self.convs) * self.convs[0].out_channels

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.to(ids.device).clamp(min=1)
        short = max(CNN_WIDTHS) - ids.shape[1]
        if short > 0:
            ids = F.pad(ids, (0, short), value=0)  # [PAD] is id 0
        x = self.embed(ids).transpose(1, 2)  # (B, D, T)
        pooled = []
        for conv in self.convs:
            y = conv(x).relu()  # (B, filters, T - w + 1)
            windows = (lengths - conv.kernel_size[0] + 1).clamp(min=1)
            pooled.append((y * token_mask(windows, y.shape[2]).unsqueeze(1)).amax(dim=2))
        return torch.cat(pooled, dim=1)


class BagEncoder(nn.Module):
    """Pooled embeddings of each text's own tokens: `pools` among mean and max, concatenated (bow: both; linear:
    the mean)."""

    def __init__(self, cfg: StudentConfig, vectors: torch.Tensor | None = None,
                 pools: tuple[str, ...] = ("mean", "max")):
        super().__init__()
        self.embed = Embedder(cfg, vectors)
        self.pools = pools

    @property
    def output_dim(self) -> int:
        return len(self.pools) * self.embed.output_dim

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)  # (B, T, D)
        lengths = lengths.to(x.device).clamp(min=1)
        inside = token_mask(lengths, x.shape[1]).unsqueeze(-1)
        out = []
        for pool in self.pools:
            if pool == "mean":
                out.append((x * inside).sum(dim=1) / lengths.unsqueeze(1).to(x.dtype))
            else:
                out.append(x.masked_fill(~inside, float("-inf")).amax(dim=1))
        return torch.cat(out, dim=-1)


def build_encoder(cfg: StudentConfig, vectors: torch.Tensor | None = None) -> nn.Module:
    problem = cfg.problem()
    if problem:
        raise ValueError(f"student config: {problem}")
    if cfg.arch == "bilstm":
        return BiLSTMEncoder(cfg, vectors)
    if cfg.arch == "cnn":
        return CNNEncoder(cfg, vectors)
    return BagEncoder(cfg, vectors, ("mean", "max") if cfg.arch == "bow" else ("mean",))


class StudentClassifier(nn.Module):
    def __init__(self, cfg: StudentConfig, vectors: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg, vectors)
        features = self.encoder.output_dim * (4 if cfg.pair else 1)
        if cfg.arch == "linear":
            self.classifier = nn.Sequential(nn.Linear(features, cfg.num_labels))
        else:
            self.classifier = nn.Sequential(nn.Linear(features, cfg.fc), nn.ReLU(),
                                            nn.Linear(cfg.fc, cfg.num_labels))

    # ---- what inference paths other than forward() need (distill.inference.fast, .onnx, .pooled) ---------------
    def embedding_table(self) -> torch.Tensor:
        """(V, E) the encoder's input per word: [frozen, trainable] for multichannel, else the trainable table."""
        embed = self.encoder.embed
        table = embed.trainable.weight.detach().float()
        if embed.frozen is not None:
            table = torch.cat([embed.frozen.weight.detach().float(), table], dim=1)
        return table

    def lstm_weights(self, backward: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_ih (4H, E), W_hh (4H, H), b_ih, b_hh) of one direction, PyTorch gate order i, f, g, o."""
        return tuple(w.detach() for w in self.encoder.direction_weights(backward))

    def classifier_layers(self) -> tuple[nn.Linear, ...]:
        """(hidden FC, output FC) with a ReLU between them; (output FC,) for the linear arch."""
        return tuple(m for m in self.classifier if isinstance(m, nn.Linear))

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
        fields = StudentConfig.__dataclass_fields__.values()
        cfg = StudentConfig(**{f.name: raw[f.name] for f in fields if f.name in raw or f.default is MISSING})
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path / CONFIG_FILE}: not a student config ({type(err).__name__}: {err})") from None
    if cfg.problem():
        raise UserError(f"{path / CONFIG_FILE}: {cfg.problem()}; re-run `{rerun_hint(path)}`")
    model = StudentClassifier(cfg)
    try:
        model.load_state_dict(torch.load(path / WEIGHTS_FILE, map_location=map_location, weights_only=True))
    except Exception as err:  # torch.load: RuntimeError / UnpicklingError / EOFError for a truncated or foreign file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise UserError(f"{path / WEIGHTS_FILE}: unreadable student weights ({type(err).__name__}: {first}); "
                        f"re-run `{rerun_hint(path)}`") from None
    model.eval()
    return model, Vocab.load(path / VOCAB_FILE)
