"""The DVC workflow on the tiny configuration : exact re-runs, experiments that run their own code,
relative paths under `dvc exp run --temp`, and a shared cache through a local-directory remote.

The tiny pipeline runs once per session (conftest's `tiny_dvc_repo`, ~1 min, shared with test_pipeline); every
test leaves the copy as it found it (the committed baseline, `dvc status` clean).
"""
from __future__ import annotations

import re
import time

import pytest

from dvc_helpers import (TASK, WHEEL_NAME, at, dry_stages, dvc, edited, exp_ref, git, lock, lock_dep_md5,
                         ran_stages, read_params, reset, run, set_param, status_stages,
                         write_params)

UPSTREAM = at("download", "postag", "augment", "finetune_teacher", "teacher_logits", "teacher_vectors")
STUDENT_SIDE = at("train_student", "train_baseline", "export", "evaluate", "benchmark", "report")


@pytest.fixture(scope="module")
def tiny(tiny_dvc_repo):
    return tiny_dvc_repo  # conftest: built once per session, shared with test_pipeline


@pytest.fixture
def repo(tiny):
    """The module's copy, at the committed baseline; put back there after each test (tracked files from git,
    and the cached outputs from the DVC cache when dvc.lock had moved)."""
    yield tiny
    moved = git(tiny, "status", "--porcelain", "--", "dvc.lock").stdout.strip()
    git(tiny, "checkout", "-q", "--", ".")
    if moved:
        reset(tiny)
        assert status_stages(tiny) == set()


# ---- (a) a no-op repro --------------------------------------------------------------------------------------------
def test_noop_repro_runs_nothing(repo):
    assert status_stages(repo) == set()
    start = time.monotonic()
    out = dvc(repo, "repro").stdout
    took = time.monotonic() - start
    assert ran_stages(out) == set(), out
    assert took < 30, f"no-op dvc repro took {took:.1f} s"


# ---- (b) exact invalidation ---------------------------------------------------------------------------------------
PARAM_CHANGES = [
    # (key, new value, stages `dvc status` must report: exactly these)
    ("student.alpha", 0.5, at("train_student")),
    ("student.epochs", 1, at("train_student", "train_baseline")),
    ("student.batch_size.rotten_tomatoes", 7, at("train_student", "train_baseline")),
    ("student.batch_size.qqp", 7, set()),
    ("student.embeddings", "glove-6b-50d", at("teacher_vectors", "train_student", "train_baseline")),
    ("augment.n_iter.rotten_tomatoes", 3, at("augment")),
    ("augment.n_iter.qqp", 3, set()),
    ("teacher.epochs", 2, at("finetune_teacher")),
    ("teacher.max_length", 24, at("finetune_teacher", "teacher_logits", "evaluate", "benchmark")),
    ("teacher_logits.bf16", True, at("teacher_logits")),
    ("benchmark.repeats", 2, at("benchmark")),
    ("benchmark.precision", "int8", at("benchmark")),
    ("runtime.threads", 2, set()),
    ("runtime.download_retries", 1, set()),
    ("runtime.download_timeout_s", 5, set()),
    ("runtime.logits_batch_size", 7, set()),
    ("runtime.logits_shard_rows", 50, set()),
    ("runtime.eval_batch_size", 7, set()),
]


@pytest.mark.parametrize("key,value,expected", PARAM_CHANGES, ids=[c[0] for c in PARAM_CHANGES])
def test_param_change_invalidates_exactly_its_readers(repo, key, value, expected):
    params = read_params(repo)
    set_param(params, key, value)
    write_params(repo, params)
    assert status_stages(repo) == expected


def test_student_alpha_never_reaches_the_baseline(repo):
    params = read_params(repo)
    params["student"]["alpha"] = 0.5
    write_params(repo, params)
    assert dry_stages(repo) == at("train_student")
    # even forcing everything below the changed stage: export, evaluate, benchmark, report; never train_baseline
    assert dry_stages(repo, force_downstream=True) == at("train_student", "export", "evaluate", "benchmark", "report")


