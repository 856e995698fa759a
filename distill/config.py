"""params.yaml as typed, validated, frozen configs: one class per stage, listing exactly the params it reads.
The classes live beside the code that uses them (distill/<phase>/params.py); this module is their machinery.

Each field names its params.yaml key (default `<section>.<field>`), its help text and its rule: the only place a
setting is written. The stage CLIs take no option per setting: `--set KEY=VALUE` (repeatable, KEY a params.yaml
key, VALUE YAML as in params.yaml; `parse_settings`) overrides any key the stage reads, and `--help` lists them
from the classes (distill.cli.settings_help). `load(Cls, task, params_file, settings)` reads the file once, resolves
per-task values, applies the `--set` values and validates everything before any data is read, so a bad value
fails in one line:
`params.yaml: student.hidden must be an integer >= 1, got 0`, `--set student.hidden must be an integer >= 1, got 0`.

Per-task values are mappings keyed by task name (`n_iter: {rotten_tomatoes: 20, qqp: 10}`), so dvc.yaml can
track `augment.n_iter.${item}` and a change for one task re-runs only that task's stages. The `runtime` section
holds performance knobs that no stage declares to DVC: changing them never re-runs anything.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ruamel.yaml import YAML, YAMLError

from distill.io import UserError

PARAMS_FILE = Path("params.yaml")


# ---- rules: value -> error text, or None when fine ---------------------------------------------------------------
def integer(lo: int | None = None, hi: int | None = None) -> Callable[[Any], str | None]:
    def rule(v):
        if isinstance(v, bool) or not isinstance(v, int):
            return f"must be an integer{_range(lo, hi)}"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"must be an integer{_range(lo, hi)}"
    return rule


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[Any], str | None]:
    def rule(v):
        bad = isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
        if not bad:
            bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi)
        if bad:
            return f"must be a number{_range(lo, hi, lo_open)}"
    return rule


def probability(v) -> str | None:
    return number(0.0, 1.0)(v) and "must be a probability in [0, 1]"


def boolean(v) -> str | None:
    if not isinstance(v, bool):
        return "must be true or false"


def auto_or_boolean(v) -> str | None:
    if not isinstance(v, bool) and v != "auto":
        return "must be auto, true or false"


def text(v) -> str | None:
    if not isinstance(v, str):
        return "must be a string (quote it in YAML)"


def choice(*options: str) -> Callable[[Any], str | None]:
    def rule(v):
        if v not in options:
            return f"must be one of {', '.join(options)}"
    return rule


def positive_numbers(v) -> str | None:
    if not isinstance(v, list) or not v or any(number(0.0, lo_open=True)(x) for x in v):
        return "must be a non-empty list of numbers > 0"


def sha256_or_empty(v) -> str | None:
    if not isinstance(v, str):  # e.g. 64 decimal digits, which YAML reads as a number
        return 'must be "" or a 64-digit hex sha256 (a string: quote it in YAML)'
    if v and (len(v) != 64 or any(c not in "0123456789abcdef" for c in v.lower())):
        return 'must be "" or a 64-digit hex sha256'


def _range(lo, hi, lo_open=False) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    return f" <= {hi}" if hi is not None else ""


def param(rule: Callable, help: str, key: str | None = None, per_task: bool = False):
    """A config field: its rule, help text, params.yaml key and whether it may be given per task."""
    return field(metadata={"rule": rule, "help": help, "key": key, "per_task": per_task})


# ---- the configs --------------------------------------------------------------------------------------------------
class Params:
    """Base of the stage configs: `section` is the params.yaml group a field's key defaults to. Every subclass
    registers itself, so unknown keys in a section can be told from keys that another stage reads."""
    section = ""
    also_reads = ()  # keys read besides the fields ("{task}" = the task), tracked by dvc.yaml all the same
    registry: list[type] = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Params.registry.append(cls)

    @classmethod
    def key(cls, name: str) -> str:
        f = cls.__dataclass_fields__[name]
        return f.metadata["key"] or f"{cls.section}.{name}"

    @classmethod
    def tracked_keys(cls, task: str = "${item}") -> list[str]:
        """The dotted params.yaml keys this stage reads, per-task ones down to the task's entry (for dvc.yaml)."""
        return [cls.key(f.name) + (f".{task}" if f.metadata["per_task"] else "") for f in dataclasses.fields(cls)] + [
            key.format(task=task) for key in cls.also_reads]

    def check(self) -> None:
        """Rules that tie several fields together."""


# ---- the runtime section: performance knobs ----------------------------------------------------------------------
# No stage declares them to DVC: they change how fast, never what (up to float summation order, see the README).
# One class per reader, like the stage configs, so each stage's --set and --help offer exactly the knobs it reads;
# all of them live here, so every stage knows the section's keys.
def threads_field():
    return param(integer(0), "torch threads (0 = OMP_NUM_THREADS if set, else every usable core).",
                 key="runtime.threads")


def eval_batch_size_field():
    return param(integer(1), "Inference batch size of evaluate and predict.", key="runtime.eval_batch_size")


@dataclass(frozen=True)
class DownloadRuntime(Params):
    section = "runtime"
    download_retries: int = param(integer(1), "Download attempts before giving up (backoff doubles).")
    download_timeout_s: float = param(number(0, lo_open=True), "Network timeout per download attempt, seconds.")


@dataclass(frozen=True)
class LogitsRuntime(Params):
    section = "runtime"
    threads: int = threads_field()
    logits_batch_size: int = param(integer(1), "Teacher rows per forward pass (batches are length-sorted).")
    logits_shard_rows: int = param(integer(1), "Teacher-logit rows per resumable shard.")


