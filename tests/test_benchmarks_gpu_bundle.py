"""benchmarks/gpu_bundle.py: the stage order the GPU script runs, and the bundle's packages read back."""
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_bundle  # noqa: E402


def test_stage_commands_are_dvc_yamls_stages_in_dependency_order():
    commands = gpu_bundle.stage_commands(ROOT / "dvc.yaml", "rotten_tomatoes")
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert len(commands) == len(stages) and len(set(commands)) == len(commands)
    assert all("${" not in c and "rotten_tomatoes" in c for c in commands)

    def at(script: str) -> int:
        return next(i for i, c in enumerate(commands) if script in c)

    for before, after in [("stages.download ", "stages.postag "), ("stages.postag ", "stages.augment "),
                          ("stages.augment ", "stages.teacher_logits "),
                          ("stages.finetune_teacher ", "stages.teacher_logits "),
                          ("stages.teacher_logits ", "stages.train student"), ("stages.train student", "stages.export "),
                          ("stages.train baseline", "stages.evaluate "), ("stages.export ", "stages.benchmark "),
                          ("stages.evaluate ", "stages.benchmark ")]:
        assert at(before) < at(after), (before, after)
    assert "stages.report " in commands[-1]


def test_stage_commands_refuse_a_cycle(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "a": {"cmd": "a", "deps": ["y"], "outs": ["x"]}, "b": {"cmd": "b", "deps": ["x"], "outs": ["y"]}}}))
    try:
        gpu_bundle.stage_commands(tmp_path / "dvc.yaml", "t")
    except SystemExit as err:
        assert "cycle" in str(err)
    else:
        raise AssertionError("a cycle was ordered")
