"""Model complexity: parameters, multiply-accumulates (MACs) and CPU latency.

What :func:`count_macs` counts
------------------------------
``method="hooks"`` (default, the number papers report): forward hooks on every
``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d`` and ``nn.Linear`` (subclasses included), one
count per module call, from the layer's shapes:

* conv: ``output elements x (in_channels / groups) x prod(kernel_size)``
* transposed conv: ``input elements x (out_channels / groups) x prod(kernel_size)``
* linear: ``output elements x in_features``

Biases, activations, normalisation, pooling, attention gates' element-wise products,
``grid_sample``/interpolation and any functional op called outside these modules are **not**
counted. A module that computes its declared conv in an equivalent but different way (e.g.
litefuse's reflection-border fix-up or a grouped 1x1 executed as a dense matmul) is counted for
the conv it declares.

``method="executed"``: ``torch.utils.flop_counter.FlopCounterMode`` over the actual aten calls,
``MACs = FLOPs / 2``. It sees functional convs/matmuls too (and every extra op an
implementation runs, such as border recomputation or zero blocks of a folded grouped conv),
but likewise ignores element-wise ops, pooling and ``grid_sample``, and it does not see aten
ops without a FLOP formula (e.g. a direct ``torch.mkldnn_convolution``, which LWC-DenseFuse's
NHWC pointwise path calls on CPU). For a plain conv both methods agree exactly (see the tests).

``method="auto"`` (what the benchmark runner and model cards report): the larger of the two.
Each method can only miss work -- hooks miss functional convs (DWSFusion calls ``F.conv2d`` on
module weights), the flop counter misses direct oneDNN calls -- so the larger count is the
closer one for networks of either style.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..errors import OptionError

__all__ = ["count_params", "count_macs", "LatencyStats", "measure_latency"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; shared parameters count once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _as_args(inputs: torch.Tensor | Sequence[Any]) -> tuple:
    return (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)


def _module_macs(module: nn.Module, inp: tuple, out: torch.Tensor) -> int:
    if isinstance(module, _CONV_T):
        k = math.prod(module.kernel_size)
        return inp[0].numel() * (module.out_channels // module.groups) * k
    if isinstance(module, _CONV):
        k = math.prod(module.kernel_size)
        return out.numel() * (module.in_channels // module.groups) * k
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


@torch.no_grad()
def count_macs(model: nn.Module, inputs: torch.Tensor | Sequence[Any], method: str = "hooks") -> int:
    """MACs of one ``model(*inputs)`` call; see the module docstring for what is counted.

    Counted on a float32 CPU copy of the model and inputs, so the number does not depend on the
    device or precision (a model may take other code paths on a GPU, and the flop counter sees
    different kernels there).
    """
    args = _as_args(inputs)
    if any(isinstance(a, torch.Tensor) and (a.device.type != "cpu" or a.dtype != torch.float32) for a in args) or any(
        p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()
    ):
        import copy

        model = copy.deepcopy(model).to("cpu", torch.float32)
        args = tuple(a.to("cpu", torch.float32) if isinstance(a, torch.Tensor) else a for a in args)
    if method == "auto":
        return max(count_macs(model, args, "hooks"), count_macs(model, args, "executed"))
    if method == "executed":
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            model(*args)
        return counter.get_total_flops() // 2
    if method != "hooks":
        raise OptionError(f"unknown method {method!r}; use 'hooks', 'executed' or 'auto'")
    total = 0

    def hook(module: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += _module_macs(module, inp, out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (*_CONV, *_CONV_T, nn.Linear))]
    try:
        model(*args)
    finally:
        for h in handles:
            h.remove()
    return total


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock seconds of repeated calls (after warm-up)."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)


def measure_latency(fn: Callable[[], Any], warmup: int = 3, repeats: int = 10) -> LatencyStats:
    """Time ``fn()`` ``repeats`` times after ``warmup`` calls, under ``torch.inference_mode``.

    Synchronises CUDA around each call when it is initialised, so GPU timings are real.
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() and torch.cuda.is_initialized() else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
    return LatencyStats(tuple(times))
