"""params.yaml access: stage sections, with per-task values resolved for one task.

A value may be given per task as a mapping keyed by task name (optionally with a `default` key), e.g.
`n_iter: {sst2: 20, qqp: 10, default: 20}`; `resolve` picks the entry for the task at hand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .io import UserError
from .tasks import TASKS

PARAMS_FILE = Path("params.yaml")


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: params file not found (run from the repository root)")
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data


def _is_per_task(value: Any) -> bool:
    return isinstance(value, dict) and value and all(k in TASKS or k == "default" for k in value)


def resolve(value: Any, task: str, key: str = "?") -> Any:
    if not _is_per_task(value):
        return value
    if task in value:
        return value[task]
    if "default" in value:
        return value["default"]
    raise UserError(f"params.yaml: {key} has no entry for task {task!r} and no 'default'")


def stage_params(stage: str, task: str, path: str | Path = PARAMS_FILE) -> dict:
    """The `stage` section of params.yaml with per-task values resolved for `task`."""
    section = load_params(path).get(stage)
    if section is None:
        raise UserError(f"{path}: no '{stage}' section")
    return {k: resolve(v, task, f"{stage}.{k}") for k, v in section.items()}


def pick(option: Any, params: dict, key: str) -> Any:
    """A CLI option overrides params.yaml; None means 'not given on the command line'."""
    if option is not None:
        return option
    if key not in params:
        raise UserError(f"params.yaml: missing key '{key}'")
    return params[key]
