"""augment stage (§3.3): training set + synthetic examples (masking, POS-guided replacement, n-grams)
-> data/<task>/transfer.parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distill.augment import augment, transfer_table, write_table
from distill.io import get_logger, read_parquet, run_cli
from distill.params import pick, stage_params
from distill.tasks import get_task

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("augment")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes, sst2, qqp or mnli."),
    p_mask: Optional[float] = typer.Option(None, help="Per-word probability of [MASK]. Default: params.yaml."),
    p_pos: Optional[float] = typer.Option(None, help="Per-word probability of POS-guided replacement."),
    p_ng: Optional[float] = typer.Option(None, help="Per-example probability of n-gram sampling (n in 1..5)."),
    n_iter: Optional[int] = typer.Option(None, help="Synthetic candidates per training example (before dedup)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the PCG64 random stream."),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    spec = get_task(task)
    p = stage_params("augment", task, params_file)
    options = {"p_mask": p_mask, "p_pos": p_pos, "p_ng": p_ng, "n_iter": n_iter, "seed": seed}
    cfg = {key: pick(value, p, key) for key, value in options.items()}
    folder = data_dir / task
    cols = list(spec.text_columns)
    tag_cols = ["tags"] if len(cols) == 1 else ["tags1", "tags2"]
    train = read_parquet(folder / "train.parquet", columns=[*cols, "label"])
    postag = read_parquet(folder / "postag.parquet", columns=tag_cols)
    unigrams = read_parquet(folder / "tag_unigrams.parquet")
    log.info("read %s (%d rows), %s (%d rows), %s (%d (tag, word) pairs)", folder / "train.parquet", len(train),
             folder / "postag.parquet", len(postag), folder / "tag_unigrams.parquet", len(unigrams))
    log.info("augmenting with %s", cfg)
    synthetic = augment({c: train[c].astype(str).tolist() for c in cols},
                        {c: postag[t].tolist() for c, t in zip(cols, tag_cols)}, unigrams,
                        float(cfg["p_mask"]), float(cfg["p_pos"]), float(cfg["p_ng"]), int(cfg["n_iter"]),
                        int(cfg["seed"]))
    kept = len(synthetic["origin"])
    log.info("%d candidates, %d kept, %d duplicates discarded", synthetic["candidates"], kept,
             synthetic["candidates"] - kept)
    table = transfer_table(train, cols, synthetic)
    write_table(table, folder / "transfer.parquet")
    log.info("wrote %s (%d rows: %d original + %d synthetic)", folder / "transfer.parquet", table.num_rows,
             len(train), kept)


if __name__ == "__main__":
    run_cli(app)
