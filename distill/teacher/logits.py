"""Teacher logits for every row of transfer.parquet, resumable and shardable across processes.

The rows are cut into shards of `shard_rows`. Each completed shard is written (atomically) to its own part file in
a work dir next to the output; a killed run skips the parts already there. Process `p` of `n` takes the shards
`i` with `i % n == p`; once every part exists the main process streams them, in order, into the final Parquet
file (one row group per part, so memory stays at one shard) and renames it into place. A fingerprint of the
inputs and settings guards the work dir: parts made from other inputs are thrown away, never mixed in.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill.io import UserError, atomic_path, check_published, get_logger, sha256_file
from distill.layout import LABEL, LOGITS, ORIGIN, SYNTHETIC, TEACHER_LABEL
from distill.tasks import Task
from distill.teacher.model import encode, encoded_logits, token_count

log = get_logger("teacher_logits")

PASSTHROUGH = (LABEL, SYNTHETIC, ORIGIN)


def work_dir_for(out_path: Path) -> Path:
    return out_path.parent / f".{out_path.stem}.parts"


def part_path(work_dir: Path, shard: int) -> Path:
    return work_dir / f"part-{shard:06d}.parquet"


def fingerprint(transfer_path: Path, model_dir: Path, settings: dict) -> str:
    """What the parts depend on: the input rows, the teacher's files, and settings that change the numbers."""
    digest = hashlib.sha256()
    digest.update(sha256_file(transfer_path).encode())
    for f in sorted(p for p in Path(model_dir).rglob("*") if p.is_file()):
        stat = f.stat()  # size + mtime: hashing a 1.3 GB bert-large on every resume would be slow
        digest.update(f"{f.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def prepare_work_dir(work_dir: Path, fp: str, num_rows: int, shard_rows: int) -> None:
    """Keep the parts of an interrupted run with the same fingerprint; start afresh otherwise. Main process only."""
    meta_path = work_dir / "meta.json"
    meta = {"fingerprint": fp, "num_rows": num_rows, "shard_rows": shard_rows}
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text())
        except ValueError:
            old = None
        if old == meta:
            done = len(list(work_dir.glob("part-*.parquet")))
            if done:
                log.info("resuming: %d completed shard(s) in %s", done, work_dir)
            return
        log.info("%s holds parts of other inputs or settings: starting afresh", work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    meta_path.write_text(json.dumps(meta))


class RowReader:
    """Row ranges of a Parquet file, reading only the row groups they touch (one cached)."""

    def __init__(self, path: Path, columns: list[str]):
        self.file = pq.ParquetFile(path)
        self.columns = columns
        starts = np.cumsum([0] + [self.file.metadata.row_group(i).num_rows
                                  for i in range(self.file.num_row_groups)])
        self.starts = starts
        self._cache: tuple[int, pa.Table] | None = None

    @property
    def num_rows(self) -> int:
        return int(self.starts[-1])

    def _group(self, g: int) -> pa.Table:
        if self._cache is None or self._cache[0] != g:
            self._cache = (g, self.file.read_row_group(g, columns=self.columns))
        return self._cache[1]

    def read(self, start: int, stop: int) -> pa.Table:
        pieces = []
        g = int(np.searchsorted(self.starts, start, side="right") - 1)
        while start < stop:
            table = self._group(g)
            lo = start - int(self.starts[g])
            take = min(stop, int(self.starts[g + 1])) - start
            pieces.append(table.slice(lo, take))
            start += take
            g += 1
        return pa.concat_tables(pieces).combine_chunks()


def shard_table(rows: pa.Table, task: Task, logits: np.ndarray) -> pa.Table:
    """Passthrough columns + logits (list<float32>, num_labels long) + teacher_label (int64 argmax)."""
    flat = pa.array(np.ascontiguousarray(logits, dtype=np.float32).reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, logits.size + 1, logits.shape[1], dtype=np.int32))
    columns = {c: rows.column(c) for c in (*task.text_columns, *PASSTHROUGH)}
    columns[LOGITS] = pa.ListArray.from_arrays(offsets, flat)
    columns[TEACHER_LABEL] = pa.array(logits.argmax(-1).astype(np.int64))
    return pa.table(columns)


@dataclass
class ShardWork:
    """What one process computed in this run: its shards, their rows and the teacher tokens they held."""
    shards: list[int] = field(default_factory=list)
    rows: int = 0
    tokens: int = 0

    def __add__(self, other: "ShardWork") -> "ShardWork":
        return ShardWork(sorted(self.shards + other.shards), self.rows + other.rows, self.tokens + other.tokens)