def test_teacher_change_does_not_retrain_the_baseline(repo):
    """teacher.epochs: the teacher re-trains; teacher_vectors re-runs too (it depends on the teacher) but, with
    student.embeddings != teacher, writes the same bytes, so train_baseline stays valid while teacher_logits (and
    so the student), evaluate and benchmark are due. A real `dvc repro` of the teacher side shows it."""
    before = lock(repo)
    params = read_params(repo)
    params["teacher"]["epochs"] = 2
    write_params(repo, params)
    out = dvc(repo, "repro", f"teacher_vectors@{TASK}").stdout
    assert ran_stages(out) == at("finetune_teacher", "teacher_vectors"), out
    after = lock(repo)
    teacher, vectors = f"models/{TASK}/teacher", f"data/{TASK}/teacher_vectors.parquet"
    assert lock_dep_md5(after, f"finetune_teacher@{TASK}", teacher) != \
        lock_dep_md5(before, f"finetune_teacher@{TASK}", teacher), "the teacher did not change"
    assert lock_dep_md5(after, f"teacher_vectors@{TASK}", vectors) == \
        lock_dep_md5(before, f"teacher_vectors@{TASK}", vectors)
    assert status_stages(repo) == at("teacher_logits", "evaluate", "benchmark", "report")
    assert dry_stages(repo, force_downstream=True) == at("teacher_logits", "train_student", "export", "evaluate",
                                                         "benchmark", "report")


MODULE_EDITS = [
    ("distill/inference/onnx.py", at("export", "benchmark")),
    ("distill/inference/latency.py", at("benchmark")),
    ("distill/teacher/logits.py", at("teacher_logits")),
    ("distill/data/rotten.py", at("download")),
    ("distill/teacher/vectors.py", at("teacher_vectors")),
]


@pytest.mark.parametrize("module,expected", MODULE_EDITS, ids=[m for m, _ in MODULE_EDITS])
def test_comment_edit_invalidates_only_the_stages_importing_the_module(repo, module, expected):
    path = repo / module
    with edited(path, path.read_text() + "\n# a comment\n"):
        assert status_stages(repo) == expected


# ---- (c) queued experiments run their own snapshot's code --------------------------------------------------------
def test_queued_experiment_runs_its_snapshot_code(repo):
    train_py = "distill/student/train.py"
    dvc(repo, "exp", "run", "--queue", "-S", "student.epochs=1", "-n", "q1")
    path = repo / train_py
    with edited(path, path.read_text() + '\nraise SystemExit("workspace code ran")\n'):
        # the edit is live: any stage importing the workspace's library now fails
        broken = run(repo, "python", "-m", "stages.train", "student", "--task", TASK, "--help", check=False)
        assert broken.returncode != 0 and "workspace code ran" in broken.stderr + broken.stdout
        dvc(repo, "exp", "run", "--run-all", timeout=420)
        queue = dvc(repo, "queue", "status").stdout
    line = [ln for ln in queue.splitlines() if " q1 " in f" {ln} "]
    assert line and "Success" in line[0], queue
    rev = exp_ref(repo, "q1")
    exp_lock, base_lock = lock(repo, rev), lock(repo, "HEAD")
    stage = f"train_student@{TASK}"
    assert exp_lock["stages"][stage]["params"]["params.yaml"]["student.epochs"] == 1
    # the dep that holds train.py (the file, or the package folder the stage lists): the snapshot's, not the edit's
    dep = next(d["path"] for d in base_lock["stages"][stage]["deps"]
               if d["path"] == train_py or train_py.startswith(d["path"] + "/"))
    assert lock_dep_md5(exp_lock, stage, dep) == lock_dep_md5(base_lock, stage, dep)


