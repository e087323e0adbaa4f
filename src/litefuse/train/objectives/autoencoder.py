"""Auto-encoder reconstruction objective of DenseFuse and LWC-DenseFuse.

Both networks are trained only to reconstruct single grey crops through ``model.reconstruct``;
fusion happens at test time between encoder and decoder. The loss is

    L = MSE(out, in) + λ·(1 − SSIM(out, in)) + μ·L1(|∇out|, |∇in|)

with SSIM from :func:`~litefuse.train.losses.ssim` (11×11 Gaussian, σ 1.5) and ∇ the Sobel
magnitude of :func:`~litefuse.train.losses.sobel_gradient`.

- **DenseFuse** trains with a constant λ and μ = 0. Its paper trains one model per
  λ ∈ {1, 10, 100, 1000}; litefuse's default is **λ = 100**, the model the official release
  uses at test time (its ``1e2`` weights). On [0, 1] images MSE is of order 1e-3 while
  1 − SSIM is of order 1e-2, so λ = 100 makes structure the dominant term while MSE still
  anchors absolute intensity, which a structure-only loss leaves free.
- **LWC-DenseFuse** uses the staged progressive weighting of its paper: a ``[[stages]]`` table
  of (epochs, ``ssim_weight`` = λ, ``grad_weight`` = μ) rows; the default config goes
  pixel-dominant (λ 1, μ 0) → (λ 10, μ 0.5) → (λ 100, μ 1).

Validation reports the same weighted loss (with the current stage's weights) on deterministic
centre crops of the held-out images, plus its components and PSNR.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelError
from ..config import TrainConfig
from ..losses import gradient_l1, ssim
from ..objective import Objective, make_optimizer, register_objective

__all__ = ["AutoEncoderObjective"]


@register_objective("autoencoder")
class AutoEncoderObjective(Objective):
    """``MSE + λ(t)·(1 − SSIM) + μ(t)·L1(|∇out|, |∇in|)`` on grey crops, one Adam optimizer."""

    data = "grey"
    defaults = {"ssim_weight": 100.0, "grad_weight": 0.0}
    stage_keys = frozenset({"ssim_weight", "grad_weight"})

    def build(self, model: nn.Module, config: TrainConfig) -> None:
        super().build(model, config)
        if not callable(getattr(model, "reconstruct", None)):
            raise ModelError(f"{config.model or type(model).__name__} has no reconstruct(x); it is not an auto-encoder")
        self.optimizers["model"] = make_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
        self.ssim_weight = float(self.params["ssim_weight"])
        self.grad_weight = float(self.params["grad_weight"])

    def on_stage(self, index: int, params: dict[str, Any]) -> None:
        super().on_stage(index, params)
        self.ssim_weight = float(params["ssim_weight"])
        self.grad_weight = float(params["grad_weight"])

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss (for backward) and its components (for the log)."""
        out = self.model.reconstruct(x)
        mse = F.mse_loss(out, x)
        sim = ssim(out, x)
        grad = gradient_l1(out, x)
        total = mse + self.ssim_weight * (1.0 - sim)
        if self.grad_weight:
            total = total + self.grad_weight * grad
        parts = {"loss": total.item(), "mse": mse.item(), "ssim": sim.item(), "grad": grad.item()}
        return total, parts

    def training_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        total, parts = self.losses(batch)
        self.optimize(total)
        return parts

    def validation_step(self, batch: torch.Tensor) -> dict[str, float]:
        _, parts = self.losses(batch)
        parts["psnr"] = float(-10.0 * torch.log10(torch.tensor(max(parts["mse"], 1e-12))))
        return parts
