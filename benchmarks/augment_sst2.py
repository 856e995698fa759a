"""Benchmark: §3.3 augmentation of the full SST-2 training set (67,349 x n_iter 20 = 1.35M candidates) on ONE core,
including de-duplication and the Parquet write, as the augment stage does it (streamed). Goal: <= 60 s.

Needs data/sst2/{train,postag,tag_unigrams}.parquet:
    python stages/download.py --task sst2 --glue-mirror ../shared/glue && python stages/postag.py --task sst2
Run from the repository root: python benchmarks/augment_sst2.py
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/pyarrow start their pools

import tempfile
import time
from pathlib import Path
from typing import Optional

import pyarrow as pa
import typer


import _repo  # noqa: F401  (first: this checkout's distill/ on sys.path, never an installed copy)

from distill import config
from distill.data.augment import generate, write_transfer
from distill.data.params import AugmentParams
from distill.io import read_parquet, run_cli

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    data_dir: Path = typer.Option(Path("data"), help="Root of the per-task data folders."),
    task: str = typer.Option("sst2", help="Task whose training set is augmented."),
    params_file: Path = typer.Option(Path("params.yaml"), help="p_mask, p_pos, p_ng, n_iter, seed come from here."),
    core: int = typer.Option(-1, help="CPU to pin to (-1: the first one this process may use)."),
    n_iter: Optional[int] = typer.Option(None, help="Iterations instead of params.yaml's augment.n_iter."),
):
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0] if core < 0 else core})  # one core, as the goal states
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    p = config.load(AugmentParams, task, params_file, n_iter=n_iter)
    folder = data_dir / task
    train = read_parquet(folder / "train.parquet", columns=["sentence", "label"])
    tags = read_parquet(folder / "postag.parquet", columns=["tags"])["tags"].tolist()
    unigrams = read_parquet(folder / "tag_unigrams.parquet")
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        with generate({"sentence": train["sentence"].astype(str).tolist()}, {"sentence": tags}, unigrams,
                      p.p_mask, p.p_pos, p.p_ng, p.n_iter, p.seed, spill_dir=tmp, progress=False) as candidates:
            t_aug = time.perf_counter() - t0
            out = Path(tmp) / "transfer.parquet"
            write_transfer(out, train, ["sentence"], candidates)
            spill = sum(f.stat().st_size for f in Path(tmp).glob("candidates-*.arrow"))  # the disk it borrows
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        size = out.stat().st_size
    kept = candidates.kept
    print(f"task {task}: {len(train):,} examples x n_iter {p.n_iter} = {candidates.candidates:,} candidates, "
          f"{kept:,} synthetic rows kept ({candidates.candidates - kept:,} duplicates discarded)")
    print(f"wall {wall:.2f} s on 1 core (generate + spill {t_aug:.2f} s, dedup + Parquet write {wall - t_aug:.2f} s, "
          f"{size / 2**20:.1f} MiB; spilled candidates {spill / 1e6:.0f} MB on disk); process CPU {cpu:.2f} s; goal <= 60 s: {'met' if wall <= 60 else 'MISSED'}")
    print(f"load average before: {load_before[0]:.2f} (1 min) on {os.cpu_count()} cores; "
          f"after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    run_cli(app)
