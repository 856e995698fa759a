"""dvc.yaml declares, for every stage, exactly what the stage's code reads, so DVC re-runs a stage when, and only
when, something it runs or reads has changed:

- code: the stage script (`python -m stages.<name>`) plus every `distill` module it imports, transitively
  (function-level imports and the package `__init__.py` files Python runs on the way included) — no module missing
  (a change would go unseen), none extra (a change would re-run the stage for nothing). An empty `__init__.py` runs
  no code and is left out (dvc.yaml's header says so); one that gains any content must be listed by every stage that
  imports its package. The C files a module compiles (a "name.c" string beside it, plus every header there) count as
  its code too. A package folder may stand for its files when the stage runs every one of them (DVC hashes the whole
  folder, .dvcignore'd __pycache__ aside), so a file added there that the stage does not run is an error too;
- params: exactly `tracked_keys()` of the stage's config class (per-task values down to `${item}`), and never a
  `runtime.*` performance knob.

The checks are plain functions returning a list of problems; the last tests feed them broken stage definitions to
show that they do fail.
"""
from __future__ import annotations

import ast
import copy
import sys
from pathlib import Path

import pytest
import yaml

from distill.config import Params, parse_yaml
from distill.data.params import AugmentParams, DownloadParams, PostagParams
from distill.inference.params import ExportParams
from distill.report.params import BenchmarkParams, EvaluateParams
from distill.student.params import BaselineParams, StudentParams, TeacherVectorsParams
from distill.teacher.params import LogitsParams, TeacherParams

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "distill"
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]
PARAMS_YAML = parse_yaml((ROOT / "params.yaml").read_text())
KNOWN_TASKS = tuple(PARAMS_YAML["datasets"])  # every declared task, built-in or not

# stage -> the config class its script loads (distill.config.load(Cls, task))
STAGE_PARAMS: dict[str, type[Params] | None] = {
    "download": DownloadParams,
    "postag": PostagParams,
    "augment": AugmentParams,
    "finetune_teacher": TeacherParams,
    "teacher_logits": LogitsParams,
    "teacher_vectors": TeacherVectorsParams,
    "train_student": StudentParams,
    "train_baseline": BaselineParams,
    "evaluate": EvaluateParams,
    "export": ExportParams,
    "benchmark": BenchmarkParams,
    "report": None,  # reads no params: it copies the run folders to metrics/
}


# ---- what the code imports -------------------------------------------------------------------------------------
def module_file(name: str) -> str | None:
    """Repo-relative file of dotted module `name` (a package's __init__.py), or None when it is not in the repo."""
    base = ROOT / name.replace(".", "/")
    if (base / "__init__.py").is_file():
        return (base / "__init__.py").relative_to(ROOT).as_posix()
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py").relative_to(ROOT).as_posix()
    return None


def module_name(rel: str) -> str | None:
    """Dotted name of a repo-relative library file (None for a script outside the package)."""
    if not rel.startswith(PACKAGE + "/"):
        return None
    parts = rel[:-3].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(rel: str) -> set[str]:
    """Dotted names `rel` imports anywhere in its body; for `from a.b import c` both a.b and a.b.c (c may be a
    module); relative imports resolved against the file's package."""
    tree = ast.parse((ROOT / rel).read_text(), filename=rel)
    me = module_name(rel)
    package = (me if rel.endswith("__init__.py") else me.rpartition(".")[0]) if me else None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert package, f"{rel}: relative import outside a package"
                parts = package.split(".")
                anchor = ".".join(parts[:len(parts) - (node.level - 1)])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def runs_code(rel: str) -> bool:
    """False for an empty (whitespace-only) package __init__.py: it runs nothing, so it need not be a dep."""
    return not rel.endswith("__init__.py") or bool((ROOT / rel).read_text().strip())