# ---- (d) a relative path under `dvc exp run --temp` ---------------------------------------------------------------
def test_relative_wheel_path_works_in_a_temp_experiment(repo):
    relative = f"../wheels/{WHEEL_NAME}"
    assert (repo / relative).is_file()
    assert not (repo / ".dvc" / "tmp" / "exps" / "x" / relative).exists()
    dvc(repo, "exp", "run", "--temp", "-n", "relwheel", "-S", f"download.rt_wheel={relative}", timeout=300)
    exp_lock, base_lock = lock(repo, exp_ref(repo, "relwheel")), lock(repo, "HEAD")
    stage = f"download@{TASK}"
    assert exp_lock["stages"][stage]["params"]["params.yaml"]["download.rt_wheel"] == relative
    for split in ("train", "dev", "test"):  # the same wheel, read through the relative path: the same data
        out = f"data/{TASK}/{split}.parquet"
        assert lock_dep_md5(exp_lock, stage, out) == lock_dep_md5(base_lock, stage, out)


# ---- (e) a shared cache through a local-directory remote ----------------------------------------------------------
def test_shared_cache_fresh_clone_and_selective_rerun(repo, tmp_path):
    remote = tmp_path / "remote"
    dvc(repo, "remote", "add", "-d", "-f", "testremote", str(remote))
    git(repo, "commit", "-q", "-am", "remote")
    dvc(repo, "push", "--run-cache")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    start = time.monotonic()
    dvc(clone, "pull")
    assert status_stages(clone) == set()
    out = dvc(clone, "repro").stdout
    assert ran_stages(out) == set(), out
    up_to_date = time.monotonic() - start
    assert up_to_date < 60, f"fresh clone took {up_to_date:.0f} s to reach up to date"

    params = read_params(clone)
    params["student"]["hidden"] = 24  # changes the parameter count in student.json, whatever the accuracy does
    write_params(clone, params)
    out = dvc(clone, "repro").stdout
    assert ran_stages(out) == STUDENT_SIDE, out
    assert not ran_stages(out) & UPSTREAM
    diff = dvc(clone, "metrics", "diff").stdout
    assert f"metrics/{TASK}/student.json" in diff, diff
    assert "params.total" in diff, diff


# ---- (f) metrics made for comparison: `dvc exp show` -----------------------------------------------------------
NARROW = ".*sentences_per_s|.*gflops|.*latency.*|models/.*|metrics/.*|data/.*"  # the README's view without timings and hashes


def test_exp_show_names_need_no_file_prefix_and_the_narrow_view_fits_160_columns(repo):
    dvc(repo, "exp", "run", "-n", "alpha-half", "-S", "student.alpha=0.5", timeout=300)
    wide = dvc(repo, "exp", "show", "--only-changed", "--no-pager", env_extra={"COLUMNS": "1000"}).stdout
    header = wide.splitlines()[1].split()
    assert "rotten_tomatoes.student.dev.accuracy" in header and "student.alpha" in header
    assert not [h for h in header if ".json:" in h], header  # unique names: no `metrics/...json:` prefixes
    narrow = dvc(repo, "exp", "show", "--only-changed", "--no-pager", "--drop", NARROW,
                 env_extra={"COLUMNS": "1000"}).stdout
    assert max(len(line.rstrip()) for line in narrow.splitlines()) <= 160, narrow
    assert "rotten_tomatoes.speedup" in narrow and "alpha-half" in narrow
    dvc(repo, "exp", "remove", "alpha-half")


# ---- (g) experiments never pay twice: DVC's run cache restores every expensive stage -----------------------------
EXPENSIVE = at("finetune_teacher", "teacher_logits", "teacher_vectors", "train_student", "train_baseline",
               "evaluate", "benchmark")
# B: values no other test uses, so its run is new (a configuration another test ran would be restored, not run)
CONFIG_B = {"teacher.seed": 31, "student.hidden": 24}
CONFIG_A = {"teacher.seed": 13, "student.hidden": 16}  # the committed baseline's values


def restored_stages(output: str) -> set[str]:
    """Stages DVC restored from its run cache instead of running them (`dvc repro` / `dvc exp run` log)."""
    return set(re.findall(r"Stage '([^']+)' is cached - skipping run", output))


