"""params.yaml is read as DVC reads it (YAML 1.2): a value set with `dvc exp run -S key=value` reaches the stage's
typed config exactly as DVC itself reports it (`dvc params diff`, dvc.lock): `3e-05` a float, `off` a string.

The overrides are applied by DVC's own code, the functions `dvc exp run -S` calls (dvc.utils.cli_parse.
to_path_overrides, then dvc.utils.hydra.apply_overrides, which rewrites the file with DVC's YAML writer), and read
back with DVC's reader (dvc.utils.serialize.load_yaml). Also: every `-S` override the README and docs show parses
to its param's type, and one real `dvc exp run -S 'teacher.learning_rates=[3e-5]'` fine-tunes the tiny teacher.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import re
import shlex
import shutil
from pathlib import Path

import pytest
from dvc.utils.cli_parse import to_path_overrides
from dvc.utils.hydra import apply_overrides
from dvc.utils.serialize import YAMLFileCorruptedError, load_yaml

import distill
from distill import config
from distill.data.datasets import dataset_entry
from distill.data.params import AugmentParams, DownloadParams
from distill.io import UserError
from distill.student.params import StudentParams
from distill.teacher.params import LogitsParams, TeacherParams
from dvc_helpers import TASK, dvc, git, init_tiny_repo

REPO = Path(__file__).resolve().parents[1]

for _module in pkgutil.walk_packages(distill.__path__, "distill."):  # every config class registers on import
    if _module.name.endswith(".params"):
        importlib.import_module(_module.name)

# params.yaml key -> [(config class, field)]: the classes that declare it (Params.registry)
DECLARED: dict[str, list[tuple[type, str]]] = {}
for _cls in config.Params.registry:
    for _f in dataclasses.fields(_cls):
        DECLARED.setdefault(_cls.key(_f.name), []).append((_cls, _f.name))


# ---- DVC's writer and reader ------------------------------------------------------------------------------------
def dvc_set(params_file: Path, *overrides: str) -> dict:
    """`dvc exp run -S override ...` applied to `params_file` by DVC's own code; the file as DVC reads it back."""
    for name, items in to_path_overrides(overrides).items():
        assert name == "params.yaml", f"{overrides}: only params.yaml is used here, got {name}"
        apply_overrides(params_file, items)
    return load_yaml(params_file)


def dvc_value(data: dict, key: str):
    for part in key.split("."):
        data = data[part]
    return data


def as_field(cls: type, name: str, value):
    """DVC's value as the config field holds it: an integer given for a float field is widened, nothing else."""
    if cls.__dataclass_fields__[name].type in ("float", float) and type(value) is int:
        return float(value)
    return value


def assert_same(got, want, what: str) -> None:
    """Equal value and type, element by element (repr tells 3e-05 from '3e-05', True from 1, 1 from 1.0)."""
    assert repr(got) == repr(want), f"{what}: the stage got {got!r}, DVC reports {want!r}"


def declaring(key: str) -> tuple[list[tuple[type, str]], str | None]:
    """The (class, field) pairs that read `key`, and the task when `key` is one task's entry of a per-task param."""
    if key in DECLARED:
        return DECLARED[key], None
    parent, _, task = key.rpartition(".")
    if parent in DECLARED and all(cls.__dataclass_fields__[name].metadata["per_task"]
                                  for cls, name in DECLARED[parent]):
        return DECLARED[parent], task
    return [], None


