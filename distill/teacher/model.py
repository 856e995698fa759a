"""The BERT teacher (§4): loading a fine-tuned teacher and fast batched logits.

`load_teacher` and `teacher_logits` are the interface other stages use (evaluate, benchmark, teacher_logits);
fine-tuning lives in `finetune.py`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.io import UserError, check_published, get_logger
from distill.layout import MASK as MASK_WORD
from distill import runtime

log = get_logger("teacher")


# ---------------------------------------------------------------------------------------------------------------
# Loading models
# ---------------------------------------------------------------------------------------------------------------

def load_tokenizer(source: str, local: bool):
    try:
            tok = AutoTokenizer.from_pretrained(source, local_files_only=local)
    except OSError as err:  # not a hub id, no network, or no tokenizer files: one line, not 370
        raise UserError(f"{source}: cannot load a tokenizer ({(str(err).splitlines() or [''])[0][:160]}); "
                        "teacher.model must be minilm, mpnet, a local model directory or a hub id reachable "
                        "from here") from None
    check_mask_token(tok)
    return tok


def check_mask_token(tokenizer) -> None:
    """The augmented text carries `[MASK]` as a word; it must reach the model as the mask token's single id."""
    if tokenizer.mask_token is None:
        log.warning("tokenizer has no mask token: [MASK] in augmented text will be split into word pieces")
        return
    ids = tokenizer(prepare_texts([f"a {MASK_WORD} b"], tokenizer)[0], add_special_tokens=False)["input_ids"]
    if tokenizer.mask_token_id not in ids:
        raise UserError(f"tokenizer splits {MASK_WORD} into pieces {tokenizer.convert_ids_to_tokens(ids)}")


def prepare_texts(texts: Sequence[str] | None, tokenizer) -> list[str] | None:
    """Map the literal `[MASK]` word onto the tokenizer's own mask token (e.g. RoBERTa's `<mask>`)."""
    if texts is None:
        return None
    texts = [str(t) for t in texts]
    mask = tokenizer.mask_token
    if mask and mask != MASK_WORD:
        texts = [t.replace(MASK_WORD, mask) for t in texts]
    return texts


def load_teacher(path: str | Path, device: str | torch.device | None = None):
    """A fine-tuned teacher dir (save_pretrained of model + tokenizer) -> (model in eval mode, tokenizer)."""
    path = Path(path)
    check_published(path)
    if not (path / "config.json").exists():
        raise UserError(f"{path}: no teacher model there (run the finetune_teacher stage first)")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
    except Exception as err:  # a truncated or foreign weights file: SafetensorError, RuntimeError, OSError, ...
        if isinstance(err, (KeyboardInterrupt, MemoryError, UserError)):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        weights = next((path / f for f in ("model.safetensors", "pytorch_model.bin") if (path / f).exists()), path)
        raise UserError(f"{weights}: unreadable teacher weights ({type(err).__name__}: {first}); re-run "
                        f"`dvc repro -f -s finetune_teacher@{path.resolve().parent.name}`") from None
    tokenizer = load_tokenizer(str(path), local=True)
    model.to(torch.device(device) if device is not None else runtime.device()).eval()
    return model, tokenizer


# ---------------------------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------------------------

def encode(tokenizer, first: Sequence[str], second: Sequence[str] | None,
           max_length: int) -> list[tuple[list[int], list[int] | None]]:
    """(token ids, segment ids or None), unpadded; pairs jointly as [CLS] s1 [SEP] s2 [SEP]."""
    if not len(first):  # the fast tokenizers fail on an empty batch
        return []
    enc = tokenizer(prepare_texts(first, tokenizer), prepare_texts(second, tokenizer), truncation=True,
                    max_length=max_length, padding=False, return_attention_mask=False,
                    return_token_type_ids=second is not None and uses_token_types(tokenizer))
    if "token_type_ids" not in enc:
        return [(ids, None) for ids in enc["input_ids"]]
    return list(zip(enc["input_ids"], enc["token_type_ids"]))


def uses_token_types(tokenizer) -> bool:
    """BERT takes segment ids; RoBERTa/DistilBERT-style models do not accept them."""
    return "token_type_ids" in tokenizer.model_input_names


def pad_batch(items: list, pad_id: int, with_types: bool = True) -> dict[str, torch.Tensor]:
    """Pad to the batch's longest sequence (dynamic padding)."""
    width = max(len(ids) for ids, _ in items)
    input_ids = np.full((len(items), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(items), width), dtype=np.int64)
    types = np.zeros((len(items), width), dtype=np.int64)
    for row, (ids, tt) in enumerate(items):
        input_ids[row, :len(ids)] = ids
        mask[row, :len(ids)] = 1
        if tt is not None:
            types[row, :len(tt)] = tt
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if with_types:
        batch["token_type_ids"] = torch.from_numpy(types)
    return batch


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches of similar length, so dynamic padding wastes little compute. Longest first: an
    out-of-memory shows up at once, and the progress bar's rate then only improves."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def teacher_logits(model, tokenizer, first: Sequence[str], second: Sequence[str] | None = None,
                   *, batch_size: int, max_length: int, bf16: bool = False, progress: bool = True) -> np.ndarray:
    """Logits (float32, (N, num_labels)) in input order; batches sorted by token length, padded dynamically."""
    return encoded_logits(model, tokenizer, encode(tokenizer, first, second, max_length), batch_size=batch_size,
                          bf16=bf16, progress=progress)


def token_count(items: Sequence[tuple]) -> int:
    """Tokens in `encode`'s output, special tokens included, padding excluded: what the teacher reads."""
    return sum(len(ids) for ids, _ in items)


def throughput(rows: int, tokens: int, wall_s: float) -> dict:
    """A teacher stage's rate for its report: rows and teacher tokens (special tokens in, padding out) a second."""
    wall_s = max(wall_s, 1e-9)
    return {"rows_per_s": round(rows / wall_s, 1), "tokens_per_s": round(tokens / wall_s, 1)}


@torch.inference_mode()
def encoded_logits(model, tokenizer, items: Sequence[tuple], *, batch_size: int, bf16: bool = False,
                   progress: bool = True) -> np.ndarray:
    """`teacher_logits` of examples already tokenized by `encode`."""
    n = len(items)
    num_labels = model.config.num_labels
    out = np.empty((n, num_labels), dtype=np.float32)
    if n == 0:
        return out
    batches = length_sorted_batches([len(ids) for ids, _ in items], batch_size)
    device = next(model.parameters()).device
    with_types = uses_token_types(tokenizer)
    was_training = model.training
    model.eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(bf16))
    with autocast, tqdm(total=n, desc="teacher logits", unit="ex", disable=not progress, leave=False) as bar:
        for idx in batches:
            batch = pad_batch([items[i] for i in idx], tokenizer.pad_token_id or 0, with_types)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            out[idx] = model(**batch).logits.float().cpu().numpy()
            bar.update(len(idx))
    model.train(was_training)
    return out
