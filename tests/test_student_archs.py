"""student.arch: the cnn (Kim 2014), bow and linear students beside the paper's BiLSTM. Each arch: shapes single and
pair, the siamese features, the maths against a per-text reference written out by hand, export parity with torch,
the fast CPU paths, MAC counts against weight counts, a few AdaDelta steps lowering the loss, params validation,
and the stages from training to benchmark."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import one_line_error, run_stage
from distill import config
from distill.inference import pooled
from distill.inference.arithmetic import student_macs
from distill.inference.export import write_export
from distill.inference.predictor import Predictor
from distill.io import UserError
from distill.report.benchmark import reference_logits, run_benchmark
from distill.student.batching import Dataset, predict_logits
from distill.student.model import CNN_WIDTHS, Embedder, StudentClassifier, StudentConfig, count_parameters, \
    load_student, save_student
from distill.student.params import ARCHS, BaselineParams, StudentParams
from distill.student.train import adadelta, distill_loss
from distill.teacher.model import load_teacher
from helpers import builtin_task, cli_dirs, random_texts, write_params, write_task_data

OTHER_ARCHS = ("cnn", "bow", "linear")


def arch_student(arch: str, vocab_size: int, *, pair: bool = False, multichannel: bool = True,
                 embedding_dim: int = 5, num_labels: int = 3, seed: int = 0, jitter: float = 0.1):
    """A small student of `arch` (hidden 7, filters 4, FC 11 where the arch has them), weights jittered (so the
    frozen embedding copy differs from the trainable one, as after training), in eval mode."""
    torch.manual_seed(seed)
    cfg = StudentConfig(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden=7 if arch == "bilstm" else 0,
                        fc=0 if arch == "linear" else 11, num_labels=num_labels, pair=pair,
                        multichannel=multichannel, embeddings="random", arch=arch,
                        filters=4 if arch == "cnn" else 0)
    model = StudentClassifier(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * jitter)
    return model.eval()


# ---- the models --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_single_and_pair(arch):
    ids, lengths = torch.tensor([[3, 4, 5, 6, 7, 8, 9], [6, 0, 0, 0, 0, 0, 0]]), torch.tensor([7, 1])
    single, pair = arch_student(arch, 50), arch_student(arch, 50, pair=True)
    assert single(ids, lengths).shape == (2, 3)
    assert pair(ids, lengths, ids.flip(0), lengths.flip(0)).shape == (2, 3)
    assert single(ids[:, :2], lengths.clamp(max=2)).shape == (2, 3)  # shorter than the widest filter
    width = {"bilstm": 2 * 7, "cnn": 3 * 4, "bow": 2 * 10, "linear": 10}[arch]  # embeddings 2 x 5 (multichannel)
    assert single.encoder(ids, lengths).shape == (2, width)
    first = single.classifier_layers()[0]
    assert first.in_features == width and pair.classifier_layers()[0].in_features == 4 * width
    assert len(single.classifier_layers()) == (1 if arch == "linear" else 2)


def test_parameter_counts_by_hand():
    def count(arch, pair=False):
        return count_parameters(arch_student(arch, 20, pair=pair, embedding_dim=6, num_labels=2), False)

    D = 12  # 2 x 6, multichannel
    convs = sum(4 * D * w + 4 for w in CNN_WIDTHS)
    assert count("cnn") == convs + (12 * 11 + 11) + (11 * 2 + 2)
    assert count("cnn", pair=True) == convs + (48 * 11 + 11) + (11 * 2 + 2)
    assert count("bow") == (2 * D * 11 + 11) + (11 * 2 + 2)
    assert count("linear") == D * 2 + 2 and count("linear", pair=True) == 4 * D * 2 + 2


@pytest.mark.parametrize("arch", ARCHS)
def test_siamese_encoder_shared_and_features(arch):
    model = arch_student(arch, 50, pair=True)
    captured = []
    model.classifier[0].register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    a, la = torch.tensor([[3, 4, 5, 6, 9, 10]]), torch.tensor([6])
    b, lb = torch.tensor([[7, 8, 0, 0, 0, 0]]), torch.tensor([2])
    with torch.no_grad():
        model(a, la, b, lb)
        model(b, lb, a, la)
        h_a, h_b = model.encoder(a, la), model.encoder(b, lb)
    f_ab, f_ba = captured
    torch.testing.assert_close(f_ab, torch.cat([h_a, h_b, h_a * h_b, (h_a - h_b).abs()], dim=1))
    h = h_a.shape[1]
    assert torch.equal(f_ab[:, :h], f_ba[:, h:2 * h]) and torch.equal(f_ab[:, h:2 * h], f_ba[:, :h])
    assert sum(isinstance(m, Embedder) for m in model.modules()) == 1  # one encoder for both sides


def _by_hand(model, ids: list[int]) -> np.ndarray:
    """One text's encoding written out from the definitions, in float64 loops (no conv or pooling op)."""
    table = model.embedding_table().double().numpy()
    x = table[ids or [0]]  # an empty text is one [PAD]
    if model.cfg.arch == "bow":
        return np.concatenate([x.mean(0), x.max(0)])
    if model.cfg.arch == "linear":
        return x.mean(0)
    n = len(x)
    x = np.concatenate([x, np.repeat(table[[0]], max(0, 5 - n), axis=0)])  # [PAD] up to the widest filter
    out = []
    for conv in model.encoder.convs:
        w = conv.kernel_size[0]
        weight, bias = conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy()
        windows = [bias + sum(weight[:, :, k] @ x[p + k] for k in range(w)) for p in range(max(n - w + 1, 1))]
        out.append(np.maximum(np.max(windows, axis=0), 0))
    return np.concatenate(out)


