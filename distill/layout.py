"""Where each stage's files live and what their columns are called: one home for every path and column name.

data/<task>/    train|dev|test.parquet, task.json, download.json, postag.parquet, tag_unigrams.parquet, transfer.parquet,
                transfer_iterations.parquet, teacher_vectors.parquet, teacher_logits.parquet
models/<task>/  teacher/, student/, baseline/, export/; runs/<stage>/ (each expensive stage's reports, curves and
                scores, laid out as under metrics/<task>/ and cached by DVC with the stage's other outputs)
metrics/<task>/ <model>.json (scores), speed.json; plots/ (curves, confusion); reports/ (run details, not metrics):
                git-tracked copies of runs/*/, written by the cheap report stage
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

# ---- column names --------------------------------------------------------------------------------------------
IDX, LABEL, SPLIT = "idx", "label", "split"
SINGLE_TEXT = ("sentence",)
PAIR_TEXT = ("sentence1", "sentence2")
SYNTHETIC, ORIGIN = "synthetic", "origin"  # transfer set: augmented row?, row of train it came from
ITERATION = "iteration"  # transfer_iterations.parquet: the augment iteration that made a row (-1: an original)
LOGITS, TEACHER_LABEL = "logits", "teacher_label"  # teacher logits: list<float32>, argmax
WORD, VECTOR = "word", "vector"  # teacher_vectors.parquet
UNLABELLED = -1
MASK = "[MASK]"  # how the augment stage writes a masked word; the student's vocab and the teacher map it

SPLIT_FILES = ("train", "dev", "test")
MODEL_KINDS = ("teacher", "student", "baseline")
# The stages whose reports, curves and scores go to models/<task>/runs/<stage>/ (only DVC-cached outputs, so DVC's
# run cache can restore them), in the order the report stage copies them to metrics/<task>/.
RUN_STAGES = ("finetune_teacher", "teacher_logits", "train_student", "train_baseline", "evaluate", "benchmark")
BILSTM_KINDS = ("student", "baseline")
# In every trained model's folder: the precision it trained in and the hardware it trained on (runtime.hardware_record)
TRAINING_FILE = "training.json"


def workspace_root(cwd: Path | None = None) -> Path:
    """The repository the user ran DVC in. `dvc exp run --temp` and queued experiments run stages in a copy
    under <repo>/.dvc/tmp/exps/...; relative paths the user gave (e.g. -S download.glue_mirror=../shared/glue)
    mean the same there as in the workspace, so they resolve against <repo>, not against the copy."""
    cwd = Path(cwd or Path.cwd()).resolve()
    parts = cwd.parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return cwd


def user_path(value: str | Path) -> Path:
    """A path from params.yaml or the command line: ~ expanded, relative ones against `workspace_root()`."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else workspace_root() / path


def tag_columns(text_columns: tuple[str, ...]) -> list[str]:
    """postag.parquet's columns: one list of tags per text column."""
    return ["tags"] if len(text_columns) == 1 else [f"tags{i + 1}" for i in range(len(text_columns))]


def split_file(split: str) -> str:
    """dev_matched -> dev, test_mismatched -> test, train -> train."""
    return split.split("_")[0]


@dataclass(frozen=True)
class TaskPaths:
    """Every file of one task, under the three roots (relative to the repository root by default)."""
    task: str
    data_root: Path = Path("data")
    models_root: Path = Path("models")
    metrics_root: Path = Path("metrics")
    stage: str = ""  # set by for_stage: the metrics paths below then point into that stage's run folder

    @property
    def data(self) -> Path:
        return Path(self.data_root) / self.task

    def split(self, name: str) -> Path:
        return self.data / f"{split_file(name)}.parquet"

    @property
    def train(self) -> Path:
        return self.split("train")

    @property
    def task_file(self) -> Path:
        """The task's shape (distill/tasks.py), written by the download stage and read by every later one."""
        return self.data / "task.json"

    @property
    def download_report(self) -> Path:
        return self.data / "download.json"

    @property
    def postag(self) -> Path:
        return self.data / "postag.parquet"

    @property
    def tag_unigrams(self) -> Path:
        return self.data / "tag_unigrams.parquet"

    @property
    def transfer(self) -> Path:
        return self.data / "transfer.parquet"

    @property
    def transfer_iterations(self) -> Path:
        return self.data / "transfer_iterations.parquet"

    @property
    def teacher_vectors(self) -> Path:
        return self.data / "teacher_vectors.parquet"

    @property
    def logits(self) -> Path:
        return self.data / "teacher_logits.parquet"

    def model(self, kind: str) -> Path:
        return Path(self.models_root) / self.task / kind

    def run(self, stage: str) -> Path:
        """models/<task>/runs/<stage>/: what `stage` reports, laid out as metrics/<task>/ is."""
        if stage not in RUN_STAGES:
            raise ValueError(f"{stage!r} is not one of {RUN_STAGES}")
        return Path(self.models_root) / self.task / "runs" / stage

    def for_stage(self, stage: str) -> "TaskPaths":
        """These paths with metrics, scores, plots and reports inside `stage`'s run folder."""
        self.run(stage)
        return replace(self, stage=stage)

    @property
    def metrics(self) -> Path:
        """metrics/<task>/, or the run folder of the stage these paths are for (for_stage)."""
        return self.run(self.stage) if self.stage else Path(self.metrics_root) / self.task

    def scores(self, kind: str) -> Path:
        return self.metrics / f"{kind}.json"

    @property
    def speed(self) -> Path:
        return self.metrics / "speed.json"

    @property
    def plots(self) -> Path:
        return self.metrics / "plots"

    def curve(self, kind: str) -> Path:
        return self.plots / f"{kind}_curve.csv"

    @property
    def confusion(self) -> Path:
        return self.plots / "confusion"

    def report(self, name: str) -> Path:
        return self.metrics / "reports" / f"{name}.json"
