"""AdaDelta (§4.2's optimizer) for a model whose largest parameter is an embedding table.

A batch of 50 sentences touches a few hundred of the table's tens of thousands of rows; every other row has an
all-zero gradient. torch's Adadelta still runs its ten passes over the whole table each step (15 % of a training
step on one core: benchmarks/results/2026-11-26/student_step_breakdown.txt). On an all-zero row its update reduces to
exactly this: both running averages are multiplied by rho (then 0 is added, which changes nothing) and the weights
stay as they are (the step is sqrt(...) / sqrt(...) * 0 = 0). So this optimizer decays the whole table's two
averages and runs the full update only on the rows whose gradient has any bit set: the same numbers, bit for bit
(tests/test_student_optim.py checks that against torch.optim.Adadelta), in two passes over the table instead of ten.
"""
from __future__ import annotations

import torch


def nonzero_rows(grad: torch.Tensor) -> torch.Tensor:
    """Indices of the rows of a 2-D float32 tensor with any bit set: -0.0 counts as non-zero, since torch's update
    turns a -0.0 weight into +0.0 when its gradient is -0.0. Compared as 64-bit words where the rows allow it
    (2.5x faster than a float comparison, measured)."""
    wide = grad.dtype == torch.float32 and grad.shape[1] % 2 == 0 and grad.is_contiguous()
    words = grad.view(torch.int64) if wide else grad.view(torch.int32) if grad.dtype == torch.float32 else grad
    return words.ne(0).any(dim=1).nonzero().squeeze(1)


class RowSparseAdadelta(torch.optim.Adadelta):
    """torch.optim.Adadelta; a param group with row_sparse=True (2-D tables) is updated row-sparsely, as above."""

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, **kwargs):
        super().__init__(params, lr=lr, rho=rho, eps=eps, **kwargs)
        for group in self.param_groups:
            if group.get("row_sparse") and (group["weight_decay"] or group["maximize"] or
                                            any(p.dim() != 2 for p in group["params"])):
                raise ValueError("row_sparse groups take 2-D tables, without weight decay or maximize")

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("RowSparseAdadelta.step takes no closure")
        held = []
        try:
            for group in self.param_groups:
                if group.get("row_sparse"):
                    for p in group["params"]:
                        if p.grad is not None:
                            self._update_rows(p, group)
                            held.append((p, p.grad))
                            p.grad = None  # done: torch's step below skips it
            return super().step()
        finally:
            for p, grad in held:
                p.grad = grad

    def _update_rows(self, p: torch.Tensor, group: dict) -> None:
        """torch's _single_tensor_adadelta on the rows of p whose gradient is not all zero; the decay on the rest."""
        if p.grad.is_sparse:
            raise RuntimeError("Adadelta does not support sparse gradients")
        state = self.state[p]
        if not state:  # as torch initialises it, so the state is interchangeable with torch's
            state["step"] = torch.zeros((), dtype=torch.get_default_dtype())
            state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        state["step"] += 1
        lr, rho, eps = group["lr"], group["rho"], group["eps"]
        rows = nonzero_rows(p.grad)
        grad = p.grad.index_select(0, rows)
        old_acc = acc_delta.index_select(0, rows)
        square_avg.mul_(rho)
        acc_delta.mul_(rho)
        avg = square_avg.index_select(0, rows).addcmul_(grad, grad, value=1 - rho)
        std = avg.add(eps).sqrt_()
        delta = old_acc.add_(eps).sqrt_()
        delta.div_(std).mul_(grad)
        square_avg.index_copy_(0, rows, avg)
        acc_delta.index_copy_(0, rows, acc_delta.index_select(0, rows).addcmul_(delta, delta, value=1 - rho))
        p.index_copy_(0, rows, p.index_select(0, rows).add_(delta, alpha=-lr))
