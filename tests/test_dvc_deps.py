"""dvc.yaml declares, for every stage, its script and each library module the script imports (transitively,
function-level imports included), so DVC re-runs a stage whenever code it runs has changed."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def library_imports(path: Path, package: str = "distill") -> set[str]:
    """Files of `package` that `path` imports, directly or through each other."""
    seen: set[str] = set()
    todo = [path]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):  # `from distill(.x) import y` / `from .x import y`: y may be a module
                base = node.module or "" if node.level == 0 else ".".join(filter(None, [package, node.module]))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] != package or name == package:
                    continue
                rel = name.replace(".", "/") + ".py"
                if (ROOT / rel).exists() and rel not in seen:
                    seen.add(rel)
                    todo.append(ROOT / rel)
    return seen


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_the_code_it_runs(name):
    stage = STAGES[name].get("do", STAGES[name])
    deps = set(stage["deps"])
    script = stage["cmd"].split()[1]
    assert script in deps, f"{name}: its script {script} is not a dep"
    missing = library_imports(ROOT / script) - deps
    assert not missing, f"{name}: imports {sorted(missing)} but dvc.yaml does not list them as deps"
