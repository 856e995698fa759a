"""distill/student/optim.py: the row-sparse AdaDelta gives torch.optim.Adadelta's numbers bit for bit."""
import pytest
import torch

from distill.student.model import StudentClassifier, StudentConfig
from distill.student.optim import RowSparseAdadelta, nonzero_rows
from distill.student.train import adadelta

VOCAB = 1037  # not a multiple of any vector width: tails take the scalar paths


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().view(torch.int32)  # torch.equal on floats would take -0.0 for +0.0


def train(sparse: bool, threads: int, steps: int = 40):
    """A multichannel student trained on random batches (padding included) with one optimizer or the other."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = StudentClassifier(StudentConfig(VOCAB, 50, 24, 16, 3, False, True, "random"), torch.randn(VOCAB, 50))
        model.train()
        opt = adadelta(model, 1.0, 0.95) if sparse else torch.optim.Adadelta(
            [p for p in model.parameters() if p.requires_grad], lr=1.0, rho=0.95)
        g = torch.Generator().manual_seed(1)
        for _ in range(steps):
            width = int(torch.randint(2, 20, (1,), generator=g))
            ids = torch.randint(1, VOCAB, (50, width), generator=g)
            lengths = torch.randint(1, width + 1, (50,), generator=g)
            ids[torch.arange(width)[None] >= lengths[:, None]] = 0
            loss = (model(ids, lengths) - torch.randn(50, 3, generator=g)).pow(2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return model, opt
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_same_weights_and_state_as_torch_adadelta(threads):
    ref_model, ref_opt = train(False, threads)
    model, opt = train(True, threads)
    for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
        assert torch.equal(bits(p), bits(q)), name
    table, ref_table = model.encoder.embed.trainable.weight, ref_model.encoder.embed.trainable.weight
    for key in ("step", "square_avg", "acc_delta"):
        assert torch.equal(bits(opt.state[table][key]), bits(ref_opt.state[ref_table][key])), key
    assert table.grad is not None  # as after torch's step: the gradient stays until zero_grad


def test_the_table_alone_is_row_sparse_and_the_frozen_copy_is_left_out():
    model = StudentClassifier(StudentConfig(20, 4, 3, 5, 2, False, True, "random"))
    sparse, dense = adadelta(model, 1.0, 0.95).param_groups
    assert sparse["row_sparse"] and sparse["params"] == [model.encoder.embed.trainable.weight]
    frozen = model.encoder.embed.frozen.weight
    assert all(p is not frozen for p in dense["params"])
    assert len(dense["params"]) == sum(p.requires_grad for p in model.parameters()) - 1


def test_only_what_the_shortcut_holds_for_is_accepted():
    table, bias = torch.nn.Parameter(torch.zeros(4, 3)), torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="row_sparse"):
        RowSparseAdadelta([{"params": [table], "row_sparse": True, "weight_decay": 0.1}])
    with pytest.raises(ValueError, match="row_sparse"):
        RowSparseAdadelta([{"params": [bias], "row_sparse": True}])
    with pytest.raises(ValueError, match="closure"):
        RowSparseAdadelta([{"params": [table], "row_sparse": True}]).step(lambda: 0.0)


@pytest.mark.parametrize("width", [4, 5])  # 64-bit words, and the 32-bit fallback
def test_a_row_is_touched_by_any_bit_minus_zero_included(width):
    grad = torch.zeros(6, width)
    grad[1, width - 1] = -0.0
    grad[3, 0] = 1e-45  # the smallest subnormal
    grad[4, 2] = float("nan")
    assert nonzero_rows(grad).tolist() == [1, 3, 4]


def test_minus_zero_weight_and_gradient_end_as_torch_leaves_them():
    """torch turns a -0.0 weight with a -0.0 gradient into +0.0 (-0.0 + -lr * -0.0): so must the shortcut."""
    results = []
    for make in (lambda ps: torch.optim.Adadelta(ps, lr=1.0, rho=0.95),
                 lambda ps: RowSparseAdadelta([{"params": ps, "row_sparse": True}], lr=1.0, rho=0.95)):
        table = torch.nn.Parameter(torch.tensor([[-0.0, 1.0], [-0.0, 2.0], [3.0, 4.0]]))
        table.grad = torch.tensor([[-0.0, -0.0], [0.0, 0.0], [0.5, -0.5]])
        make([table]).step()
        results.append(bits(table))
    assert torch.equal(*results)
    assert results[0][0, 0] == 0 and results[0][1, 0] != 0  # +0.0 now; the untouched row kept its -0.0