def compute_shards(task: Task, transfer_path: Path, out_path: Path, model, tokenizer, *, batch_size: int,
                   bf16: bool, shard_rows: int, max_length: int, process_index: int = 0, num_processes: int = 1,
                   on_shard_done: Callable[[int], None] | None = None, progress: bool = True) -> ShardWork:
    """This process's shards that are not done yet -> part files. Returns what it computed now (shards a killed
    run left are skipped, so a resumed run counts only its own share)."""
    work_dir = work_dir_for(out_path)
    columns = [*task.text_columns, *PASSTHROUGH]
    reader = RowReader(transfer_path, columns)
    missing = [c for c in columns if c not in reader.file.schema_arrow.names]
    if missing:
        raise UserError(f"{transfer_path}: missing column(s) {missing}")
    n_shards = math.ceil(reader.num_rows / shard_rows)
    mine = [i for i in range(n_shards) if i % num_processes == process_index]
    todo = [i for i in mine if not part_is_complete(work_dir, i, min(shard_rows, reader.num_rows - i * shard_rows))]
    log.info("process %d/%d: %d of its %d shard(s) to compute (%d rows per shard)", process_index,
             num_processes, len(todo), len(mine), shard_rows)
    work = ShardWork()
    for shard in todo:
        start = shard * shard_rows
        rows = reader.read(start, min(start + shard_rows, reader.num_rows))
        first = rows.column(task.text_columns[0]).to_pylist()
        second = rows.column(task.text_columns[1]).to_pylist() if task.is_pair else None
        if progress:
            log.info("shard %d/%d (rows %d-%d)", shard + 1, n_shards, start, start + rows.num_rows - 1)
        items = encode(tokenizer, first, second, max_length)
        logits = encoded_logits(model, tokenizer, items, batch_size=batch_size, bf16=bf16, progress=progress)
        bad = np.flatnonzero(~np.isfinite(logits).all(axis=1))
        if len(bad):
            raise UserError(f"{transfer_path}: the teacher gave non-finite logits for {len(bad)} row(s), first at "
                            f"row(s) {(bad[:5] + start).tolist()}; check the teacher model (nothing written)")
        with atomic_path(part_path(work_dir, shard)) as tmp:
            pq.write_table(shard_table(rows, task, logits), tmp)
        work.shards.append(shard)
        work.rows += rows.num_rows
        work.tokens += token_count(items)
        if on_shard_done is not None:
            on_shard_done(shard)
    return work


def part_is_complete(work_dir: Path, shard: int, rows: int) -> bool:
    """A part that exists, opens as Parquet and holds the shard's rows; anything else is removed and recomputed
    (a part damaged on disk must not make every rerun fail)."""
    path = part_path(work_dir, shard)
    if not path.exists():
        return False
    try:  # read it whole: a damaged data page behind an intact footer must be caught here, not at assembly
        table = pq.read_table(path)
        logits = table.column(LOGITS).combine_chunks().flatten().to_numpy()
        if table.num_rows == rows and np.isfinite(logits).all():
            return True
    except (pa.ArrowException, OSError, KeyError):
        pass
    log.warning("%s: damaged or incomplete part, recomputing it", path)
    path.unlink()
    return False


def iter_parts(work_dir: Path, n_shards: int) -> Iterator[pa.Table]:
    for i in range(n_shards):
        path = part_path(work_dir, i)
        if not path.exists():
            raise UserError(f"{path}: shard {i} missing; rerun the stage to compute it")
        try:
            yield pq.read_table(path)
        except (pa.ArrowException, OSError) as err:
            path.unlink()
            raise UserError(f"{path}: damaged shard {i} ({str(err)[:120]}), removed; rerun the stage to recompute "
                            "it") from None


def assemble_into(target: Path, out_path: Path, num_rows: int, shard_rows: int) -> int:
    """Stream the parts of `out_path`'s work dir in order into `target` (a scratch path the caller publishes onto
    out_path, with the stage's other outputs; then `drop_parts`). Main process only."""
    n_shards = math.ceil(num_rows / shard_rows)
    written = 0
    writer = None
    try:
        for table in iter_parts(work_dir_for(out_path), n_shards):
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            written += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    if written != num_rows:
        raise UserError(f"assembled {written} rows, expected {num_rows}")
    return written


def drop_parts(out_path: Path) -> None:
    """Remove the work dir once `out_path` is in place (a kill before that keeps the parts for the rerun)."""
    shutil.rmtree(work_dir_for(out_path), ignore_errors=True)


def assemble(out_path: Path, num_rows: int, shard_rows: int) -> int:
    """Stream the parts in order into `out_path` (atomically), then drop the work dir. Main process only."""
    with atomic_path(out_path) as tmp:
        written = assemble_into(tmp, out_path, num_rows, shard_rows)
    drop_parts(out_path)
    return written


def transfer_rows(transfer_path: Path) -> int:
    check_published(transfer_path)
    if not Path(transfer_path).exists():
        raise UserError(f"{transfer_path}: file not found (run the augment stage first)")
    try:
        return pq.ParquetFile(transfer_path).metadata.num_rows
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"{transfer_path}: unreadable Parquet ({str(err)[:160]}); re-run the augment stage") from None
