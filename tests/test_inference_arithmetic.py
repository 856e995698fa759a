"""distill/inference/arithmetic.py: the multiply-accumulates per request that bound the latency ratio."""
from transformers import BertConfig, BertForSequenceClassification

from distill.inference.arithmetic import request_arithmetic, student_macs, teacher_macs
from distill.student.model import StudentClassifier, StudentConfig


def _student_cfg(pair=False, multichannel=True):
    return StudentConfig(vocab_size=40, embedding_dim=6, hidden=5, fc=7, num_labels=3, pair=pair,
                         multichannel=multichannel, embeddings="random")


def test_student_macs_count_every_weight_once_per_step():
    """Each recurrence step touches every LSTM weight once (both directions), the classifier once a request:
    the count equals the model's own LSTM and FC weight sizes (biases and embeddings are not products)."""
    for pair in (False, True):
        for multichannel in (False, True):
            cfg = _student_cfg(pair, multichannel)
            model = StudentClassifier(cfg)
            lstm = sum(p.numel() for n, p in model.named_parameters() if "lstm" in n and "weight" in n)
            fc = sum(layer.weight.numel() for layer in model.classifier_layers())
            for tokens in (1, 9):
                assert student_macs(cfg, tokens) == tokens * lstm + fc


def test_teacher_macs_by_hand():
    # 2 layers, h 4, f 8, 3 tokens: per layer 3 * (4*16 + 2*4*8) + 2*9*4 = 3*128 + 72 = 456
    assert teacher_macs(4, 8, 2, 2, 3) == 2 * 456 + 16 + 8


def test_request_arithmetic_uses_each_models_own_tokens(tmp_path):
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "##s"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizerFast(str(tmp_path / "vocab.txt"))
    config = BertConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                        vocab_size=len(words), num_labels=3)
    teacher = BertForSequenceClassification(config)
    cfg = _student_cfg()
    texts = ["good films", ""]  # teacher: [CLS] good film ##s [SEP] = 5 tokens, then [CLS] [SEP]; student: 2, 1
    out = request_arithmetic(cfg, teacher.config, tok, [texts], max_length=16)
    want_t = (teacher_macs(8, 16, 2, 3, 5) + teacher_macs(8, 16, 2, 3, 2)) / 2
    want_s = (student_macs(cfg, 2) + student_macs(cfg, 1)) / 2
    assert out == {"requests": 2, "student_macs_mean": want_s, "teacher_macs_mean": want_t,
                   "teacher_over_student_macs": want_t / want_s}
    pair = request_arithmetic(_student_cfg(pair=True), teacher.config, tok, [texts, ["bad", "film"]], 16)
    # a pair is one request: the student runs both sentences (2 + 1, 1 + 1 steps), the teacher one joint sequence
    # ([CLS] good film ##s [SEP] bad [SEP] = 7, [CLS] [SEP] film [SEP] = 4)
    assert pair["student_macs_mean"] == (student_macs(_student_cfg(pair=True), 3)
                                         + student_macs(_student_cfg(pair=True), 2)) / 2
    assert pair["teacher_macs_mean"] == (teacher_macs(8, 16, 2, 3, 7) + teacher_macs(8, 16, 2, 3, 4)) / 2