@pytest.fixture
def params_file(tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    return path


# ---- values DVC writes reach the stage as DVC reads them ----------------------------------------------------------
TYPED = [
    # (override as given to -S, the text DVC writes for it or None, the value DVC reads back)
    ("teacher.learning_rates=[3e-5]", "- 3e-05", [3e-05]),
    ("teacher.learning_rates=[2e-5,3e-5,4e-5,5e-5]", "- 2e-05", [2e-05, 3e-05, 4e-05, 5e-05]),
    ("teacher.weight_decay=1e-5", "weight_decay: 1e-05", 1e-05),
    ("runtime.download_timeout_s=1e+16", "download_timeout_s: 1e+16", 1e16),
    ("student.lr=1e+3", "lr: 1000.0", 1000.0),
    ("teacher.epochs=2", "epochs: 2", 2),  # an integer for a float field: the stage widens it to 2.0
    ("augment.n_iter.sst2=5", None, 5),
    ("augment.n_iter=7", "n_iter: 7", 7),  # one value for every task instead of the per-task map
    ("teacher.fused_adamw=false", "fused_adamw: false", False),
    ("student.multichannel=true", "multichannel: true", True),
    ("teacher.bf16=true", "bf16: true", True),
    ("teacher_logits.bf16=auto", "bf16: auto", "auto"),
    ("teacher.model=yes", "model: yes", "yes"),  # YAML 1.1 would read these as booleans
    ("download.glue_mirror=off", "glue_mirror: off", "off"),
    ("download.rt_wheel='1e3'", "rt_wheel: '1e3'", "1e3"),  # quoted: stays a string
    ("teacher.model='true'", "model: 'true'", "true"),
    ('teacher.model="null"', "model: 'null'", "null"),
    ("download.glue_mirror=''", "glue_mirror: ''", ""),
]


@pytest.mark.parametrize("override,written,want", TYPED, ids=[c[0] for c in TYPED])
def test_a_value_set_with_dvc_reaches_the_stage_as_dvc_reads_it(params_file, override, written, want):
    data = dvc_set(params_file, override)
    key = override.split("=")[0]
    assert_same(dvc_value(data, key), want, f"DVC's own reading of {key}")
    if written:
        assert re.search(rf"^\s*{re.escape(written)}(\s|$)", params_file.read_text(), re.M), params_file.read_text()
    pairs, task = declaring(key)
    assert pairs, f"no config class declares {key}"
    for cls, name in pairs:
        typed = getattr(config.load(cls, task or TASK, params_file), name)
        assert_same(typed, as_field(cls, name, want), f"{cls.__name__}.{name}")


def test_one_tasks_entry_leaves_the_other_tasks_alone(params_file):
    before = config.load(AugmentParams, TASK, params_file).n_iter
    dvc_set(params_file, "augment.n_iter.sst2=5")
    assert config.load(AugmentParams, "sst2", params_file).n_iter == 5
    assert config.load(AugmentParams, TASK, params_file).n_iter == before


def test_e_notation_written_by_hand_survives_a_dvc_rewrite(params_file):
    """DVC rewrites params.yaml keeping the user's spelling (`lr: 1e+3`), which YAML 1.1 reads as a string."""
    params_file.write_text(params_file.read_text().replace("\n  lr: 1.0 ", "\n  lr: 1e+3"))
    dvc_set(params_file, "student.hidden=300")
    assert re.search(r"^  lr: 1e\+3\b", params_file.read_text(), re.M)
    cfg = config.load(StudentParams, TASK, params_file)
    assert_same((cfg.lr, cfg.hidden), (1000.0, 300), "student.lr, student.hidden")
    assert load_yaml(params_file)["student"]["lr"] == 1000.0


INVALID = [
    # (override, the config class reading it, the error after "<file>: ")
    ("teacher.fused_adamw=yes", TeacherParams, "teacher.fused_adamw must be true or false, got 'yes'"),
    ("teacher_logits.bf16=off", LogitsParams, "teacher_logits.bf16 must be auto, true or false, got 'off'"),
    ("teacher.learning_rates=3e-5", TeacherParams,
     "teacher.learning_rates must be a non-empty list of numbers > 0, got 3e-05"),
    ("teacher.max_train_examples=null", TeacherParams, "teacher.max_train_examples must be an integer >= 0, got None"),
    ("student.embeddings=null", StudentParams, "student.embeddings must be one of "),
    ("download.seed='13'", DownloadParams, "download.seed must be an integer, got '13'"),
]


@pytest.mark.parametrize("override,cls,error", INVALID, ids=[c[0] for c in INVALID])
def test_a_value_invalid_for_its_param_is_one_line_naming_file_and_key(params_file, override, cls, error):
    want = dvc_value(dvc_set(params_file, override), override.split("=")[0])
    with pytest.raises(UserError) as err:
        config.load(cls, TASK, params_file)
    message = str(err.value)
    assert message.startswith(f"{params_file}: {error}") and message.endswith(f"got {want!r}"), message
    assert "\n" not in message


DATASETS = [
    # (override, the dataset entry's field, DVC's value as that field holds it)
    ("datasets.trec.f1_label=null", "f1_label", None),
    ("datasets.trec.f1_label=NUM", "f1_label", "NUM"),
    ("datasets.sst2.labels=[no,yes]", "label_names", ("no", "yes")),  # YAML 1.1: [False, True]
]


@pytest.mark.parametrize("override,attr,want", DATASETS, ids=[c[0] for c in DATASETS])
def test_a_dataset_entry_set_with_dvc_reads_as_dvc_reads_it(params_file, override, attr, want):
    key = override.split("=")[0]
    reported = dvc_value(dvc_set(params_file, override), key)
    assert_same(reported if attr != "label_names" else tuple(reported), want, f"DVC's own reading of {key}")
    spec = dataset_entry(config.read_params_file(params_file), key.split(".")[1], str(params_file))
    assert_same(getattr(spec, attr), want, key)


def test_a_dataset_flag_given_as_off_is_one_line_naming_file_and_key(params_file):
    dvc_set(params_file, "datasets.trec.lowercase=off")
    with pytest.raises(UserError) as err:
        dataset_entry(config.read_params_file(params_file), "trec", str(params_file))
    assert str(err.value).startswith(f"{params_file}: datasets.trec.lowercase ") and "'off'" in str(err.value)


def test_a_yaml_syntax_error_names_file_and_line(params_file):
    """DVC never writes one; a hand edit can (an unclosed list on line 3: the parser stops on line 4)."""
    params_file.write_text("teacher:\n  epochs: 3\n  learning_rates: [3e-05\n  batch_size: 32\n")
    with pytest.raises(YAMLFileCorruptedError):
        load_yaml(params_file)
    with pytest.raises(UserError) as err:
        config.load(TeacherParams, TASK, params_file)
    assert str(err.value) == f"{params_file}:4: YAML syntax error: expected ',' or ']', but got ':'"


# ---- every -S override the README and the docs show ---------------------------------------------------------------
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
PLACEHOLDER = re.compile(r"^key=|<|NAME|…|\.\.\.")


def shell_lines(markdown: str) -> list[str]:
    """The commands of a Markdown file: each line of its fenced blocks (continuations joined) and each inline code
    span (which may wrap across lines)."""
    blocks = [block.replace("\\\n", " ") for block in FENCE.findall(markdown)]
    spans = [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", FENCE.sub("", markdown))]
    return [line for block in blocks for line in block.splitlines()] + spans


def set_params(line: str) -> list[str]:
    """The `-S` / `--set-param` arguments of a shell line, as the shell hands them to dvc (quotes removed)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    words = list(lexer)
    found = [value for flag, value in zip(words, words[1:]) if flag in ("-S", "--set-param")]
    return found + [w.split("=", 1)[1] for w in words if w.startswith("--set-param=")]


def documented_overrides() -> list:
    cases = []
    for doc in DOCS:
        for line in shell_lines(doc.read_text(encoding="utf-8")):
            if "-S" not in line and "--set-param" not in line:
                continue
            overrides = set_params(line)
            if not overrides:
                continue
            ident = f"{doc.relative_to(REPO)}: {' '.join(overrides)}"
            if any(PLACEHOLDER.search(o) for o in overrides):
                cases.append(pytest.param(overrides, id=ident, marks=pytest.mark.skip(reason="a placeholder, not a value")))
            else:
                cases.append(pytest.param(overrides, id=ident))
    return cases


DOCUMENTED = documented_overrides()


def test_the_docs_overrides_are_found():
    found = {o for case in DOCUMENTED for o in case.values[0]}
    assert {"teacher.learning_rates=[2e-5,3e-5,4e-5,5e-5]", "augment.n_iter.sst2=8", "tasks=[sst2,qqp,mnli]",
            "download.glue_mirror=", "student.bf16=false", "benchmark.precision=int8"} <= found, sorted(found)


@pytest.mark.parametrize("overrides", DOCUMENTED)
def test_a_documented_override_parses_to_its_params_type(params_file, overrides):
    data = dvc_set(params_file, *overrides)  # one command's -S flags, applied together as DVC does
    tasks = config.task_list(params_file)
    for override in overrides:
        key = override.split("=")[0]
        reported = dvc_value(data, key)
        pairs, task = declaring(key)
        if key == "tasks":
            assert_same(tasks, reported, key)
            for name in tasks:  # every task it names must have its datasets entry
                dataset_entry(config.read_params_file(params_file), name, str(params_file))
        elif key.startswith("datasets."):
            dataset_entry(config.read_params_file(params_file), key.split(".")[1], str(params_file))
        elif pairs:
            for cls, name in pairs:
                typed = getattr(config.load(cls, task or tasks[0], params_file), name)
                assert_same(typed, as_field(cls, name, reported), f"-S {override}: {cls.__name__}.{name}")
        else:
            pytest.fail(f"-S {override}: no config class declares {key} (add a check for it here)")


# ---- a real `dvc exp run -S` ------------------------------------------------------------------------------------
def test_dvc_exp_run_gives_the_teacher_a_float_learning_rate(tmp_path, tiny_teacher):
    """The tiny task up to finetune_teacher (download, then fine-tuning): DVC writes `- 3e-05` into params.yaml,
    and the stage must fine-tune at 3e-05 (under YAML 1.1 it read the string '3e-05' and failed)."""
    repo = init_tiny_repo(tmp_path, teacher=tiny_teacher)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny params")
    dvc(repo, "exp", "run", "-S", "teacher.learning_rates=[3e-5]", f"finetune_teacher@{TASK}", timeout=300)
    assert re.search(r"^  - 3e-05$", (repo / "params.yaml").read_text(), re.M)
    locked = load_yaml(repo / "dvc.lock")["stages"][f"finetune_teacher@{TASK}"]["params"]["params.yaml"]
    assert_same(locked["teacher.learning_rates"], [3e-05], "dvc.lock")
    report = json.loads((repo / "models" / TASK / "runs" / "finetune_teacher" / "reports" /
                         "teacher_finetune.json").read_text())
    assert_same([run["lr"] for run in report["runs"]], [3e-05], "the fine-tune report")
    assert_same(report["best_lr"], 3e-05, "the fine-tune report")
