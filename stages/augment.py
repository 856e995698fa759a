"""augment stage (§3.3): training set + synthetic examples (masking, POS-guided replacement, n-grams)
-> data/<task>/transfer.parquet."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's distill, never an installed copy

import typer  # noqa: E402

from distill import config  # noqa: E402
from distill.data.params import AugmentParams as P  # noqa: E402
from distill.data.augment import generate, write_transfer  # noqa: E402
from distill.data.splits import load_split  # noqa: E402
from distill.io import atomic_path, get_logger, read_parquet, run_cli  # noqa: E402
from distill.layout import LABEL, TaskPaths, tag_columns  # noqa: E402
from distill.tasks import load_task  # noqa: E402

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("augment")


@app.command()
def main(
    task: str = typer.Option(..., help="Task name (an entry of tasks:/datasets:); its shape is read from data/<task>/task.json."),
    p_mask: Optional[float] = typer.Option(None, help=P.help("p_mask")),
    p_pos: Optional[float] = typer.Option(None, help=P.help("p_pos")),
    p_ng: Optional[float] = typer.Option(None, help=P.help("p_ng")),
    n_iter: Optional[int] = typer.Option(None, help=P.help("n_iter")),
    seed: Optional[int] = typer.Option(None, help=P.help("seed")),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
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
