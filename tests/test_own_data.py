"""Your own data (README "Your own data"): tasks declared only in params.yaml run the whole DAG with `dvc repro`.

One tiny repository runs four tasks side by side: a CSV task (3 classes, train/dev/test files), a JSON Lines
sentence-pair task (2 classes, one file split here), a Parquet 4-class task with integer labels named in
params.yaml, and MNLI from a GLUE-layout folder holding the real train / dev_matched / dev_mismatched rows
of tests/fixtures/mnli. Every output is checked against the data it came from."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvc_helpers import REPO, copy_repo, dvc, git, read_params, shrink_models, write_params
from helpers import make_tiny_teacher, ticket_texts

FIXTURE = REPO / "tests" / "fixtures" / "mnli"
TASKS = ["tickets_csv", "pairs_jsonl", "topics_parquet", "mnli"]


def _write_user_files(root: Path) -> None:
    raw = root / "raw"
    raw.mkdir()
    labels3 = ["billing", "bug", "feature"]
    rows = ticket_texts(150, labels3, seed=1)
    for name, part in (("train", rows[:90]), ("dev", rows[90:120]), ("test", rows[120:])):
        pd.DataFrame({"ticket": [t for t, _ in part], "kind": [y for _, y in part]}).to_csv(raw / f"{name}.csv",
                                                                                         index=False)
    # pairs: same class words in both texts -> "same" (1), else "different" (0); JSON Lines, one file, split here
    rng = np.random.default_rng(2)
    texts = ticket_texts(240, labels3, seed=3)
    with open(raw / "pairs.jsonl", "w") as fh:
        for i in range(0, 240, 2):
            (a, ya), (b, yb) = texts[i], texts[i + 1 if rng.random() < 0.5 else (i + 3) % 240]
            fh.write(json.dumps({"q1": a, "q2": b, "same": int(ya == yb)}) + "\n")
    labels4 = ["billing", "bug", "feature", "praise"]
    rows = ticket_texts(200, labels4, seed=4)
    codes = {name: 10 * (i + 1) for i, name in enumerate(labels4)}  # integer labels in the file: 10, 20, 30, 40
    for name, part in (("train", rows[:120]), ("dev", rows[120:160]), ("test", rows[160:])):
        pd.DataFrame({"body": [t for t, _ in part], "topic": np.array([codes[y] for _, y in part], np.int64)}
                     ).to_parquet(raw / f"{name}.parquet", index=False)


def _write_mnli_mirror(root: Path) -> Path:
    """GLUE layout with the fixture's real MNLI rows: MNLI/train.tsv, dev_matched.tsv, dev_mismatched.tsv."""
    folder = root / "glue" / "MNLI"
    folder.mkdir(parents=True)
    for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        shutil.copy(FIXTURE / name, folder / name)
    return folder.parent


@pytest.fixture(scope="module")
def own_data_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    repo = root / "repo"
    repo.mkdir()
    copy_repo(repo)
    _write_user_files(repo)  # relative paths in params.yaml resolve against the repository root
    glue = _write_mnli_mirror(root)
    teacher = make_tiny_teacher(root / "tiny-teacher")
    params = read_params(repo)
    params["tasks"] = TASKS
    params["datasets"].update({
        "tickets_csv": {"train": "raw/train.csv", "dev": "raw/dev.csv", "test": "raw/test.csv", "text": "ticket",
                        "label": "kind", "labels": ["billing", "bug", "feature"]},
        "pairs_jsonl": {"file": "raw/pairs.jsonl", "split": {"dev": 0.2, "test": 0.1}, "text": ["q1", "q2"],
                        "label": "same", "labels": {"different": 0, "same": 1}, "f1_label": "same"},
        "topics_parquet": {"train": "raw/train.parquet", "dev": "raw/dev.parquet", "test": "raw/test.parquet",
                           "text": "body", "label": "topic",
                           "labels": {"billing": 10, "bug": 20, "feature": 30, "praise": 40}},
    })
    params["download"]["glue_mirror"] = str(glue)
    for task in TASKS:
        params["augment"]["n_iter"][task] = 1
        params["student"]["batch_size"][task] = 32
    shrink_models(params, teacher, teacher_lr=3e-4, shard_rows=500, max_sentences=32)
    write_params(repo, params)
    git(repo, "init", "-q", "-b", "main")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "repro", timeout=1500)
    return repo


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_csv_task_runs_the_whole_dag(own_data_repo):
    repo = own_data_repo
    data = repo / "data" / "tickets_csv"
    task = _json(data / "task.json")
    assert task["labels"] == ["billing", "bug", "feature"] and task["eval_splits"] == ["dev", "test"]
    train = pd.read_parquet(data / "train.parquet")
    source = pd.read_csv(repo / "raw" / "train.csv")
    assert len(train) == len(source) == 90
    assert train["idx"].tolist() == list(range(2, 92))  # the CSV line each row came from (header = line 1)
    assert train["label"].tolist() == [["billing", "bug", "feature"].index(k) for k in source["kind"]]
    assert train["sentence"][0] == source["ticket"][0].lower().replace("!", " !")  # lower-cased, tokenized
    scores = _json(repo / "metrics" / "tickets_csv" / "student.json")["tickets_csv"]["student"]
    assert set(scores) == {"dev", "test", "params"} and set(scores["dev"]) == {"accuracy", "macro_f1"}
    report = _json(repo / "metrics" / "tickets_csv" / "reports" / "evaluate.json")
    per_class = report["models"]["teacher"]["dev"]["per_class"]
    assert list(per_class) == ["billing", "bug", "feature"] and sum(c["support"] for c in per_class.values()) == 30
    confusion = pd.read_csv(repo / "metrics" / "tickets_csv" / "plots" / "confusion" / "student.csv")
    assert set(confusion["actual"]) == {"billing", "bug", "feature"}
    assert _json(repo / "models" / "tickets_csv" / "teacher" / "config.json")["id2label"] == {
        "0": "billing", "1": "bug", "2": "feature"}


