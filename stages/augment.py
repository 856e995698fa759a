"""augment stage (§3.3): training set + synthetic examples (masking, POS-guided replacement, n-grams)
-> data/<task>/transfer.parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

import typer

from distill.cli import DataDir, PARAMS_FILE, ParamsFile, TaskName
from distill import config
from distill.data.params import AugmentParams as P
from distill.data.augment import generate, write_transfer
from distill.data.splits import load_split
from distill.io import atomic_path, get_logger, read_parquet, run_cli
from distill.layout import LABEL, TaskPaths, tag_columns
from distill.tasks import load_task

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("augment")


@app.command()
def main(
    task: TaskName,
    p_mask: Optional[float] = typer.Option(None, help=P.help("p_mask")),
    p_pos: Optional[float] = typer.Option(None, help=P.help("p_pos")),
    p_ng: Optional[float] = typer.Option(None, help=P.help("p_ng")),
    n_iter: Optional[int] = typer.Option(None, help=P.help("n_iter")),
    seed: Optional[int] = typer.Option(None, help=P.help("seed")),
    data_dir: DataDir = Path("data"),
    params_file: ParamsFile = PARAMS_FILE,
):
    cfg = config.load(P, task, params_file, p_mask=p_mask, p_pos=p_pos, p_ng=p_ng, n_iter=n_iter, seed=seed)
    paths = TaskPaths(task, data_root=data_dir)
    spec = load_task(paths)
    cols = list(spec.text_columns)
    tag_cols = tag_columns(spec.text_columns)
    train = load_split(paths, spec, "train")[[*cols, LABEL]]
    postag = read_parquet(paths.postag, columns=tag_cols)
    unigrams = read_parquet(paths.tag_unigrams)
    log.info("read %s (%d rows), %s (%d rows), %s (%d (tag, word) pairs)", paths.train, len(train), paths.postag,
             len(postag), paths.tag_unigrams, len(unigrams))
    log.info("augmenting with %s", cfg)
    # candidates spill into the output's scratch dir, which atomic_path removes with the temporary file
    with atomic_path(paths.transfer) as tmp, \
            generate({c: train[c].astype(str).tolist() for c in cols},
                     {c: postag[t].tolist() for c, t in zip(cols, tag_cols)}, unigrams,
                     cfg.p_mask, cfg.p_pos, cfg.p_ng, cfg.n_iter, cfg.seed, spill_dir=tmp.parent) as candidates:
        write_transfer(tmp, train, cols, candidates, progress=True)
    kept = candidates.kept
    log.info("%d candidates, %d kept, %d duplicates discarded", candidates.candidates, kept,
             candidates.candidates - kept)
    if candidates.collisions:  # told apart on the strings; the output does not depend on the hash
        log.info("%d hash collisions among the candidates' keys", candidates.collisions)
    log.info("wrote %s (%d rows: %d original + %d synthetic)", paths.transfer, len(train) + kept, len(train), kept)


if __name__ == "__main__":
    run_cli(app)
