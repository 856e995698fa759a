"""Classify sentences with a trained student/baseline (or teacher) directory; not a DVC stage.

Input: one example per line from stdin or --input (pairs: two tab-separated fields), read as UTF-8 with bad
bytes replaced (and counted on stderr). Output: a header `label<TAB>p_<class 0><TAB>p_<class 1>...` naming the
classes (from the model's task.json), then one line per input line, in order: the label name and the softmax
probabilities; a blank input line gets a blank output line. Text is normalised as the task's training data was.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's distill, never an installed copy

import numpy as np  # noqa: E402
import typer  # noqa: E402

from distill import config  # noqa: E402
from distill.config import RuntimeParams  # noqa: E402
from distill.report.params import EvaluateParams  # noqa: E402
from distill.io import UserError, get_logger, run_cli  # noqa: E402
from distill.report.evaluate import (model_kind, model_task, read_rows, student_predictor,  # noqa: E402
                                     teacher_predictor)

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("predict")


def read_lines(data: bytes, source: str) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
    if bad:
        log.warning("%s: %d undecodable byte sequence(s) replaced by U+FFFD", source, bad)
    return text.splitlines()


@app.command()
def main(
    model: Path = typer.Option(..., help="models/<task>/student, .../baseline or .../teacher."),
    input: Optional[Path] = typer.Option(None, help="Text file (one example per line); default: stdin."),
    eval_batch_size: Optional[int] = typer.Option(None, help=RuntimeParams.help("eval_batch_size")),
    max_length: Optional[int] = typer.Option(None, help=EvaluateParams.help("max_length")),
    params_file: Path = typer.Option(Path("params.yaml"), help="Where option defaults come from."),
):
    run = config.load(RuntimeParams, None, params_file, eval_batch_size=eval_batch_size)
    kind = model_kind(model)
    if kind == "student":
        predict, info = student_predictor(model, run.eval_batch_size)
    else:
        cfg = config.load(EvaluateParams, None, params_file, max_length=max_length)
        predict, info = teacher_predictor(model, run.eval_batch_size, cfg.max_length)
    if input is not None and not input.is_file():
        raise UserError(f"{input}: file not found")
    lines = read_lines(input.read_bytes() if input is not None else sys.stdin.buffer.read(),
                       str(input) if input is not None else "stdin")
    names, lowercase, tokenize = model_task(model, info["num_labels"])
    filled = [i for i, line in enumerate(lines) if line.strip()]
    answers = [""] * len(lines)
    if filled:
        columns = read_rows([lines[i] for i in filled], (2 if info["pair"] else 1) if "pair" in info else None,
                            lowercase, tokenize)
        logits = predict(columns).astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for i, label, p in zip(filled, probs.argmax(axis=1), probs):
            answers[i] = "\t".join([names[int(label)], *(f"{x:.4f}" for x in p)])
    # a header naming each probability's class, then one answer per input line (blank in, blank out)
    sys.stdout.write("\t".join(["label", *(f"p_{name}" for name in names)]) + "\n")
    sys.stdout.write("".join(a + "\n" for a in answers))


if __name__ == "__main__":
    run_cli(app)
