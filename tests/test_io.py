"""distill/io.py: all-or-nothing publishing of outputs, scratch left by killed writers, one-line input errors,
the CLI wrapper."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer

from distill.io import (TMP_DIR, UserError, atomic_path, publish, read_parquet, run_cli, sha256_file, write_csv,
                        write_json, write_parquet)


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_publish_several_outputs(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "stale.bin").write_text("old")
    targets = [tmp_path / "a.json", tmp_path / "sub" / "b.csv", tmp_path / "model"]
    with publish(*targets) as (a, b, model):
        assert not any(t == p for t, p in zip((a, b, model), targets))  # writes go elsewhere first
        a.write_text("1")
        b.write_text("2")
        model.mkdir()
        (model / "weights.bin").write_text("new")
        assert not (tmp_path / "a.json").exists()  # nothing is in place before the block ends
    assert (tmp_path / "a.json").read_text() == "1" and (tmp_path / "sub" / "b.csv").read_text() == "2"
    assert listing(tmp_path / "model") == ["weights.bin"]  # a directory is replaced whole
    assert listing(tmp_path) == ["a.json", "model", "sub"] and listing(tmp_path / "sub") == ["b.csv"]


def test_publish_is_all_or_nothing_when_the_block_raises(tmp_path):
    (tmp_path / "a.json").write_text("old a")
    (tmp_path / "b.json").write_text("old b")
    with pytest.raises(ValueError):
        with publish(tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json") as (a, b, c):
            a.write_text("new a")
            b.write_text("new b")
            raise ValueError("killed half way")
    assert (tmp_path / "a.json").read_text() == "old a" and (tmp_path / "b.json").read_text() == "old b"
    assert listing(tmp_path) == ["a.json", "b.json"]  # no c.json, no scratch folder


def test_publish_refuses_an_output_the_block_did_not_write(tmp_path):
    (tmp_path / "a.json").write_text("old a")
    with pytest.raises(RuntimeError, match="nothing was written for .*b.json"):
        with publish(tmp_path / "a.json", tmp_path / "b.json") as (a, _):
            a.write_text("new a")
    assert (tmp_path / "a.json").read_text() == "old a" and listing(tmp_path) == ["a.json"]


def test_scratch_of_dead_writers_is_removed_on_the_next_write(tmp_path):
    scratch = tmp_path / TMP_DIR
    dead = scratch / f"{dead_pid()}-train.parquet.abc123"
    alive = scratch / f"{os.getpid()}-dev.parquet.def456"  # this process: alive
    other = scratch / "notes"
    for d in (dead, alive, other):
        d.mkdir(parents=True)
        (d / "half-written").write_text("x")
    write_json({"a": 1}, tmp_path / "out.json")
    assert not dead.exists()
    assert alive.exists() and other.exists()  # another live writer's scratch and unknown names stay
    assert json.loads((tmp_path / "out.json").read_text()) == {"a": 1}
    for d in (alive, other):
        (d / "half-written").unlink()
        d.rmdir()
    write_json({"a": 2}, tmp_path / "out.json")
    assert listing(tmp_path) == ["out.json"]  # an empty scratch folder goes too


def test_atomic_path_failure_leaves_nothing(tmp_path):
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("partial")
            raise KeyError("boom")
    assert listing(tmp_path) == []


def test_writers_round_trip(tmp_path):
    df = pd.DataFrame({"idx": [0, 1], "sentence": ["a b", "c"], "label": [1, -1]})
    pd.testing.assert_frame_equal(read_parquet(write_parquet(df, tmp_path / "d" / "x.parquet")), df)
    pd.testing.assert_frame_equal(pd.read_csv(write_csv(df, tmp_path / "x.csv")), df)
    assert (tmp_path / "x.csv").read_text() == "idx,sentence,label\n0,a b,1\n1,c,-1\n"
    write_json({"b": 1, "a": [1, 2]}, tmp_path / "x.json")
    assert (tmp_path / "x.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'  # sorted keys


def test_read_parquet_errors_name_the_file(tmp_path):
    path = tmp_path / "train.parquet"
    with pytest.raises(UserError, match=r"train\.parquet: file not found"):
        read_parquet(path)
    pd.DataFrame({"sentence": ["a"] * 500, "label": range(500)}).to_parquet(path)
    with pytest.raises(UserError) as err:
        read_parquet(path, columns=["sentence", "idx"])
    assert str(err.value) == f"{path}: missing column(s) ['idx']; re-run the stage that writes it"
    path.write_bytes(path.read_bytes()[:-300])  # truncated: a killed copy
    with pytest.raises(UserError) as err:
        read_parquet(path)
    assert str(err.value).startswith(f"{path}: unreadable Parquet (") and "re-run the stage" in str(err.value)
    path.write_text("not parquet at all")
    with pytest.raises(UserError, match="unreadable Parquet"):
        read_parquet(path, columns=["label"])


def test_sha256_file(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert sha256_file(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    (tmp_path / "big").write_bytes(b"abc")
    assert sha256_file(tmp_path / "big", chunk=1) == sha256_file(tmp_path / "abc")


def _app():
    app = typer.Typer()

    @app.command()
    def main(fail: bool = False):
        if fail:
            raise UserError("data/x.parquet: file not found")
        print("ok")

    return app


def test_run_cli_turns_user_errors_into_one_line(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["stage", "--fail"])
    with pytest.raises(SystemExit) as exit_:
        run_cli(_app())
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: data/x.parquet: file not found\n"
    monkeypatch.setattr(sys, "argv", ["stage"])
    run_cli(_app())
    assert capsys.readouterr().out == "ok\n"


def test_run_cli_usage_error_is_clicks_message_with_status_2(capsys, monkeypatch):
    """Typer vendors its own click (typer._click): its usage errors must still be a message, not a traceback."""
    monkeypatch.setattr(sys, "argv", ["stage", "--bogus"])
    with pytest.raises(SystemExit) as exit_:
        run_cli(_app())
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "No such option: --bogus" in err and "Traceback" not in err


def test_scratch_survives_another_writer_removing_the_empty_root(tmp_path, monkeypatch):
    """Two processes writing in one folder (accelerate ranks writing logits shards): one's cleanup may remove the
    empty .distill-tmp/ between the other's mkdir and mkdtemp; the writer then tries again instead of failing."""
    import tempfile

    from distill import io as dio

    real, calls = tempfile.mkdtemp, []

    def racy_mkdtemp(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the other writer's rmdir lands here
            shutil.rmtree(kwargs["dir"])
            raise FileNotFoundError(kwargs["dir"])
        return real(*args, **kwargs)

    monkeypatch.setattr(dio.tempfile, "mkdtemp", racy_mkdtemp)
    target = tmp_path / "out.json"
    dio.write_json({"a": 1}, target)
    assert json.loads(target.read_text()) == {"a": 1} and len(calls) == 2


def test_scratch_and_marks_survive_a_root_created_and_removed_by_another_writer(tmp_path, monkeypatch):
    """The other side of that race: mkdir(exist_ok=True) raises "File exists" when another writer created the
    folder and removed it again before mkdir could see it is a directory; the writer tries again."""
    from distill import io as dio

    real, failed = Path.mkdir, []

    def racy_mkdir(self, *args, **kwargs):
        if self.name in (dio.TMP_DIR, dio.PUBLISHING_DIR) and self.name not in failed:
            failed.append(self.name)
            raise FileExistsError(17, "File exists", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", racy_mkdir)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    with dio.publish(first, second) as (a, b):
        a.write_text("1")
        b.write_text("2")
    assert first.read_text() == "1" and second.read_text() == "2"
    assert failed == [dio.TMP_DIR, dio.PUBLISHING_DIR]
