"""Classify sentences with a trained student/baseline (or teacher) directory; not a DVC stage.

Input: one example per line from stdin or --input (pairs: two tab-separated fields). Output, one line per
example: label<TAB>p0<TAB>p1... (softmax probabilities). Text is normalised like the training data.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from distill.evaluate import model_kind, read_rows, student_predictor, teacher_predictor
from distill.io import UserError, run_cli

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    model: Path = typer.Option(..., help="models/<task>/student, .../baseline or .../teacher."),
    input: Optional[Path] = typer.Option(None, help="Text file (one example per line); default: stdin."),
    batch_size: int = typer.Option(128, help="Inference batch size."),
):
    kind = model_kind(model)
    predict, info = student_predictor(model, batch_size) if kind == "student" else teacher_predictor(model, batch_size)
    if input is not None and not input.exists():
        raise UserError(f"{input}: file not found")
    lines = (input.read_text(encoding="utf-8") if input is not None else sys.stdin.read()).splitlines()
    columns = read_rows(lines, (2 if info["pair"] else 1) if "pair" in info else None)
    logits = predict(columns).astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    out = sys.stdout
    for label, p in zip(probs.argmax(axis=1), probs):
        out.write("\t".join([str(int(label)), *(f"{x:.4f}" for x in p)]) + "\n")


if __name__ == "__main__":
    run_cli(app)