@pytest.mark.parametrize("arch", OTHER_ARCHS)
def test_encoder_is_its_definition_whatever_the_batch(arch, student_corpus):
    """Each row read to its own length: short texts (under 5 tokens: [PAD] windows), empty texts and padding from
    longer batch mates change nothing."""
    rng, words, vocab = student_corpus
    model = arch_student(arch, len(vocab))
    texts = random_texts(rng, 40, words) + ["", "w1", "w1 w2", "w1 w2 w3 w4", "w1 w2 w3 w4 w5"]
    rows = [vocab.encode(t) for t in texts]
    data = Dataset(vocab, [texts])
    with torch.no_grad():
        got = model.encoder(*data.inputs(np.arange(len(texts)))).double().numpy()
    want = np.stack([_by_hand(model, r) for r in rows])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


# ---- export, fast paths ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", OTHER_ARCHS)
@pytest.mark.parametrize("task", ["rotten_tomatoes", "qqp"])  # single sentence; siamese pair
def test_export_equals_torch(tmp_path, arch, task, student_corpus):
    rng, words, vocab = student_corpus
    spec = builtin_task(task)
    model = arch_student(arch, len(vocab), pair=spec.is_pair, num_labels=spec.num_labels)
    columns = [random_texts(rng, 97, words) for _ in spec.text_columns]  # empty and one-token texts among them
    want = predict_logits(model, Dataset(vocab, columns), 50)
    write_export(model, vocab, spec, "student", tmp_path)
    info = json.loads((tmp_path / "export.json").read_text())
    assert info["architecture"]["arch"] == arch and info["model"]["inputs"][:2] == ["ids", "lengths"]
    for batch_size in (512, 7):
        got = Predictor.load(tmp_path, batch_size=batch_size).predict_normalized(columns).logits
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", OTHER_ARCHS)
@pytest.mark.parametrize("pair", [False, True])
def test_fast_paths_equal_the_reference(arch, pair, student_corpus, monkeypatch):
    rng, words, vocab = student_corpus
    model = arch_student(arch, len(vocab), pair=pair)
    first = random_texts(rng, 120, words)
    second = random_texts(rng, 120, words) if pair else None
    want = reference_logits(model, vocab, first, second, 50)
    fast, onnx = pooled.fast_student(model, vocab), pooled.onnx_student(model, vocab)
    assert isinstance(fast, pooled.PooledStudent) and isinstance(onnx, pooled.OnnxGraphStudent)
    for path in (fast, onnx):
        for batch_size in (512, 13):
            np.testing.assert_allclose(path.logits(first, second, batch_size), want, atol=1e-5, rtol=0)
        one = np.concatenate([path.logits(first[i:i + 1], None if second is None else second[i:i + 1])
                              for i in range(10)])
        np.testing.assert_allclose(one, want[:10], atol=1e-5, rtol=0)
    expected = {"cnn": "folded", "bow": "bag", "linear": "bag" if pair else "folded"}[arch]
    assert fast.cell == expected
    if arch == "cnn":  # past the size limit: conv1d over the texts laid end to end, the same numbers
        monkeypatch.setattr(pooled, "_FOLDED_TABLE_BYTES", 0)
        unfolded = pooled.PooledStudent(model, vocab)
        assert unfolded.cell == "conv1d"
        np.testing.assert_allclose(unfolded.logits(first, second, 13), want, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="pair model needs"):
        fast.logits(first, None if pair else first)


def test_pooled_student_refuses_the_bilstm(student_corpus):
    _, _, vocab = student_corpus
    with pytest.raises(ValueError, match="not 'bilstm'"):
        pooled.PooledStudent(arch_student("bilstm", len(vocab)), vocab)


