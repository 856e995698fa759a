"""benchmarks/ as a tool room: every tool is in benchmarks/README.md's index with its command, has --help, and
runs as `python -m benchmarks.<tool>` with no sys.path tricks."""
import importlib

import pytest

from conftest import REPO

BENCHMARKS = REPO / "benchmarks"
SHARED = {"__init__", "teacher_shapes"}  # modules the tools import, not tools
TOOLS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem not in SHARED)


def test_the_index_names_every_tool_and_its_command():
    index = (BENCHMARKS / "README.md").read_text()
    assert TOOLS == ["audit_transfer", "per_row_costs", "serving_latency", "stage_memory", "time_model"]
    for tool in TOOLS:
        assert f"| `{tool}` |" in index and f"python -m benchmarks.{tool}" in index, tool
    for script in BENCHMARKS.glob("*.sh"):
        assert f"| `{script.name}` |" in index and f"benchmarks/{script.name}" in index, script.name


@pytest.mark.parametrize("tool", TOOLS)
def test_help(tool, capsys):
    module = importlib.import_module(f"benchmarks.{tool}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and module.__doc__.splitlines()[0] in out


def test_no_tool_edits_sys_path():
    for source in [*BENCHMARKS.glob("*.py"), *BENCHMARKS.glob("*.sh")]:
        assert "sys.path" not in source.read_text() and "_repo" not in source.read_text(), source.name
