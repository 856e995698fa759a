"""Atomic file output, hashing and logging shared by every stage.

Every writer goes to a temporary sibling path and is renamed into place only when complete, so a failed or
interrupted stage never leaves a partial output and never clobbers a good one. A stage's set of outputs is renamed
one by one (they live in several folders, which DVC names one by one), so `publish` marks the set before the first
rename and clears the marks after the last; a reader that finds a mark refuses the file (`check_published`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class UserError(Exception):
    """Bad input or configuration: reported as one line, exit status 2, no traceback."""


def get_logger(name: str) -> logging.Logger:
    """A module's logger; handlers are set up once by `run_cli` (a library import configures nothing)."""
    return logging.getLogger(name)


def setup_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("DISTILL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


TMP_DIR = ".distill-tmp"  # one scratch folder per output folder; never an output itself
# <folder>/.distill-publishing/<name>.json: <folder>/<name> belongs to a set of outputs being renamed into place
PUBLISHING_DIR = ".distill-publishing"
T = TypeVar("T")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_shared_folder(write: Callable[[], T]) -> T:
    """Run `write`, which makes a shared helper folder (.distill-tmp/, .distill-publishing/) and writes into it,
    again when another process (e.g. an accelerate rank) creates or removes that folder under it: mkdir then fails
    with "exists" although the folder is gone by the time it looks, or the write finds no folder."""
    for attempt in range(20):
        try:
            return write()
        except (FileNotFoundError, FileExistsError):
            if attempt == 19:
                raise


def _scratch(parent: Path, name: str) -> Path:
    """A fresh scratch dir for `name` under parent/.distill-tmp/, after clearing what dead processes left there
    (a kill -9 mid-write leaves its scratch dir behind; the next write in that folder removes it)."""
    root = parent / TMP_DIR

    def make() -> Path:
        root.mkdir(parents=True, exist_ok=True)
        for entry in root.iterdir():
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{name}.", dir=root))

    return _in_shared_folder(make)


def _drop_scratch(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(OSError):
        tmp.parent.rmdir()  # only when empty: another writer may be using it


def _marker(path: Path) -> Path:
    return path.parent / PUBLISHING_DIR / f"{path.name}.json"


def _mark_publishing(paths: list[Path]) -> list[Path]:
    """Mark every path of the set as being published (all marks are written before the first rename)."""
    record = json.dumps({"outputs": [str(p) for p in paths], "command": sys.argv})
    markers = [_marker(path) for path in paths]
    for marker in markers:
        _in_shared_folder(lambda: (marker.parent.mkdir(exist_ok=True), marker.write_text(record)))  # called at once
    return markers


def _clear_marks(markers: list[Path]) -> None:
    for marker in markers:
        marker.unlink(missing_ok=True)
    for folder in dict.fromkeys(m.parent for m in markers):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty


@contextlib.contextmanager
def publish(*paths: str | Path) -> Iterator[list[Path]]:
    """Temporary paths for a set of outputs, renamed onto `paths` only once the block has written them all.

    Files and directories alike (a directory target is replaced whole: the old one is renamed aside, then the new
    one in). A failure or kill inside the block leaves the old outputs untouched and no partial file beside them,
    only scratch under .distill-tmp/ that the next run clears. The renames run back to back at the end; a set of
    several paths is marked under .distill-publishing/ first and unmarked after the last rename, so a kill between
    two renames leaves marks that make `check_published` refuse every file of the set until a run of the stage
    publishes it whole."""
    paths = [Path(p) for p in paths]
    scratch = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch.append(_scratch(path.parent, path.name))
        targets = [tmp / path.name for tmp, path in zip(scratch, paths)]
        yield targets
        for target, path in zip(targets, paths):
            if not target.exists():
                raise RuntimeError(f"nothing was written for {path}")
        markers = _mark_publishing(paths) if len(paths) > 1 else []
        for tmp, target, path in zip(scratch, targets, paths):
            if path.is_dir() and not path.is_symlink():
                os.replace(path, tmp / f"replaced-{path.name}")  # one rename, never a half-deleted folder
            os.replace(target, path)
        _clear_marks(markers)
    finally:
        for tmp in scratch:
            _drop_scratch(tmp)


def _rerun_hint(command: list[str]) -> str:
    """`dvc repro -f -s <stage>@<task>` for a command line `stages/<script>.py [kind] --task <task> ...`."""
    if not command or Path(command[0]).parent.name != "stages":
        return "re-run the stage that writes it"
    stage = Path(command[0]).stem
    if len(command) > 1 and not command[1].startswith("-"):
        stage += f"_{command[1]}"  # stages/train.py student -> train_student
    task = next((b for a, b in zip(command, command[1:]) if a == "--task"), None)
    task = task or next((a.split("=", 1)[1] for a in command if a.startswith("--task=")), None)
    return f"re-run it: dvc repro -f -s {stage}@{task}" if task else f"re-run {stage}"


def _half_published(path: Path, marker: Path) -> str:
    try:
        record = json.loads(marker.read_text())
        outputs, command = [str(p) for p in record["outputs"]], [str(a) for a in record["command"]]
    except (OSError, ValueError, KeyError, TypeError):  # killed while writing the mark itself
        outputs, command = [], []
    parents = {str(Path(o).parent) for o in outputs}
    listed = (f"{parents.pop()}/{{{', '.join(Path(o).name for o in outputs)}}}" if len(parents) == 1
              else ", ".join(outputs)) or "its set"
    hint = _rerun_hint(command)
    if command and Path(command[0]).parent.name == "stages":  # a stage runs as `python -m stages.<name>`
        command = ["-m", f"stages.{Path(command[0]).stem}", *command[1:]]
    ran = f"`python {shlex.join(command)}`" if command else "a stage"
    try:
        marker = marker.relative_to(Path.cwd())
    except ValueError:
        pass
    return (f"{path}: half-published: {ran} stopped while renaming {listed} into place, so new and old files "
            f"may be mixed (marked in {marker}); {hint}")


def check_published(path: str | Path) -> None:
    """Refuse a stage input (file or folder) of a set whose publication did not finish: a mark for it or for a
    folder holding it, or, for a folder, a mark inside it. One UserError line naming the set and the re-run."""
    given = Path(path)
    here = Path(os.path.abspath(given))
    for member in (here, *here.parents):
        if not member.name:
            break
        marker = _marker(member)
        if marker.exists():
            raise UserError(_half_published(given, marker))
    if here.is_dir():
        for marker in sorted(here.rglob(f"{PUBLISHING_DIR}/*.json")):
            raise UserError(_half_published(given, marker))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path for `path`; rename it onto `path` only if the block succeeds."""
    with publish(path) as (target,):
        yield target


def write_parquet(df: pd.DataFrame, path: str | Path, row_group_size: int | None = None) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow", row_group_size=row_group_size)
    return Path(path)


def write_json(obj, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return Path(path)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A stage input; a missing, truncated or column-less file is one line naming it (re-run what writes it)."""
    path = Path(path)
    check_published(path)
    if not path.exists():
        raise UserError(f"{path}: file not found (run the stage that produces it first, e.g. `dvc repro`)")
    try:
        names = pq.read_schema(path).names
        missing = [c for c in columns or [] if c not in names]
        if missing:
            raise UserError(f"{path}: missing column(s) {missing}; re-run the stage that writes it")
        return pd.read_parquet(path, columns=columns)
    except (pa.ArrowException, OSError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"{path}: unreadable Parquet ({first}); re-run the stage that writes it "
                        f"(dvc repro --force-downstream ...)") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def run_cli(app) -> None:
    """Run a Typer app, turning UserError into a one-line message and exit status 2."""
    setup_logging()
    try:
        app(standalone_mode=False)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as err:  # usage errors come through here with standalone_mode=False
        # Typer ships its own copy of click (typer._click): recognise its exceptions by shape, not by class
        if callable(getattr(err, "show", None)) and isinstance(getattr(err, "exit_code", None), int):
            err.show()
            sys.exit(err.exit_code)
        if type(err).__name__ == "Abort":
            sys.exit(1)
        raise
