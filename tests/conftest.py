import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_GLUE = REPO.parent / "shared" / "glue"

# Tests never reach a hub: everything they load is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def run_stage(script: str, *args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    """Run a stage CLI the way DVC does, in a subprocess."""
    proc = subprocess.run([sys.executable, str(REPO / "stages" / script), *args], cwd=cwd, capture_output=True,
                          text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def shared_glue() -> Path:
    if not (SHARED_GLUE / "SST-2" / "dev.tsv").exists():
        pytest.skip("../shared/glue mirror not present")
    return SHARED_GLUE
