"""Classify sentences with an exported folder (models/<task>/export/student: onnxruntime, no torch) or a trained
student/baseline (or teacher) directory; not a DVC stage.

Input: one example per line from stdin or --input (pairs: two tab-separated fields), read as UTF-8 with bad
bytes replaced (and counted on stderr). Lines end at "\\n" only (a trailing "\\r" is dropped): any other character
(U+2028, U+0085, form feed, \\v, \\x1c-\\x1e ...) is part of its line, so there is exactly one answer per input line.
Output: a header `label<TAB>p_<class 0><TAB>p_<class 1>...` naming the classes (from the model's task.json or
export.json), then one line per input line, in order: the label name and the softmax probabilities; a blank input
line gets a blank output line. Text is normalised as the task's training data was (distill.inference.predictor);
a teacher directory truncates at the max_length it was fine-tuned with (its training.json) unless
--set teacher.max_length=N says otherwise.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from distill import config
from distill.cli import PARAMS_FILE, ParamsFile, Settings, settings_help
from distill.config import PredictRuntime
from distill.inference.predictor import Predictor, ServingError
from distill.io import UserError, get_logger, run_cli
from distill.report.params import EvaluateParams

SETTINGS = (EvaluateParams, PredictRuntime)
app = typer.Typer(add_completion=False)
log = get_logger("predict")


def read_lines(data: bytes, source: str) -> list[str]:
    """The input's lines: split on "\\n" only, a trailing "\\r" dropped (CRLF files), no final empty line."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
    if bad:
        log.warning("%s: %d undecodable byte sequence(s) replaced by U+FFFD", source, bad)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line starts no new one
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def split_fields(lines: list[str], pair: bool | None) -> list[list[str]]:
    """Text columns from tab-separated lines (pair: 2 fields, single: 1, None: 1 or 2, the same on every line)."""
    rows = [line.split("\t") for line in lines]
    counts = {len(r) for r in rows}
    fields = None if pair is None else 2 if pair else 1
    if len(counts) != 1 or (fields is not None and counts != {fields}) or not counts <= {1, 2}:
        want = f"{fields}" if fields is not None else "1 or 2 (the same on every line)"
        raise UserError(f"every input line needs {want} tab-separated field(s); got {sorted(counts)}")
    return [[r[i] for r in rows] for i in range(counts.pop())]


@app.command(help=__doc__, epilog=settings_help(*SETTINGS))
def main(
    model: Path = typer.Option(..., help="An export folder (models/<task>/export/student or .../baseline: "
                               "onnxruntime) or a model directory (models/<task>/student, .../baseline or "
                               ".../teacher: torch)."),
    input: Optional[Path] = typer.Option(None, help="Text file (one example per line); default: stdin."),
    threads: int = typer.Option(1, help="onnxruntime intra-op threads for an export folder."),
    settings: Settings = None,
    params_file: ParamsFile = PARAMS_FILE,
):
    given = config.parse_settings(settings, *SETTINGS)
    cfg, run = (config.load(cls, None, params_file, given) for cls in SETTINGS)
    # a teacher truncates as it was fine-tuned (its training.json records max_length), unless --set says otherwise
    max_length = cfg.max_length if EvaluateParams.key("max_length") in given else None
    try:
        predictor = Predictor.load(model, threads=threads, batch_size=run.eval_batch_size, max_length=max_length)
        if input is not None and not input.is_file():
            raise UserError(f"{input}: file not found")
        lines = read_lines(input.read_bytes() if input is not None else sys.stdin.buffer.read(),
                           str(input) if input is not None else "stdin")
        filled = [i for i, line in enumerate(lines) if line.strip()]
        answers = [""] * len(lines)
        if filled:
            columns = split_fields([lines[i] for i in filled], predictor.pair)
            out = (predictor.predict_pairs(*columns) if len(columns) == 2 else predictor.predict(columns[0]))
            for i, label, p in zip(filled, out.labels, out.probs):
                answers[i] = "\t".join([label, *(f"{x:.4f}" for x in p)])
    except ServingError as err:
        raise UserError(str(err)) from None
    # a header naming each probability's class, then one answer per input line (blank in, blank out)
    sys.stdout.write("\t".join(["label", *(f"p_{name}" for name in predictor.label_names)]) + "\n")
    sys.stdout.write("".join(a + "\n" for a in answers))


if __name__ == "__main__":
    run_cli(app)
