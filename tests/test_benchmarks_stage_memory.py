"""benchmarks/stage_memory.py: each stage process under the command is found, its peak memory and time recorded
(train.py's subcommand naming the stage), and the command's exit status passed on."""
import json
import subprocess
import sys

from conftest import REPO

STAGE = "import sys, time\nblock = b'x' * (120 * 2**20)  # written, so resident\ntime.sleep(1.0)\nsys.exit({rc})\n"


def test_records_each_stage_and_passes_the_exit_status_on(tmp_path):
    stages = tmp_path / "stages"
    stages.mkdir()
    (stages / "postag.py").write_text(STAGE.format(rc=0))
    (stages / "train.py").write_text(STAGE.format(rc=3))
    script = f"{sys.executable} {stages / 'postag.py'} --task tiny && {sys.executable} {stages / 'train.py'} " \
             "student --task tiny"
    record = tmp_path / "memory.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.stage_memory", "--interval", "0.05", "--json",
                           str(record), "--", "bash", "-c", script], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    run = json.loads(record.read_text())
    assert run["exit"] == 3 and run["command"][:2] == ["bash", "-c"]
    rows = {row["stage"]: row for row in run["stages"]}
    assert set(rows) == {"postag@tiny", "train_student@tiny"}
    for row in rows.values():
        assert 120 < row["peak_rss_mb"] < 1000 and 0.5 < row["seconds"] < 30
    assert "train_student@tiny" in proc.stdout and "exit 3" in proc.stdout