@pytest.mark.parametrize("arch", OTHER_ARCHS)
def test_student_macs_count_every_weight_once_per_window(arch):
    """cnn: each width's weights once per window (a text shorter than the width: one window); bow and linear:
    pooling has no products, only the classifier's weights count."""
    for pair in (False, True):
        model = arch_student(arch, 30, pair=pair)
        fc = sum(layer.weight.numel() for layer in model.classifier_layers())
        for tokens in ([1], [4], [9], [9, 2]):
            if arch == "cnn":
                convs = {c.kernel_size[0]: c.weight.numel() for c in model.encoder.convs}
                encoder = sum(max(n - w + 1, 1) * size for n in tokens for w, size in convs.items())
            else:
                encoder = 0
            assert student_macs(model.cfg, tokens) == encoder + fc
        assert student_macs(model.cfg, 9) == student_macs(model.cfg, [9])


def test_run_benchmark_record_of_another_arch(student_corpus, tiny_teacher):
    rng, words, vocab = student_corpus
    model = arch_student("cnn", len(vocab), pair=True)
    first, second = random_texts(rng, 40, words), random_texts(rng, 40, words)
    tmodel, tok = load_teacher(tiny_teacher, "cpu")
    res = run_benchmark(first, second, (model, vocab), (tmodel, tok), batch_size=16, repeats=1, max_length=64,
                        device=torch.device("cpu"), progress=False)
    s = res["student"]
    assert s["arch"] == "cnn" and set(s["paths"]) == {"reference", "fast", "onnxruntime"}
    assert s["cell"] == "folded" and max(s["max_abs_logit_diff_vs_reference"].values()) < 1e-4
    lengths = [[max(len(a.split()), 1), max(len(b.split()), 1)] for a, b in zip(first, second)]
    assert s["model_gflop"] == pytest.approx(2 * sum(student_macs(model.cfg, n) for n in lengths) / 1e9)
    assert s["gflops"] == pytest.approx(s["model_gflop"] / s["paths"]["fast"]["seconds"])
    assert "recurrent_gflop" not in s and s["peak_gflops"] > 0
    with pytest.raises(UserError, match="the reduced-precision path is the BiLSTM's fused kernel, and this student "
                                        "is a cnn"):
        run_benchmark(first, second, (model, vocab), None, batch_size=16, repeats=1, max_length=64,
                      device=torch.device("cpu"), progress=False, precision="int8")


# ---- training ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("pair", [False, True])
def test_a_few_adadelta_steps_lower_the_loss(arch, pair, student_corpus):
    _, words, vocab = student_corpus
    rng = np.random.default_rng(5)  # its own: the same data whatever ran before
    torch.manual_seed(0)
    model = arch_student(arch, len(vocab), pair=pair, num_labels=2, jitter=0.0).train()
    columns = [random_texts(rng, 32, words) for _ in range(2 if pair else 1)]
    teacher = torch.from_numpy(rng.normal(scale=2.0, size=(32, 2)).astype(np.float32))
    inputs = Dataset(vocab, columns).inputs(np.arange(32))
    optimizer = adadelta(model, lr=1.0, rho=0.95)
    losses = []
    for _ in range(30):
        loss = distill_loss(model(*inputs), teacher, None, alpha=0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses  # (here 0.17 to 0.83 of the first loss; linear moves slowest)
    assert not model.encoder.embed.frozen.weight.requires_grad  # the frozen channel stays out of the update


# ---- params and configs ------------------------------------------------------------------------------------------
def test_params_validation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, student={"arch": "gru"})
    for cls in (StudentParams, BaselineParams):
        with pytest.raises(UserError) as err:
            config.load(cls, "rotten_tomatoes", "params.yaml")
        assert str(err.value) == ("params.yaml: student.arch must be one of bilstm, cnn, bow, linear, got 'gru'")
    write_params(tmp_path, student={"arch": "cnn", "filters": 0})
    with pytest.raises(UserError, match=r"^params.yaml: student.filters must be an integer >= 1, got 0$"):
        config.load(StudentParams, "rotten_tomatoes", "params.yaml")
    write_params(tmp_path, student={"arch": "cnn", "filters": 100})
    cfg = config.load(BaselineParams, "rotten_tomatoes", "params.yaml", arch="bow")
    assert (cfg.arch, cfg.filters) == ("bow", 100)
    assert {"student.arch", "student.filters"} <= set(StudentParams.tracked_keys())
    assert {"student.arch", "student.filters"} <= set(BaselineParams.tracked_keys())


def test_train_stage_rejects_an_unknown_arch_in_one_line(tmp_path):
    write_task_data(tmp_path)
    write_params(tmp_path)
    proc = run_stage("train.py", "baseline", "--task", "rotten_tomatoes", "--set", "student.arch=rnn",
                     *cli_dirs(tmp_path, "data", "models", "params"), check=False)
    assert one_line_error(proc) == "error: --set student.arch must be one of bilstm, cnn, bow, linear, got 'rnn'"


