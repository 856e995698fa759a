"""ruff over the whole repository (rules in pyproject.toml): unused imports and names, undefined names, imports
not at the top, syntax errors and stray whitespace fail the suite."""
import shutil
import subprocess
import sys

from conftest import REPO


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or [sys.executable, "-m", "ruff"]
    cmd = [ruff, "check", "--output-format", "concise", "."] if isinstance(ruff, str) else [*ruff, "check", "."]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