def test_predict_prints_label_names_with_a_header(own_data_repo):
    proc = subprocess.run([sys.executable, "-m", "stages.predict", "--model", "models/tickets_csv/student"],
                          cwd=own_data_repo, input="My invoice was charged twice\n\nthe app shows an error\n",
                          capture_output=True, text=True, check=True)
    lines = proc.stdout.split("\n")
    assert lines[0] == "label\tp_billing\tp_bug\tp_feature"
    assert lines[2] == "" and len(lines) == 5
    for line in (lines[1], lines[3]):
        name, *probs = line.split("\t")
        assert name in ("billing", "bug", "feature") and abs(sum(map(float, probs)) - 1) < 1e-3
        assert name == ("billing", "bug", "feature")[int(np.argmax([float(p) for p in probs]))]


def test_jsonl_pair_task_is_split_here_and_runs_siamese(own_data_repo):
    repo = own_data_repo
    data = repo / "data" / "pairs_jsonl"
    frames = {s: pd.read_parquet(data / f"{s}.parquet") for s in ("train", "dev", "test")}
    per_class = pd.read_json(repo / "raw" / "pairs.jsonl", lines=True)["same"].value_counts().tolist()
    assert sum(map(len, frames.values())) == 120
    assert len(frames["dev"]) == sum(max(1, round(0.2 * n)) for n in per_class)
    assert len(frames["test"]) == sum(max(1, round(0.1 * n)) for n in per_class)
    for df in frames.values():  # stratified: both classes in every split, rows in file order
        assert set(df["label"]) == {0, 1} and df["idx"].is_monotonic_increasing
    meta = _json(data / "download.json")
    assert meta["split"] == {"dev": 0.2, "test": 0.1, "seed": 13, "stratified": True}
    assert _json(repo / "models" / "pairs_jsonl" / "student" / "config.json")["pair"] is True
    scores = _json(repo / "metrics" / "pairs_jsonl" / "teacher.json")["pairs_jsonl"]["teacher"]
    assert set(scores["dev"]) == {"accuracy", "f1"}  # f1_label: same


def test_parquet_four_class_task_maps_integer_labels(own_data_repo):
    repo = own_data_repo
    train = pd.read_parquet(repo / "data" / "topics_parquet" / "train.parquet")
    source = pd.read_parquet(repo / "raw" / "train.parquet")
    assert train["label"].tolist() == [t // 10 - 1 for t in source["topic"]]
    assert train["idx"].tolist() == list(range(1, 121))  # Parquet rows, counted from 1
    logits = pd.read_parquet(repo / "data" / "topics_parquet" / "teacher_logits.parquet")
    assert {len(z) for z in logits["logits"]} == {4}
    student = _json(repo / "metrics" / "topics_parquet" / "student.json")["topics_parquet"]["student"]
    assert 0 <= student["dev"]["macro_f1"] <= 1 and 0 <= student["test"]["accuracy"] <= 1
    speed = _json(repo / "metrics" / "topics_parquet" / "speed.json")["topics_parquet"]
    assert speed["student"]["sentences_per_s"] > 0 and speed["speedup"] > 0


def test_mnli_fixture_reports_matched_and_mismatched(own_data_repo):
    repo = own_data_repo
    dev = pd.read_parquet(repo / "data" / "mnli" / "dev.parquet")
    assert dev["split"].tolist() == ["dev_matched"] * 5 + ["dev_mismatched"] * 5
    assert dev["label"].tolist() == [2, 0, 1, 0, 0, 0, 0, 1, 0, 1]  # contradiction, entailment, neutral = 0, 1, 2
    assert dev["sentence2"][0] == "everyone really likes the newest benefits"  # the trailing space is gone
    train = pd.read_parquet(repo / "data" / "mnli" / "train.parquet")
    assert len(train) == 18  # no row swallowed by a quote
    quoted = train[train["sentence1"].str.startswith("he guesses")].iloc[0]  # GLUE train row 23271
    assert quoted["sentence1"] == 'he guesses " mrs. vandemeyer eyed him scornfully .'  # a lone quote, kept
    assert quoted["sentence2"] == '" he guesses " mrs. vandemeyer looked at him with disgust .'  # a quoting
    # reader would drop these quotes (pandas' default gives 'He guesses Mrs. Vandemeyer looked ...')
    for kind in ("teacher", "student", "baseline"):
        scores = _json(repo / "metrics" / "mnli" / f"{kind}.json")["mnli"][kind]
        assert {"dev_matched", "dev_mismatched"} <= set(scores)
        assert set(scores["dev_mismatched"]) == {"accuracy", "macro_f1"}
    report = _json(repo / "metrics" / "mnli" / "reports" / "evaluate.json")
    assert report["models"]["student"]["dev_mismatched"]["n"] == 5


def test_everything_is_up_to_date_and_shown(own_data_repo):
    status = dvc(own_data_repo, "status", "--json")
    assert json.loads(status.stdout) == {}
    shown = json.loads(dvc(own_data_repo, "metrics", "show", "--json").stdout)
    names = {k for rev in shown.values() for data in rev.get("data", {}).values() for k in data.get("data", {})}
    assert {"tickets_csv", "pairs_jsonl", "topics_parquet", "mnli"} <= names
