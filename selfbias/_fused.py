"""The gated MLP of a decoder run in place while the scorer's forward passes run (private).

Transformers' gated MLP, ``down(act(gate(x)) * up(x))`` (Llama, Qwen 2, Mistral, Gemma 3 ...), makes two
fresh activation tensors per layer besides the projections' outputs. On a CPU each fresh tensor of a
few MB comes as new pages from the operating system, and filling them costs as much as the
element-wise work itself: on SmolLM2 with 1,656 positions per pass the activation and the product took
170 ms of a 2.4 s scoring call; in place (``act_`` on the gate's output, then ``*= up``), 33 ms, and
the numbers are bit for bit the same (the same operations on the same values).

:func:`inplace_mlp` swaps the forward of each such module for the duration of a ``with`` block and
only when it is safe: no gradient is being recorded, the module carries no accelerate hook (a model
spread over devices keeps its own forward), and on first use per model the swapped forward is checked
to return exactly what the module's own forward returns.
"""

from __future__ import annotations

import contextlib
import types
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .models import LoadedModel

__all__ = ["inplace_mlp"]

_SILU = {"SiLU", "SiLUActivation"}  # torch's and transformers' (both F.silu; the exactness check confirms)
_EXACT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> whether the swap is exact


def _forward(self, x: torch.Tensor) -> torch.Tensor:
    """``down(act(gate(x)) * up(x))`` with the activation and the product written over the gate's output."""
    h = self.gate_proj(x)
    h = F.silu(h, inplace=True) if type(self.act_fn).__name__ in _SILU else self.act_fn(h)
    return self.down_proj(h.mul_(self.up_proj(x)))


def _gated_mlps(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules()
            if all(isinstance(getattr(m, name, None), torch.nn.Linear) for name in ("gate_proj", "up_proj", "down_proj"))
            and callable(getattr(m, "act_fn", None))
            and not hasattr(m, "_hf_hook") and "forward" not in m.__dict__]  # hooked or wrapped: left alone


def _exact(model: torch.nn.Module, mlps: list[torch.nn.Module]) -> bool:
    """Whether the swapped forward gives exactly the module's own output (checked once per model)."""
    if model not in _EXACT:
        mlp = mlps[0]
        weight = mlp.gate_proj.weight
        x = torch.randn((1, 3, weight.shape[1]), generator=torch.Generator().manual_seed(0)).to(weight)
        try:
            with torch.inference_mode():
                _EXACT[model] = bool(torch.equal(mlp.forward(x), _forward(mlp, x)))
        except Exception:  # a module of another shape than gate/up/down: left as it is
            _EXACT[model] = False
    return _EXACT[model]


@contextlib.contextmanager
def inplace_mlp(lm: LoadedModel) -> Iterator[bool]:
    """Run the model's gated MLPs in place inside the block (module doc); yields whether they are.

    Parameters
    ----------
    lm : LoadedModel
        The model; its modules get their own forward back when the block ends.

    Yields
    ------
    bool
        True when the MLPs were swapped; False (nothing changed) while gradients are recorded, for a
        model without gated MLPs, or where the swap would not be exact.
    """
    mlps = [] if torch.is_grad_enabled() else _gated_mlps(lm.model)
    if not mlps or not _exact(lm.model, mlps):
        yield False
        return
    for mlp in mlps:
        mlp.forward = types.MethodType(_forward, mlp)
    try:
        yield True
    finally:
        for mlp in mlps:
            del mlp.forward  # back to the class's forward
