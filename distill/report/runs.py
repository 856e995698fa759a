"""The report stage's work: the expensive stages' run folders (models/<task>/runs/<stage>/, cached by DVC) copied
into metrics/<task>/, the git-tracked folder that `dvc metrics`, `dvc plots` and `dvc exp show` read.

Each run folder is laid out as metrics/<task>/ is (scores and speed.json at the top, plots/, reports/), so the copy
is a merge of folders; two stages writing the same file is an error, never a silent overwrite."""
from __future__ import annotations

import shutil
from pathlib import Path

from distill.io import UserError, check_published
from distill.layout import RUN_STAGES, TaskPaths

# What metrics/<task>/ may hold, by top-level name: exactly what dvc.yaml declares as the report stage's outputs.
TOP_LEVEL = ("plots", "reports", "teacher.json", "student.json", "baseline.json", "speed.json")


def collect(paths: TaskPaths) -> dict[Path, Path]:
    """{path relative to metrics/<task>/: the run-folder file it comes from}, over every stage of RUN_STAGES."""
    files: dict[Path, Path] = {}
    for stage in RUN_STAGES:
        root = paths.run(stage)
        check_published(root)
        if not root.is_dir():
            raise UserError(f"{root}: missing; run `dvc repro {stage}@{paths.task}` first")
        for source in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = source.relative_to(root)
            if rel.parts[0] not in TOP_LEVEL:
                raise UserError(f"{source}: {rel.parts[0]} is not one of metrics/<task>/'s {', '.join(TOP_LEVEL)}")
            if rel in files:
                raise UserError(f"{source}: {rel} is written by two stages (also {files[rel]})")
            files[rel] = source
    return files


def copy_into(files: dict[Path, Path], targets: dict[str, Path]) -> None:
    """Copy `files` (from collect) under the temporary folders/files `targets` (top-level name -> path)."""
    for name, target in targets.items():
        if name.endswith(".json"):
            continue
        target.mkdir(parents=True, exist_ok=True)
    for rel, source in files.items():
        if len(rel.parts) == 1:
            dest = targets[rel.parts[0]]
        else:
            dest = targets[rel.parts[0]].joinpath(*rel.parts[1:])
            dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