@dataclass(frozen=True)
class TrainRuntime(Params):
    section = "runtime"
    threads: int = threads_field()


@dataclass(frozen=True)
class EvalRuntime(Params):
    section = "runtime"
    threads: int = threads_field()
    eval_batch_size: int = eval_batch_size_field()


@dataclass(frozen=True)
class PredictRuntime(Params):
    section = "runtime"
    eval_batch_size: int = eval_batch_size_field()


# ---- loading ------------------------------------------------------------------------------------------------------
def parse_yaml(text: str):
    """YAML as DVC reads params files (ruamel.yaml, YAML 1.2, its `safe` loader): `3e-05` is a float, `yes` and
    `off` are strings, so a stage gets exactly the values `dvc params diff` and `dvc exp run -S` show."""
    return YAML(typ="safe").load(text)


def read_params_file(path: str | Path = PARAMS_FILE) -> dict:
    """params.yaml as a dict, read in DVC's YAML dialect (`parse_yaml`); a syntax error names the file and line;
    unknown keys in a stage section are errors (a typo must not silently leave a default in force)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: params file not found (run from the repository root)")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where}: YAML syntax error: {problem}") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data


def _check_sections(cls: type, data: dict, path: Path) -> None:
    """Keys in the sections `cls` reads must be known to some config of that section (the configs of one
    section live in one module, so all of them are registered once `cls` is)."""
    sections = {cls.key(f.name).split(".")[0] for f in dataclasses.fields(cls)}
    for section in sorted(sections):
        values = data.get(section)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise UserError(f"{path}: {section} must be a mapping of settings")
        names = {other.key(f.name).split(".")[1] for other in Params.registry for f in dataclasses.fields(other)
                 if other.key(f.name).split(".")[0] == section}
        unknown = sorted(set(values) - names)
        if unknown:
            raise UserError(f"{path}: unknown key {section}.{unknown[0]} (known: {', '.join(sorted(names))})")


def _lookup(data: dict, key: str, path: Path) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"{path}: missing key {key}")
        node = node[part]
    return node


def parse_settings(pairs: Iterable[str] | None, *classes: type) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs as {KEY: value}: KEY one of the params.yaml keys `classes` read, VALUE read as YAML 1.2
    like params.yaml (`parse_yaml`: 3e-5 is a float, [2e-5, 3e-5] a list, auto a string). A malformed pair or a key
    the stage does not read is a one-line UserError; `load` checks the values against their rules."""
    known = list(dict.fromkeys(cls.key(f.name) for cls in classes for f in dataclasses.fields(cls)))
    per_task = {cls.key(f.name) for cls in classes for f in dataclasses.fields(cls) if f.metadata["per_task"]}
    settings: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set {pair}: expected KEY=VALUE, a params.yaml key and its value")
        parent, _, task = key.rpartition(".")
        if key not in known and parent not in per_task:
            raise UserError(f"--set {key}: not a setting of this stage (its settings: {', '.join(known) or 'none'})")
        try:
            value = parse_yaml(text)
        except YAMLError as err:
            raise UserError(f"--set {key}: not a YAML value: {getattr(err, 'problem', None) or err}") from None
        if key in known:
            settings[key] = value
        elif isinstance(settings.setdefault(parent, {}), dict):  # KEY.<task>, as params.yaml spells a per-task map
            settings[parent][task] = value
        else:
            raise UserError(f"--set {key}: {parent} is already set for every task")
    return settings


def load(cls: type, task: str | None = None, params_file: str | Path = PARAMS_FILE,
         settings: dict[str, Any] | None = None, **overrides):
    """The validated `cls` config for `task`. `settings` (from `--set`: {params.yaml key: value}, see
    parse_settings; keys `cls` does not read are another config's) and keyword overrides by field name (None =
    not given) replace params.yaml values."""
    path = Path(params_file)
    data = read_params_file(path)
    _check_sections(cls, data, path)
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    settings = settings or {}
    values = {}
    for f in dataclasses.fields(cls):
        key, meta = cls.key(f.name), f.metadata
        if overrides.get(f.name) is not None:
            value, where = overrides[f.name], key
        elif key in settings:
            value, where = settings[key], f"--set {key}"
        else:
            value, where = _lookup(data, key, path), f"{path}: {key}"
        if meta["per_task"] and isinstance(value, dict):
            if task not in value:
                raise UserError(f"{where} has no entry for task {task!r} (per-task values need one entry per task, "
                                f"e.g. {key}.{task}: ...)")
            value, where = value[task], f"{where}.{task}"
        if f.type in ("float", float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        problem = meta["rule"](value)
        if problem:
            raise UserError(f"{where} {problem}, got {value!r}")
        values[f.name] = value
    config = cls(**values)
    config.check()
    return config


def load_all(classes: tuple[type, ...], task: str | None, params_file: str | Path, pairs: Iterable[str] | None
             ) -> tuple:
    """A stage's configs, one per class, with its `--set KEY=VALUE` pairs applied (a key no class reads is an
    error)."""
    settings = parse_settings(pairs, *classes)
    return tuple(load(cls, task, params_file, settings) for cls in classes)


def task_list(params_file: str | Path = PARAMS_FILE) -> list[str]:
    tasks = read_params_file(params_file).get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        raise UserError(f"{params_file}: tasks must be a non-empty list of task names")
    return tasks