def code_deps(script: str) -> set[str]:
    """`script` and every file of the library it runs: the package `python -m` imports it from, each imported
    module, the packages above it, transitively; empty __init__.py files left out."""
    seen = {script, str(Path(script).parent / "__init__.py")}
    todo = [script]
    while todo:
        for name in imported_names(todo.pop()):
            parts = name.split(".")
            if parts[0] != PACKAGE:
                continue
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
                rel = module_file(".".join(parts[:i]))
                if rel and rel not in seen:
                    seen.add(rel)
                    todo.append(rel)
    return {rel for rel in seen if runs_code(rel)}


def c_sources(rel: str) -> set[str]:
    """The C files library module `rel` compiles: each "name.c" it names (a string constant) that exists beside it,
    and every header beside those (distill.inference.kernels keys its builds on all of them)."""
    here = (ROOT / rel).parent
    names = {node.value for node in ast.walk(ast.parse((ROOT / rel).read_text(), filename=rel))
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".c")}
    found = {here / n for n in names if "/" not in n and (here / n).is_file()}
    if found:
        found |= set(here.glob("*.h"))
    return {p.relative_to(ROOT).as_posix() for p in found}


def c_deps(script: str) -> set[str]:
    """The C files compiled by the modules `script` runs."""
    return {c for rel in code_deps(script) for c in c_sources(rel)}


def stage_body(stage: dict) -> dict:
    return stage.get("do", stage)


def script_of(stage: dict) -> str:
    """stages/<name>.py of a `python -m stages.<name> ...` command."""
    cmd = stage_body(stage)["cmd"].split()
    assert cmd[:2] == ["python", "-m"] and cmd[2].startswith("stages."), f"unexpected stage command {cmd}"
    return cmd[2].replace(".", "/") + ".py"


def dep_paths(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage_body(stage).get("deps", [])]


def param_keys(stage: dict) -> list[str]:
    keys = []
    for p in stage_body(stage).get("params", []):
        if isinstance(p, dict):  # {other_params_file: [keys]}
            keys.extend(f"{file}:{k}" for file, ks in p.items() for k in ks)
        else:
            keys.append(p)
    return keys


def folder_files(folder: str) -> list[str]:
    """The files DVC hashes for a folder dep (.dvcignore leaves __pycache__ out)."""
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def is_code(dep: str) -> bool:
    return dep.endswith((".py", ".c", ".h")) or dep.startswith(PACKAGE + "/") and (ROOT / dep).is_dir()


# ---- the checks ------------------------------------------------------------------------------------------------
def code_dep_problems(name: str, stage: dict) -> list[str]:
    script = script_of(stage)
    declared = [d for d in dep_paths(stage) if is_code(d)]
    problems = [f"{name}: {d} listed twice" for d in sorted({d for d in declared if declared.count(d) > 1})]
    problems += [f"{name}: {d} does not exist" for d in declared if not (ROOT / d).exists()]
    files = {d for d in declared if (ROOT / d).is_file()}
    in_folders = {f for d in declared if (ROOT / d).is_dir() for f in folder_files(d)}
    problems += [f"{name}: {f} listed twice (also in its folder)" for f in sorted(files & in_folders)]
    needed = code_deps(script) | c_deps(script)
    problems += [f"{name}: runs {d} but does not list it as a dep" for d in sorted(needed - files - in_folders)]
    problems += [f"{name}: lists {d} as a dep but never imports it" for d in sorted(files - needed)]
    # a folder's empty __init__.py runs nothing: hashing it re-runs nothing
    problems += [f"{name}: lists {f} (in its folder) as a dep but never imports it"
                 for f in sorted(in_folders - needed) if runs_code(f)]
    return problems


