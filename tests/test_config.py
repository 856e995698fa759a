"""distill/config.py: params.yaml loaded into typed, validated, frozen stage configs; one-line errors naming the
file and key; per-task maps; `--set KEY=VALUE` overrides, read as YAML and checked like the file's values."""
import dataclasses

import pytest
import yaml

from distill import config
from distill.cli import settings_help
from distill.config import (DownloadRuntime, EvalRuntime, LogitsRuntime, PredictRuntime, TrainRuntime, integer, number,
                            positive_numbers, sha256_or_empty)
from distill.data.params import AugmentParams, DownloadParams, PostagParams
from distill.inference.params import ExportParams
from distill.io import UserError
from distill.report.params import BenchmarkParams, EvaluateParams
from distill.student.params import BaselineParams, StudentParams, TeacherVectorsParams
from distill.teacher.params import LogitsParams, TeacherParams
from helpers import REPO, write_params

ALL = [DownloadParams, PostagParams, AugmentParams, TeacherParams, LogitsParams, TeacherVectorsParams,
       BaselineParams, StudentParams, EvaluateParams, BenchmarkParams, ExportParams, DownloadRuntime, LogitsRuntime,
       TrainRuntime, EvalRuntime, PredictRuntime]


@pytest.fixture
def params(tmp_path, monkeypatch):
    """Write the repo's params.yaml with changes into tmp_path and return its name relative to the cwd
    (tmp_path), so error messages read `params.yaml: ...` exactly as a user sees them."""
    monkeypatch.chdir(tmp_path)

    def make(**sections):
        write_params(tmp_path, **sections)
        return "params.yaml"

    return make


def error_of(cls, task="rotten_tomatoes", params_file="params.yaml", **overrides) -> str:
    with pytest.raises(UserError) as err:
        config.load(cls, task, params_file, **overrides)
    return str(err.value)


# ---- the repository's own params.yaml ------------------------------------------------------------------------
@pytest.mark.parametrize("task", sorted(config.parse_yaml((REPO / "params.yaml").read_text())["datasets"]))
def test_repo_params_load_for_every_stage_and_task(task):
    raw = config.parse_yaml((REPO / "params.yaml").read_text())
    for cls in ALL:
        cfg = config.load(cls, task, REPO / "params.yaml")
        for f in dataclasses.fields(cls):
            section, key = cls.key(f.name).split(".")
            want = raw[section][key]
            if f.metadata["per_task"]:
                want = want[task]  # per-task values are maps with one entry per task
            assert getattr(cfg, f.name) == want, (cls.__name__, f.name)


def test_configs_are_frozen_and_numbers_typed(params):
    cfg = config.load(StudentParams, "rotten_tomatoes", params(student={"lr": 1, "rho": 1}))
    assert type(cfg.lr) is float and cfg.lr == 1.0 and type(cfg.rho) is float  # YAML `1` for a float field
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hidden = 3


# ---- validation: one line naming the file and the key --------------------------------------------------------
def test_hidden_zero_is_rejected_with_the_documented_message(params):
    params(student={"hidden": 0})
    assert error_of(StudentParams) == "params.yaml: student.hidden must be an integer >= 1, got 0"
    assert error_of(BaselineParams) == "params.yaml: student.hidden must be an integer >= 1, got 0"


def test_fractional_and_boolean_n_iter_are_rejected(params):
    params(augment={"n_iter": {"rotten_tomatoes": 2.7, "sst2": 20}})
    assert error_of(AugmentParams) == "params.yaml: augment.n_iter.rotten_tomatoes must be an integer >= 0, got 2.7"
    assert config.load(AugmentParams, "sst2", "params.yaml").n_iter == 20  # the other task's entry is fine
    params(augment={"n_iter": {"rotten_tomatoes": True}})
    assert "must be an integer >= 0, got True" in error_of(AugmentParams)


def test_probabilities_must_be_numbers_in_0_1(params):
    params(augment={"p_mask": "high"})
    assert error_of(AugmentParams) == "params.yaml: augment.p_mask must be a probability in [0, 1], got 'high'"
    params(augment={"p_ng": 1.5})
    assert error_of(AugmentParams) == "params.yaml: augment.p_ng must be a probability in [0, 1], got 1.5"
    params(augment={"p_mask": 0.6, "p_pos": 0.5})  # each fine, together more than every word
    assert error_of(AugmentParams) == "augment.p_mask + augment.p_pos must be <= 1 (params.yaml, or --set), got 0.6 + 0.5"


