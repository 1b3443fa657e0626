"""selfbias._fused: the gated MLP run in place during scoring, bit for bit the module's own output."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from selfbias._fused import inplace_mlp


def _mlps(model):
    return [m for m in model.modules() if hasattr(m, "gate_proj")]


def test_inplace_mlp_is_exact_and_restores_the_forward(tiny):
    ids = torch.tensor([[5, 9, 2, 7, 11]])
    with torch.inference_mode():
        before = tiny.model(input_ids=ids).logits
        with inplace_mlp(tiny) as swapped:
            assert swapped
            assert all("forward" in m.__dict__ for m in _mlps(tiny.model))
            during = tiny.model(input_ids=ids).logits
        after = tiny.model(input_ids=ids).logits
    assert torch.equal(before, during) and torch.equal(before, after)
    assert not any("forward" in m.__dict__ for m in _mlps(tiny.model))


def test_inplace_mlp_not_while_gradients_are_recorded(tiny):
    with torch.enable_grad(), inplace_mlp(tiny) as swapped:
        assert not swapped
        assert not any("forward" in m.__dict__ for m in _mlps(tiny.model))


class _SummedMLP(torch.nn.Module):
    """Gate, up and down projections combined by a sum, not a product: the swap would change it."""

    def __init__(self):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = (torch.nn.Linear(4, 8, bias=False),
                                                        torch.nn.Linear(4, 8, bias=False),
                                                        torch.nn.Linear(8, 4, bias=False))
        self.act_fn = torch.nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) + self.up_proj(x))


def test_inplace_mlp_leaves_an_mlp_it_would_change():
    model = torch.nn.Sequential(_SummedMLP())
    with torch.inference_mode(), inplace_mlp(SimpleNamespace(model=model)) as swapped:
        assert not swapped
        assert "forward" not in model[0].__dict__