def param_problems(name: str, stage: dict) -> list[str]:
    if name not in STAGE_PARAMS:
        return [f"{name}: no config class mapped in STAGE_PARAMS"]
    cls = STAGE_PARAMS[name]
    declared = param_keys(stage)
    if cls is None:
        return [f"{name}: tracks {k} but reads no params" for k in declared]
    wanted = cls.tracked_keys()
    problems = [f"{name}: param {k} listed twice" for k in sorted({k for k in declared if declared.count(k) > 1})]
    problems += [f"{name}: {cls.__name__} reads {k} but dvc.yaml does not track it"
                 for k in wanted if k not in declared]
    problems += [f"{name}: tracks {k} but {cls.__name__} does not read it" for k in declared if k not in wanted]
    problems += [f"{name}: tracks the performance knob {k}" for k in declared if k.split(":")[-1].startswith("runtime.")]
    return problems


def lookup(data: dict, key: str):
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


# ---- tests -----------------------------------------------------------------------------------------------------
def test_every_stage_has_a_config_class():
    assert set(STAGES) == set(STAGE_PARAMS)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_code_deps_are_exactly_what_it_imports(name):
    stage = STAGES[name]
    assert script_of(stage) in dep_paths(stage), f"{name}: its script is not a dep"
    problems = code_dep_problems(name, stage)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_are_exactly_what_its_config_reads(name):
    problems = param_problems(name, STAGES[name])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_imports_its_config_class(name):
    cls = STAGE_PARAMS[name]
    if cls is None:
        return
    assert module_file(cls.__module__) in code_deps(script_of(STAGES[name])), \
        f"{name}: {script_of(STAGES[name])} does not import {cls.__module__} ({cls.__name__})"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_exist_in_params_yaml_for_every_task(name):
    for key in param_keys(STAGES[name]):
        for task in KNOWN_TASKS:
            try:
                lookup(PARAMS_YAML, key.replace("${item}", task))
            except KeyError:
                pytest.fail(f"{name}: params.yaml has no {key.replace('${item}', task)}")


def test_no_stage_tracks_runtime_section():
    for name, stage in STAGES.items():
        assert not [k for k in param_keys(stage) if "runtime" in k.split(":")[-1].split(".")[0]], name
    assert "runtime" in PARAMS_YAML  # the knobs exist, untracked


# ---- the checks can fail -----------------------------------------------------------------------------------------
def test_import_walk_follows_function_level_imports_and_packages():
    deps = code_deps("stages/train.py")
    for rel in ("distill/student/train.py", "distill/student/model.py", "distill/config.py", "distill/io.py"):
        assert rel in deps
    for init in ("distill/__init__.py", "distill/student/__init__.py"):  # walked through, kept only if non-empty
        assert (init in deps) == runs_code(init)
    assert "distill/inference/onnx.py" not in deps  # only benchmark runs the ONNX export
    assert "distill/data/rotten.py" not in deps


def test_checks_catch_a_missing_and_an_extra_code_dep():
    stage = copy.deepcopy(STAGES["evaluate"])
    deps = stage["do"]["deps"]
    deps.remove("distill/student/model.py")
    deps.append("distill/inference/onnx.py")
    problems = code_dep_problems("evaluate", stage)
    assert any("distill/student/model.py" in p and "does not list" in p for p in problems), problems
    assert any("distill/inference/onnx.py" in p and "never imports" in p for p in problems), problems


def test_checks_catch_a_folder_dep_that_over_invalidates():
    """train_* run every module of distill/student, so the folder stands for them; evaluate runs three of them, so
    the folder would re-run it for a change to the optimiser."""
    assert "distill/student" in STAGES["train_student"]["do"]["deps"]
    assert not code_dep_problems("train_student", STAGES["train_student"])
    assert "__pycache__/" in (ROOT / ".dvcignore").read_text().split()  # else running the stage changes its dep
    stage = copy.deepcopy(STAGES["evaluate"])
    stage["do"]["deps"] = [d for d in stage["do"]["deps"] if not d.startswith("distill/student/")] + ["distill/student"]
    problems = code_dep_problems("evaluate", stage)
    assert any("distill/student/optim.py" in p and "never imports" in p for p in problems), problems
    assert not any("model.py" in p for p in problems), problems
    stage["do"]["deps"].append("distill/student/model.py")
    assert any("model.py listed twice" in p for p in code_dep_problems("evaluate", stage))
    stage = copy.deepcopy(STAGES["train_student"])
    stage["do"]["deps"].remove("distill/student")
    problems = code_dep_problems("train_student", stage)
    assert any("distill/student/optim.py" in p and "does not list" in p for p in problems), problems


