"""distill/teacher/logits.py and the teacher_logits stage: resumable, shardable logits for the transfer set."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, one_line_error, run_stage
from distill.io import UserError
from distill.layout import TaskPaths
from distill.teacher.logits import (RowReader, ShardWork, assemble, compute_shards, part_is_complete, part_path,
                                    prepare_work_dir, shard_table, work_dir_for)
from distill.teacher.model import encode, load_teacher, teacher_logits, token_count
from helpers import builtin_task, cli_dirs, keyword_rows, kill_stage_at, write_params, write_task_file

TASK = builtin_task("rotten_tomatoes")
QQP = builtin_task("qqp")


def write_transfer(path, task, n=300, seed=1):
    """A transfer.parquet: originals then synthetic rows with [MASK] words, as the augment stage writes it."""
    base = keyword_rows(n // 3, seed)
    synth = base.sample(n - len(base), replace=True, random_state=seed).reset_index()
    synth["sentence"] = synth["sentence"].str.replace("film", "[MASK]").str.replace("the ", "[MASK] ")
    df = pd.DataFrame({
        "sentence": list(base["sentence"]) + list(synth["sentence"]),
        "label": list(base["label"]) + [-1] * len(synth),
        "synthetic": [False] * len(base) + [True] * len(synth),
        "origin": np.r_[np.arange(len(base)), synth["index"].to_numpy()].astype(np.int64),
    })
    if task.is_pair:
        df.insert(1, "sentence2", df["sentence"].str[::-1])
        df = df.rename(columns={"sentence": "sentence1"})
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False, row_group_size=70)  # row groups that straddle shard boundaries
    return df


def run_logits(task, transfer, out, model, tok, shard_rows=64, **kw):
    n = pq.ParquetFile(transfer).metadata.num_rows
    prepare_work_dir(work_dir_for(out), "fp", n, shard_rows)
    return compute_shards(task, transfer, out, model, tok, batch_size=16, bf16=False, shard_rows=shard_rows,
                          max_length=64, progress=False, **kw)


def test_row_reader_reads_across_row_groups(tmp_path):
    df = pd.DataFrame({"a": np.arange(100), "b": [f"r{i}" for i in range(100)]})
    df.to_parquet(tmp_path / "x.parquet", row_group_size=30)
    reader = RowReader(tmp_path / "x.parquet", ["b"])
    assert reader.num_rows == 100 and reader.starts.tolist() == [0, 30, 60, 90, 100]
    assert reader.read(25, 65).column("b").to_pylist() == [f"r{i}" for i in range(25, 65)]
    assert reader.read(90, 100).num_rows == 10


@pytest.mark.parametrize("task", [TASK, QQP], ids=lambda t: t.name)
def test_resume_and_shards_equal_one_run(tiny_teacher, tmp_path, task):
    model, tok = load_teacher(tiny_teacher, "cpu")
    transfer = tmp_path / "transfer.parquet"
    rows = write_transfer(transfer, task)
    n = len(rows)

    whole = tmp_path / "whole" / "teacher_logits.parquet"
    assert run_logits(task, transfer, whole, model, tok).shards == [0, 1, 2, 3, 4]  # ceil(300 / 64) shards
    assert assemble(whole, n, 64) == n
    want = pd.read_parquet(whole)
    assert not work_dir_for(whole).exists()
    assert list(want.columns) == [*task.text_columns, "label", "synthetic", "origin", "logits", "teacher_label"]
    pd.testing.assert_frame_equal(want[rows.columns.tolist()], rows)
    logits = np.stack(want["logits"].to_numpy())
    first = rows[task.text_columns[0]].tolist()
    second = rows[task.text_columns[1]].tolist() if task.is_pair else None
    np.testing.assert_allclose(logits, teacher_logits(model, tok, first, second, batch_size=32, max_length=64,
                                                      progress=False), atol=1e-5)
    assert (want["teacher_label"].to_numpy() == logits.argmax(1)).all()
    assert pq.read_schema(whole).field("logits").type.value_type == "float"

    # killed after the 2nd shard, then rerun: only the missing shards are computed, the result is the same
    resumed = tmp_path / "resumed" / "teacher_logits.parquet"

    def kill_after_second(shard):
        if shard == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_logits(task, transfer, resumed, model, tok, on_shard_done=kill_after_second)
    assert not resumed.exists()
    done = []
    work = run_logits(task, transfer, resumed, model, tok, on_shard_done=done.append)
    assert done == work.shards == [2, 3, 4] and work.rows == n - 128  # a resumed run counts only its own share
    assemble(resumed, n, 64)
    pd.testing.assert_frame_equal(pd.read_parquet(resumed), want)

    # two processes, each taking every other shard; the main process assembles
    sharded = tmp_path / "sharded" / "teacher_logits.parquet"
    prepare_work_dir(work_dir_for(sharded), "fp", n, 64)
    got = [compute_shards(task, transfer, sharded, model, tok, batch_size=16, bf16=False, shard_rows=64,
                          max_length=64, process_index=p, num_processes=2, progress=False) for p in (1, 0)]
    assert [work.shards for work in got] == [[1, 3], [0, 2, 4]]
    assert [work.rows for work in got] == [128, 64 * 2 + n - 256] and sum(got, ShardWork()).rows == n
    assert sum(got, ShardWork()).tokens == token_count(encode(tok, first, second, 64))
    assemble(sharded, n, 64)
    pd.testing.assert_frame_equal(pd.read_parquet(sharded), want)


def test_parts_of_other_inputs_are_discarded(tmp_path):
    work = work_dir_for(tmp_path / "teacher_logits.parquet")
    assert work == tmp_path / ".teacher_logits.parts"
    prepare_work_dir(work, "a", 10, 4)
    (work / "part-000000.parquet").write_bytes(b"stale")
    prepare_work_dir(work, "a", 10, 4)
    assert (work / "part-000000.parquet").exists()
    prepare_work_dir(work, "b", 10, 4)  # other inputs or settings: start afresh
    assert not (work / "part-000000.parquet").exists()
    (work / "part-000000.parquet").write_bytes(b"stale")
    prepare_work_dir(work, "b", 10, 5)  # other shard size
    assert not (work / "part-000000.parquet").exists()


def write_part(work, shard, logits):
    """A part file as compute_shards writes it."""
    rows = pa.table({"sentence": [f"s{i}" for i in range(len(logits))], "label": [0] * len(logits),
                     "synthetic": [False] * len(logits), "origin": list(range(len(logits)))})
    pq.write_table(shard_table(rows, TASK, np.asarray(logits, np.float32)), part_path(work, shard))


def test_damaged_part_is_recomputed_and_missing_part_is_an_error(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    part_path(work, 0).write_bytes(b"PAR1 cut short")
    assert not part_is_complete(work, 0, 4) and not part_path(work, 0).exists()
    write_part(work, 1, np.zeros((3, 2)))
    assert not part_is_complete(work, 1, 4)  # a part with the wrong number of rows is not trusted either
    write_part(work, 2, [[0.0, 1.0], [np.nan, 0.0], [1.0, 0.0], [2.0, 0.0]])
    assert not part_is_complete(work, 2, 4)  # nor one holding a non-finite logit
    write_part(work, 3, np.arange(8.0).reshape(4, 2))
    assert part_is_complete(work, 3, 4) and part_path(work, 3).exists()
    out = tmp_path / "teacher_logits.parquet"
    prepare_work_dir(work_dir_for(out), "fp", 8, 4)
    with pytest.raises(UserError, match="shard 0 missing"):
        assemble(out, 8, 4)
    assert not out.exists()


def test_shard_table_layout():
    rows = pa.table({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1, -1], "synthetic": [False, True],
                     "origin": [0, 0]})
    table = shard_table(rows, QQP, np.array([[0.5, -1.0], [-2.0, 3.0]]))
    assert table.column_names == ["sentence1", "sentence2", "label", "synthetic", "origin", "logits",
                                  "teacher_label"]
    assert table.column("logits").to_pylist() == [[0.5, -1.0], [-2.0, 3.0]]
    assert table.column("teacher_label").to_pylist() == [0, 1]


def test_missing_text_column_is_a_user_error(tiny_teacher, tmp_path):
    model, tok = load_teacher(tiny_teacher, "cpu")
    transfer = tmp_path / "transfer.parquet"
    write_transfer(transfer, TASK, n=30)  # single-sentence columns, read as QQP
    with pytest.raises(UserError, match=r"missing column\(s\) \['sentence1', 'sentence2'\]"):
        run_logits(QQP, transfer, tmp_path / "out.parquet", model, tok)


def test_stage(tiny_teacher, tmp_path):
    paths = write_task_file(TaskPaths("rotten_tomatoes", tmp_path / "data", tmp_path / "models"))
    rows = write_transfer(paths.transfer, TASK, n=90)
    shutil.copytree(tiny_teacher, paths.model("teacher"))
    write_params(tmp_path, teacher_logits={"bf16": False}, teacher={"max_length": 64},
                 runtime={"logits_batch_size": 8, "logits_shard_rows": 40})
    run_stage("teacher_logits.py", "--task", "rotten_tomatoes", *cli_dirs(tmp_path, "data", "models", "params"))
    got = pd.read_parquet(paths.logits)
    pd.testing.assert_frame_equal(got[rows.columns.tolist()], rows)
    model, tok = load_teacher(tiny_teacher, "cpu")
    want = teacher_logits(model, tok, rows["sentence"].tolist(), batch_size=90, max_length=64, progress=False)
    np.testing.assert_allclose(np.stack(got["logits"].to_numpy()), want, atol=1e-5)
    assert pq.ParquetFile(paths.logits).num_row_groups == 3  # one per shard of 40 rows
    assert sorted(p.name for p in paths.data.iterdir()) == ["task.json", "teacher_logits.parquet", "transfer.parquet"]
    paths.transfer.unlink()
    proc = run_stage("teacher_logits.py", "--task", "rotten_tomatoes", *cli_dirs(tmp_path, "data", "models", "params"),
                     check=False)
    assert "transfer.parquet: file not found" in one_line_error(proc)


# the stage paused (then SIGKILLed) halfway through writing shard 1's part: half its bytes are on disk
KILL_MID_PART_1 = """
import pyarrow as pa
import pyarrow.parquet as pq
_real_write = pq.write_table
def _write_table(table, where, *args, **kwargs):
    if ".teacher_logits.parts" in str(where) and Path(where).name == "part-000001.parquet":
        sink = pa.BufferOutputStream()
        _real_write(table, sink, *args, **kwargs)
        whole = sink.getvalue().to_pybytes()
        Path(where).write_bytes(whole[: len(whole) // 2])
        pause()
    return _real_write(table, where, *args, **kwargs)
pq.write_table = _write_table
"""


@pytest.mark.long
def test_stage_killed_mid_shard_write_resumes_to_the_same_bytes(tiny_teacher, tmp_path):
    """kill -9 of the stage while it writes shard 1 of 4; the rerun keeps shard 0, computes 1-3 (the half-written
    part is scratch, never in place) and writes the same file, byte for byte, as a run never interrupted."""
    roots = {name: tmp_path / name for name in ("whole", "killed")}
    for root in roots.values():
        paths = write_task_file(TaskPaths("rotten_tomatoes", root / "data", root / "models"))
        write_transfer(paths.transfer, TASK, n=150)
        shutil.copytree(tiny_teacher, paths.model("teacher"))
        write_params(root, teacher_logits={"bf16": False}, teacher={"max_length": 64},
                     runtime={"threads": 1, "logits_batch_size": 8, "logits_shard_rows": 40})
    args = lambda root: ["--task", "rotten_tomatoes", *cli_dirs(root, "data", "models", "params")]  # noqa: E731
    run_stage("teacher_logits.py", *args(roots["whole"]))
    want = TaskPaths("rotten_tomatoes", roots["whole"] / "data").logits.read_bytes()

    paths = TaskPaths("rotten_tomatoes", roots["killed"] / "data", roots["killed"] / "models")
    work = work_dir_for(paths.logits)
    kill_stage_at(KILL_MID_PART_1, "teacher_logits.py", *args(roots["killed"]), workdir=tmp_path)
    half = list(work.glob(".distill-tmp/*-part-000001.parquet.*/part-000001.parquet"))
    assert len(half) == 1 and 0 < half[0].stat().st_size  # killed mid-write: the partial part is in its scratch
    assert sorted(p.name for p in work.glob("part-*")) == ["part-000000.parquet"] and not paths.logits.exists()
    assert not paths.for_stage("teacher_logits").report("teacher_logits").exists()

    rerun = run_stage("teacher_logits.py", *args(roots["killed"]))
    assert "resuming: 1 completed shard(s)" in rerun.stderr, rerun.stderr[-3000:]
    assert "process 0/1: 3 of its 4 shard(s) to compute" in rerun.stderr, rerun.stderr[-3000:]
    assert paths.logits.read_bytes() == want
    assert not work.exists() and sorted(p.name for p in paths.data.iterdir()) == [
        "task.json", "teacher_logits.parquet", "transfer.parquet"]


@pytest.mark.long
def test_accelerate_launch_two_processes_matches_one_process(tiny_teacher, tmp_path):
    """`accelerate launch --num_processes 2` (CPU, gloo): each process computes every other shard, the main one
    assembles them; the output is byte-identical to one process (one thread each, so the sums agree)."""
    outputs = {}
    for name, launcher in (("one", [sys.executable]),
                           ("two", [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                                    "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                                    "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
                                    "--main_process_port", str(29500 + os.getpid() % 1000)])):
        root = tmp_path / name
        paths = write_task_file(TaskPaths("rotten_tomatoes", root / "data", root / "models"))
        write_transfer(paths.transfer, TASK, n=150)
        shutil.copytree(tiny_teacher, paths.model("teacher"))
        write_params(root, teacher_logits={"bf16": False}, teacher={"max_length": 64},
                     runtime={"threads": 1, "logits_batch_size": 8, "logits_shard_rows": 40})
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([*launcher, "-m", "stages.teacher_logits", "--task", "rotten_tomatoes",
                               *cli_dirs(root, "data", "models", "params")], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        if name == "two":
            assert "process 1/2: 2 of its 2 shard(s) to compute" in proc.stderr, proc.stderr[-3000:]
        outputs[name] = paths.logits.read_bytes()
    assert outputs["one"] == outputs["two"]
