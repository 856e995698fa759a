"""augment stage (§3.3): training set + synthetic examples (masking, POS-guided replacement, n-grams)
-> data/<task>/transfer.parquet, and transfer_iterations.parquet (the augment iteration of each row)."""
from __future__ import annotations

from pathlib import Path

import typer

from distill import config
from distill.cli import DataDir, PARAMS_FILE, ParamsFile, Settings, TaskName, settings_help
from distill.data.augment import generate, write_transfer
from distill.data.params import AugmentParams
from distill.data.splits import load_split
from distill.io import get_logger, publish, read_parquet, run_cli
from distill.layout import LABEL, TaskPaths, tag_columns
from distill.tasks import load_task

SETTINGS = (AugmentParams,)
app = typer.Typer(add_completion=False)
log = get_logger("augment")


@app.command(help=__doc__, epilog=settings_help(*SETTINGS))
def main(task_name: TaskName, settings: Settings = None, data_dir: DataDir = Path("data"),
         params_file: ParamsFile = PARAMS_FILE):
    (cfg,) = config.load_all(SETTINGS, task_name, params_file, settings)
    paths = TaskPaths(task_name, data_root=data_dir)
    task = load_task(paths)
    cols = list(task.text_columns)
    tag_cols = tag_columns(task.text_columns)
    train = load_split(paths, task, "train")[[*cols, LABEL]]
    postag = read_parquet(paths.postag, columns=tag_cols)
    unigrams = read_parquet(paths.tag_unigrams)
    log.info("read %s (%d rows), %s (%d rows), %s (%d (tag, word) pairs)", paths.train, len(train), paths.postag,
             len(postag), paths.tag_unigrams, len(unigrams))
    log.info("augmenting with %s", cfg)
    # candidates spill into the output's scratch dir, which publish removes with the temporary files
    with publish(paths.transfer, paths.transfer_iterations) as (tmp, tmp_iterations), \
            generate({c: train[c].astype(str).tolist() for c in cols},
                     {c: postag[t].tolist() for c, t in zip(cols, tag_cols)}, unigrams,
                     cfg.p_mask, cfg.p_pos, cfg.p_ng, cfg.n_iter, cfg.seed, spill_dir=tmp.parent) as candidates:
        write_transfer(tmp, train, cols, candidates, progress=True, iterations_path=tmp_iterations)
    kept = candidates.kept
    log.info("%d candidates, %d kept, %d duplicates discarded", candidates.candidates, kept,
             candidates.candidates - kept)
    if candidates.collisions:  # told apart on the strings; the output does not depend on the hash
        log.info("%d hash collisions among the candidates' keys", candidates.collisions)
    log.info("wrote %s (%d rows: %d original + %d synthetic) and %s", paths.transfer, len(train) + kept, len(train),
             kept, paths.transfer_iterations)


if __name__ == "__main__":
    run_cli(app)
