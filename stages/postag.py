"""postag stage: Penn Treebank tags of every training sentence -> data/<task>/postag.parquet + tag_unigrams.parquet."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from distill.io import get_logger, read_parquet, run_cli, write_parquet
from distill.params import pick, stage_params
from distill.postag import prepare_tagger, tag_frame
from distill.tasks import get_task

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("postag")


@app.command()
def main(
    task: str = typer.Option(..., help="Task: rotten_tomatoes, sst2, qqp or mnli."),
    tagger: Optional[str] = typer.Option(
        None, help="Model source: auto (NLTK's if installed, else nltk.download, else textblob), nltk "
        "(nltk.download only) or textblob (textblob-aptagger's model, offline). Default: params.yaml postag.tagger."),
    nltk_dir: Optional[Path] = typer.Option(
        None, help="Where downloaded/converted tagger models are kept. Default: $BILSTM_DISTILL_CACHE or "
        "~/.cache/bilstm-distill."),
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    spec = get_task(task)
    p = stage_params("postag", task, params_file)
    source = pick(tagger, p, "tagger")
    train_path = data_dir / task / "train.parquet"
    train = read_parquet(train_path, columns=list(spec.text_columns))
    log.info("read %s (%d rows)", train_path, len(train))
    model, used = prepare_tagger(source, nltk_dir)
    postag, unigrams = tag_frame(model, train, spec.text_columns)
    out = data_dir / task
    write_parquet(postag, out / "postag.parquet")
    log.info("wrote %s (%d rows, tagger: %s)", out / "postag.parquet", len(postag), used)
    write_parquet(unigrams, out / "tag_unigrams.parquet")
    log.info("wrote %s (%d (tag, word) pairs, %d tags)", out / "tag_unigrams.parquet", len(unigrams),
             unigrams["tag"].nunique())


if __name__ == "__main__":
    run_cli(app)
