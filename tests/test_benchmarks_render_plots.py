"""benchmarks/render_plots.sh with a stand-in for headless Chromium and empty vega builds: `dvc plots show` on this
repository's plots, every CDN script tag of dvc-render's page pointed at the local builds, only one task's charts
shown, the screenshot written; and the one-line errors when a build or Chromium is missing."""
import os
import shutil
import subprocess

import pytest

from conftest import REPO

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

CHROMIUM = """#!/bin/sh
# stands in for headless Chromium: --dump-dom prints a drawn page's title, --screenshot=PATH writes PATH
for arg in "$@"; do
  case "$arg" in
    --dump-dom) echo "<html><head><title>SIZE 640x480</title></head></html>" ;;
    --screenshot=*) printf PNG > "${arg#--screenshot=}" ;;
  esac
done
"""


def render(tmp_path, *args, vega=True, chromium=True, **env):
    builds = tmp_path / "vega" / "build"
    builds.mkdir(parents=True, exist_ok=True)
    for name in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js") if vega else ():
        (builds / name).write_text("")
    fake = tmp_path / "chromium"
    fake.write_text(CHROMIUM)
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VEGA_DIR": str(tmp_path / "vega"),
           "CHROMIUM": str(fake) if chromium else "", "TASK": "rotten_tomatoes", **env}
    return subprocess.run(["bash", str(REPO / "benchmarks" / "render_plots.sh"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True)


def test_help():
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "render_plots.sh"), "--help"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("Render the dvc.yaml plots")
    assert "Usage: benchmarks/render_plots.sh [OUT.png]" in proc.stdout and "#" not in proc.stdout.split()[0]


def test_renders_the_task_plots_with_local_builds(tmp_path):
    proc = render(tmp_path, str(tmp_path / "plots.png"), KEEP="1")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "plots.png").read_text() == "PNG" and "wrote" in proc.stdout and "640x480 px" in proc.stdout
    work = proc.stderr.split("keeping ")[1].split()[0]
    page = open(f"{work}/offline.html").read()
    shutil.rmtree(work)
    assert "cdn.jsdelivr" not in page
    for name in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js"):
        assert f"file://{tmp_path}/vega/build/{name}" in page
    # every task's chart is on the page, only TASK's five (throughput aside) are shown
    charts = ("dev_accuracy", "accuracy_vs_speed", "cross_entropy_loss", "distillation_loss", "confusion")
    shown = ",".join(f"#metrics_charts_{chart}_rotten_tomatoes_csv" for chart in charts)
    assert f"body>div{{margin:6px 10px;display:none}} {shown}{{display:block}}" in page
    assert all(f'<div id = "metrics_charts_{chart}_{task}_csv">' in page
               for chart in charts for task in ("rotten_tomatoes", "sst2"))


def test_missing_builds_are_a_one_line_error(tmp_path):
    proc = render(tmp_path, str(tmp_path / "plots.png"), vega=False)
    assert proc.returncode == 2 and proc.stderr.strip() == \
        f"render_plots: no vega.min.js under {tmp_path}/vega (see: benchmarks/render_plots.sh --help)"
    assert not (tmp_path / "plots.png").exists()


def test_missing_chromium_is_a_one_line_error(tmp_path):
    if any(shutil.which(name, path="/usr/bin:/bin") for name in BROWSERS):
        pytest.skip("a Chromium is installed here")
    proc = render(tmp_path, str(tmp_path / "plots.png"), chromium=False, PATH="/usr/bin:/bin")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "render_plots: no Chromium (apt-get install -y chromium, or set CHROMIUM)"