def test_choices_and_booleans(params):
    params(postag={"tagger": "auto"})  # `auto` is gone: the tags must not depend on the network
    assert error_of(PostagParams) == "params.yaml: postag.tagger must be one of textblob, nltk, got 'auto'"
    params(teacher_logits={"bf16": 1})
    assert error_of(LogitsParams) == "params.yaml: teacher_logits.bf16 must be auto, true or false, got 1"
    params(student={"embeddings": "fasttext"})
    assert "student.embeddings must be one of word2vec-google-news-300, glove-6b-50d, teacher, random" in \
        error_of(TeacherVectorsParams)
    params(runtime={"threads": -1})
    assert error_of(TrainRuntime) == "params.yaml: runtime.threads must be an integer >= 0, got -1"
    assert error_of(EvalRuntime) == error_of(LogitsRuntime) == error_of(TrainRuntime)  # one field, three readers
    params(teacher={"evals_per_epoch": 0})
    assert error_of(TeacherParams) == "params.yaml: teacher.evals_per_epoch must be an integer >= 1, got 0"
    params(download={"archive_sha256": "abc"})
    assert 'download.archive_sha256 must be "" or a 64-digit hex sha256' in error_of(DownloadParams)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("tasks: [rotten_tomatoes]\nstudent:\n  hidden: 150\n  fc: 200: 3\n")
    with pytest.raises(UserError, match=r"params\.yaml:4: YAML syntax error: mapping values are not allowed"):
        config.load(StudentParams, "rotten_tomatoes", bad)


def test_unknown_key_is_an_error_but_another_stages_key_is_not(params):
    params(student={"hiden": 150})  # a typo must not leave the default silently in force
    assert error_of(StudentParams).startswith("params.yaml: unknown key student.hiden (known: alpha, arch, batch_size,")
    params()
    config.load(BaselineParams, "rotten_tomatoes", "params.yaml")  # student.alpha belongs to StudentParams


def test_missing_key_and_missing_file(params, tmp_path):
    path = tmp_path / "params.yaml"
    raw = config.parse_yaml((REPO / "params.yaml").read_text())
    del raw["student"]["fc"]
    path.write_text(yaml.safe_dump(raw))
    assert error_of(StudentParams, params_file=path) == f"{path}: missing key student.fc"
    assert "params file not found" in error_of(StudentParams, params_file=tmp_path / "nope.yaml")
    path.write_text("- a list\n")
    assert "expected a mapping at the top level" in error_of(StudentParams, params_file=path)


def test_per_task_map_without_the_task_is_an_error(params):
    params(augment={"n_iter": {"default": 20, "qqp": 6}})  # the old `default` key is not a fallback any more
    msg = error_of(AugmentParams, "rotten_tomatoes")
    assert msg.startswith("params.yaml: augment.n_iter has no entry for task 'rotten_tomatoes'")
    assert config.load(AugmentParams, "qqp", "params.yaml").n_iter == 6
    params(student={"batch_size": {"sst2": 64}})
    assert "student.batch_size has no entry for task 'mnli'" in error_of(StudentParams, "mnli")


# ---- overrides: --set KEY=VALUE (the stage CLIs) and keyword overrides (library callers) ----------------------
def load_with(cls, *pairs: str, task="rotten_tomatoes"):
    return config.load(cls, task, "params.yaml", config.parse_settings(pairs, cls))


def set_error_of(cls, *pairs: str) -> str:
    with pytest.raises(UserError) as err:
        load_with(cls, *pairs)
    return str(err.value)


def test_set_wins_and_is_validated_like_the_file(params):
    params(student={"hidden": 150})
    assert load_with(StudentParams, "student.hidden=7").hidden == 7
    assert load_with(StudentParams).hidden == 150
    assert set_error_of(StudentParams, "student.hidden=0") == "--set student.hidden must be an integer >= 1, got 0"
    assert set_error_of(StudentParams, "student.hidden=7.5") == "--set student.hidden must be an integer >= 1, got 7.5"
    cfg = load_with(StudentParams, "student.lr=3e-5", "student.bf16=false", "student.embeddings=random")
    assert (cfg.lr, cfg.bf16, cfg.embeddings) == (3e-5, False, "random")  # YAML 1.2, as params.yaml is read
    assert type(load_with(StudentParams, "student.lr=1").lr) is float
    params(augment={"n_iter": {"qqp": 6}})  # a value given for the run stands in for a missing per-task entry
    assert load_with(AugmentParams, "augment.n_iter=3").n_iter == 3
    assert load_with(AugmentParams, "augment.n_iter={rotten_tomatoes: 4, qqp: 9}").n_iter == 4
    assert set_error_of(AugmentParams, "augment.n_iter={qqp: 9}").startswith(
        "--set augment.n_iter has no entry for task 'rotten_tomatoes'")
    # KEY.<task>, as params.yaml spells a per-task entry (and as `dvc exp run -S` takes it)
    assert load_with(AugmentParams, "augment.n_iter.qqp=9", "augment.n_iter.rotten_tomatoes=5").n_iter == 5
    assert set_error_of(AugmentParams, "augment.n_iter.qqp=9").startswith(
        "--set augment.n_iter has no entry for task 'rotten_tomatoes'")
    assert set_error_of(AugmentParams, "augment.n_iter=3", "augment.n_iter.qqp=9") == (
        "--set augment.n_iter.qqp: augment.n_iter is already set for every task")
    assert set_error_of(StudentParams, "student.hidden.qqp=9").startswith("--set student.hidden.qqp: not a setting")