def test_stages_run_as_modules_of_the_stages_package():
    """`python -m stages.<name>`: the checkout's distill/ and stages/ from the working directory (a queued or
    --temp experiment's own snapshot), no sys.path plumbing; the package's __init__.py runs first."""
    assert script_of(STAGES["train_student"]) == "stages/train.py"
    assert "stages/__init__.py" in code_deps("stages/train.py") or not runs_code("stages/__init__.py")
    assert not (ROOT / "stages" / "_repo.py").exists()


def test_checks_catch_a_missing_and_an_extra_c_source():
    """The kernels' C files are deps of the stages whose code compiles them (benchmark), and of no other."""
    kernels_c = "distill/inference/lstm_fused.c"
    assert kernels_c in c_sources("distill/inference/kernels.py")
    assert kernels_c in c_deps("stages/benchmark.py") and kernels_c not in c_deps("stages/train.py")
    stage = copy.deepcopy(STAGES["benchmark"])
    stage["do"]["deps"].remove(kernels_c)
    assert any(kernels_c in p and "does not list" in p for p in code_dep_problems("benchmark", stage))
    stage = copy.deepcopy(STAGES["train_student"])
    stage["do"]["deps"].append(kernels_c)
    assert any(kernels_c in p and "never imports" in p for p in code_dep_problems("train_student", stage))


def test_checks_catch_a_missing_package_init(monkeypatch):
    """An __init__.py that gains code must be listed by every stage importing its package."""
    init = "distill/student/__init__.py"
    assert init not in code_dep_problems("benchmark", STAGES["benchmark"])
    monkeypatch.setattr(sys.modules[__name__], "runs_code", lambda rel: True)
    stage = copy.deepcopy(STAGES["benchmark"])
    stage["do"]["deps"] = [d for d in stage["do"]["deps"] if d != init]
    assert any(init in p and "does not list" in p for p in code_dep_problems("benchmark", stage))


def test_checks_catch_a_listed_empty_init():
    init = "distill/student/__init__.py"
    if runs_code(init):
        pytest.skip(f"{init} is not empty")
    stage = copy.deepcopy(STAGES["benchmark"])
    stage["do"]["deps"].append(init)
    assert any(init in p and "never imports" in p for p in code_dep_problems("benchmark", stage))


def test_checks_catch_missing_extra_and_runtime_params():
    stage = copy.deepcopy(STAGES["train_baseline"])
    params = stage["do"]["params"]
    params.remove("student.batch_size.${item}")
    params += ["student.alpha", "runtime.threads"]
    problems = param_problems("train_baseline", stage)
    assert any("student.batch_size.${item}" in p and "does not track" in p for p in problems), problems
    assert any("student.alpha" in p and "does not read" in p for p in problems), problems
    assert any("runtime.threads" in p and "performance knob" in p for p in problems), problems


def test_checks_catch_a_whole_per_task_map():
    stage = copy.deepcopy(STAGES["augment"])
    params = stage["do"]["params"]
    params[params.index("augment.n_iter.${item}")] = "augment.n_iter"
    problems = param_problems("augment", stage)
    assert any("reads augment.n_iter.${item}" in p for p in problems), problems
    assert any("tracks augment.n_iter but" in p for p in problems), problems


def test_dvc_yaml_is_the_only_pipeline_file():
    """DVC reads every dvc.yaml in the repository as a pipeline: another one (e.g. a CI workflow named
    .github/workflows/dvc.yaml) breaks every dvc command with a schema error."""
    import subprocess
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    assert [f for f in files if Path(f).name in ("dvc.yaml", "dvc.yml")] == ["dvc.yaml"]