def test_config_without_arch_loads_as_bilstm_and_a_bad_one_is_refused(tmp_path, student_corpus):
    _, _, vocab = student_corpus
    save_student(arch_student("bilstm", len(vocab)), vocab, tmp_path / "old")
    raw = json.loads((tmp_path / "old" / "config.json").read_text())
    assert (raw["arch"], raw["filters"]) == ("bilstm", 0)
    del raw["arch"], raw["filters"]  # a model saved before there was a choice
    (tmp_path / "old" / "config.json").write_text(json.dumps(raw))
    model, _ = load_student(tmp_path / "old")
    assert model.cfg.arch == "bilstm" and model.cfg.filters == 0
    save_student(arch_student("cnn", len(vocab)), vocab, tmp_path / "cnn")
    loaded, _ = load_student(tmp_path / "cnn")
    assert loaded.cfg.arch == "cnn" and loaded.cfg.filters == 4
    for change, message in (({"arch": "transformer"}, "arch must be one of bilstm, cnn, bow, linear"),
                            ({"filters": 0}, "arch cnn needs filters >= 1, got 0")):
        (tmp_path / "cnn" / "config.json").write_text(json.dumps({**json.loads(
            (tmp_path / "old" / "config.json").read_text()), "arch": "cnn", "filters": 4, **change}))
        with pytest.raises(UserError, match=message):
            load_student(tmp_path / "cnn")
    with pytest.raises(ValueError, match="arch must be one of"):
        StudentClassifier(StudentConfig(10, 4, 0, 3, 2, False, False, "random", arch="rnn"))


# ---- the stages --------------------------------------------------------------------------------------------------
@pytest.mark.long
def test_stages_from_training_to_benchmark(tmp_path, tiny_teacher):
    """The student a cnn, the baseline a bow (the stages read each model's arch from its config.json): trained,
    evaluated, exported (checked against torch) and benchmarked."""
    paths = write_task_data(tmp_path, n_train=40, n_dev=12, n_test=12)
    shutil.copytree(tiny_teacher, paths.model("teacher"))
    write_params(tmp_path, student={"embeddings": "random", "fc": 6, "filters": 5, "epochs": 2, "bf16": False},
                 benchmark={"batch_size": 8, "repeats": 1, "max_sentences": 16, "latency_sentences": 6,
                            "curve_sentences": 8})
    dirs = cli_dirs(tmp_path, "data", "models", "params")
    run_stage("train.py", "student", "--task", "rotten_tomatoes", "--set", "student.arch=cnn", *dirs)
    run_stage("train.py", "baseline", "--task", "rotten_tomatoes", "--set", "student.arch=bow", *dirs)
    student = json.loads((paths.model("student") / "config.json").read_text())
    baseline = json.loads((paths.model("baseline") / "config.json").read_text())
    assert (student["arch"], student["filters"], student["hidden"], student["fc"]) == ("cnn", 5, 0, 6)
    assert (baseline["arch"], baseline["filters"], baseline["hidden"], baseline["fc"]) == ("bow", 0, 0, 6)
    run_stage("evaluate.py", "--task", "rotten_tomatoes", *dirs)
    scores = json.loads(paths.for_stage("evaluate").scores("student").read_text())["rotten_tomatoes"]["student"]
    assert 0 <= scores["dev"]["accuracy"] <= 1 and scores["params"]["total"] == student["params"]["total"]
    run_stage("export.py", "--task", "rotten_tomatoes", *dirs)
    for kind in ("student", "baseline"):
        check = json.loads((paths.model("export") / kind / "export.json").read_text())["check"]
        assert check["max_abs_logit_diff_vs_torch"] <= 1e-5 and check["argmax_agreement"] == 1.0
    run_stage("benchmark.py", "--task", "rotten_tomatoes", *dirs)
    runs = paths.for_stage("benchmark")
    speed = json.loads(runs.speed.read_text())["rotten_tomatoes"]
    assert speed["student"]["arch"] == "cnn" and speed["baseline"]["arch"] == "bow"
    assert speed["student"]["sentences_per_s"] > 0 and speed["latency"]["student_onnx"]["p99_ms"] > 0
    report = json.loads(runs.report("benchmark").read_text())
    assert report["service"]["arch"] == "cnn" and report["service"]["fast"]["cell"] == "folded"
    table = pd.read_csv(runs.plots / "accuracy_vs_speed.csv")
    assert table["arch"].tolist() == ["bert", "cnn", "bow"]
    assert (table.loc[:1, "batch1_p99_ms"] > 0).all()