def test_set_names_only_keys_the_stage_reads(params):
    params()
    assert config.parse_settings(None, StudentParams) == {}
    assert config.parse_settings(["student.alpha=0.5", "runtime.threads=2"], StudentParams, TrainRuntime) == {
        "student.alpha": 0.5, "runtime.threads": 2}
    with pytest.raises(UserError, match=r"^--set student.alpha: not a setting of this stage \(its settings: "
                                        r"student.embeddings, .*student.seed\)$"):
        config.parse_settings(["student.alpha=0.5"], BaselineParams)  # CE on gold labels: no alpha
    with pytest.raises(UserError, match="^--set hidden: not a setting"):
        config.parse_settings(["hidden=3"], StudentParams)  # the params.yaml key, not the field's name
    with pytest.raises(UserError, match="^--set student.hidden: expected KEY=VALUE"):
        config.parse_settings(["student.hidden"], StudentParams)
    with pytest.raises(UserError, match="^--set student.hidden: not a YAML value"):
        config.parse_settings(["student.hidden=[1"], StudentParams)
    # the keys another stage's class reads are left to it: one parse serves both of a stage's classes
    settings = config.parse_settings(["runtime.threads=2", "student.hidden=9"], StudentParams, TrainRuntime)
    assert load_with(TrainRuntime, "runtime.threads=2").threads == 2
    assert config.load(StudentParams, "rotten_tomatoes", "params.yaml", settings).hidden == 9


def test_keyword_override_for_library_callers(params):
    params(student={"hidden": 150})
    assert config.load(StudentParams, "rotten_tomatoes", "params.yaml", hidden=7, alpha=None).hidden == 7
    assert config.load(StudentParams, "rotten_tomatoes", "params.yaml", hidden=None).hidden == 150  # None: not given
    assert error_of(StudentParams, hidden=0) == "student.hidden must be an integer >= 1, got 0"
    with pytest.raises(TypeError, match="no field"):
        config.load(StudentParams, "rotten_tomatoes", "params.yaml", hiden=3)


def test_learning_rates_as_a_yaml_list(params):
    params()
    assert load_with(TeacherParams, "teacher.learning_rates=[2e-5, 3e-5, 4.0e-5]").learning_rates == [2e-5, 3e-5, 4e-5]
    assert set_error_of(TeacherParams, "teacher.learning_rates=[2e-5, abc]") == \
        "--set teacher.learning_rates must be a non-empty list of numbers > 0, got [2e-05, 'abc']"
    assert "non-empty list of numbers > 0" in set_error_of(TeacherParams, "teacher.learning_rates=2e-5")
    params(teacher={"learning_rates": []})
    assert "teacher.learning_rates must be a non-empty list of numbers > 0, got []" in error_of(TeacherParams)


# ---- the pieces ----------------------------------------------------------------------------------------------
def test_rules():
    assert integer(1)(1) is None and integer(1)(0) and integer(1)(True) and integer()(2.0)
    assert integer(0, 3)(4) == "must be an integer in [0, 3]"
    assert number(0, lo_open=True)(0) == "must be a number > 0" and number(0, lo_open=True)(1e-9) is None
    assert number(0, 1)(float("nan")) and number(0, 1)(float("inf")) and number(0, 1)(1) is None
    assert positive_numbers([1e-5]) is None and positive_numbers([]) and positive_numbers([0.0])
    assert sha256_or_empty("") is None and sha256_or_empty("A" * 64) is None and sha256_or_empty("g" * 64)


def test_help_and_tracked_keys():
    text = settings_help(StudentParams, TrainRuntime).splitlines()
    assert "student.hidden: BiLSTM hidden units per direction (paper: 150 or 300); arch bilstm only." in text
    assert text[-1].startswith("runtime.threads: torch threads") and len(text) == 1 + 15 + 1
    assert len(settings_help(EvalRuntime, LogitsRuntime).splitlines()) == 1 + 4  # runtime.threads listed once
    assert EvaluateParams.key("max_length") == "teacher.max_length"  # one max_length for every use of the teacher
    assert "student.batch_size.qqp" in StudentParams.tracked_keys("qqp")
    assert "student.alpha" in StudentParams.tracked_keys() and "student.alpha" not in BaselineParams.tracked_keys()
    assert AugmentParams.tracked_keys("sst2") == ["augment.p_mask", "augment.p_pos", "augment.p_ng",
                                                  "augment.n_iter.sst2", "augment.seed"]


def test_task_list(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("tasks: [sst2, qqp]\n")
    assert config.task_list(path) == ["sst2", "qqp"]
    path.write_text("tasks: []\n")
    with pytest.raises(UserError, match="tasks must be a non-empty list"):
        config.task_list(path)