def metrics_bytes(repo) -> dict[str, bytes]:
    root = repo / "metrics" / TASK
    return {f.relative_to(root).as_posix(): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def set_flags(config: dict) -> list[str]:
    return [arg for key, value in config.items() for arg in ("-S", f"{key}={value}")]


def test_a_configuration_seen_before_is_restored_not_recomputed(repo):
    assert read_params(repo)["teacher"]["seed"] == 13 and read_params(repo)["student"]["hidden"] == 16
    first = metrics_bytes(repo)
    out_b = dvc(repo, "exp", "run", "-n", "cfg-b", *set_flags(CONFIG_B), timeout=420).stdout
    assert EXPENSIVE - at("teacher_vectors") <= ran_stages(out_b), out_b  # B is new: it really trains
    out_a = dvc(repo, "exp", "run", "-n", "cfg-a-again", *set_flags(CONFIG_A), timeout=420).stdout
    assert ran_stages(out_a) == at("report"), out_a  # only the cheap stage runs
    assert EXPENSIVE - at("teacher_vectors") <= restored_stages(out_a), out_a
    assert metrics_bytes(repo) == first  # A's metrics, byte for byte, speed.json included
    dvc(repo, "exp", "remove", "cfg-b", "cfg-a-again")


def test_queued_sweep_fine_tunes_the_shared_teacher_once(repo):
    alphas = (0, 1)  # the second finds the first's teacher in the run cache
    for alpha in alphas:
        # one teacher change no earlier test made (a run-cached one would be restored, not fine-tuned)
        dvc(repo, "exp", "run", "--queue", "-n", f"sweep-{alpha}", "-S", "teacher.seed=29", "-S",
            f"student.alpha={alpha}")
    dvc(repo, "exp", "run", "--run-all", "-j", "1", timeout=600)
    logs = "\n".join(dvc(repo, "queue", "logs", f"sweep-{alpha}").stdout for alpha in alphas)
    assert logs.count(f"Running stage 'finetune_teacher@{TASK}'") == 1, logs
    assert logs.count(f"Stage 'finetune_teacher@{TASK}' is cached - skipping run") == 1, logs
    assert logs.count(f"Running stage 'train_student@{TASK}'") == 2, logs  # each alpha trains its own student
    status = dvc(repo, "queue", "status").stdout
    assert sum("Success" in line for line in status.splitlines() if " sweep-" in line) == 2, status
    dvc(repo, "exp", "remove", *(f"sweep-{alpha}" for alpha in alphas))


def test_run_cache_travels_through_the_remote(repo, tmp_path):
    """The committed A is pushed (as CI does on main); then B is run here and pushed with --run-cache; a fresh
    clone (at A) pulls the run cache and gets B without computing."""
    remote = tmp_path / "remote"
    dvc(repo, "remote", "add", "-d", "-f", "rcremote", str(remote))
    dvc(repo, "push", "--run-cache")
    out_b = dvc(repo, "exp", "run", "-n", "cfg-b-remote", *set_flags(CONFIG_B), timeout=420).stdout
    assert ran_stages(out_b) or restored_stages(out_b)
    b_metrics = metrics_bytes(repo)
    dvc(repo, "push", "--run-cache")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    dvc(clone, "remote", "add", "-d", "-f", "rcremote", str(remote))
    dvc(clone, "pull", "--run-cache")
    params = read_params(clone)
    for key, value in CONFIG_B.items():
        set_param(params, key, value)
    write_params(clone, params)
    out = dvc(clone, "repro", "--pull").stdout  # --pull: fetch the restored runs' outputs from the remote
    assert ran_stages(out) == at("report"), out
    assert EXPENSIVE - at("teacher_vectors") <= restored_stages(out), out
    assert metrics_bytes(clone) == b_metrics
    git(repo, "checkout", "-q", "--", ".dvc/config")
    dvc(repo, "exp", "remove", "cfg-b-remote")
