"""Dual-weight-supervised WGAN-GP objective of DWSFusion and DWSFusion+ (docs/models.md, "DWSFusion").

With M = max(IR, VI) per pixel and ∇ = |Sobel_x ∗ ·| + |Sobel_y ∗ ·| (zero padding):

- content   L_c = L1(F, M) + L1(∇F, max(∇IR, ∇VI)) + (1 − MS-SSIM(F, M))
  (5-scale MS-SSIM, 11×11 Gaussian σ 1.5, data range 1; crops whose short side is below 176 px
  hold fewer scales, see :func:`~litefuse.train.losses.ms_ssim`);
- dual      L_W = L1(W_IR, F_IR) + L1(W_VI, F_VI) + L1(W_IR, 1 − W_VI), no detach, where
  W_* = AWEM_*(source) and F_* = AWEM_*(fused) (``forward_all(..., dual=True)``);
- adversarial L_adv = −mean D_IR(F) − mean D_VI(F);
- generator L_G = 10·L_c + L_W + 0.1·L_adv (``content_weight``, ``dual_weight``, ``adv_weight``;
  ``grad_weight`` scales the gradient term of L_c, 1 as in the paper, for curriculum stages).

Two critics (D_IR: real = IR, D_VI: real = visible Y) train as WGAN-GP critics,
``mean D(F) − mean D(real) + λ_GP·mean (‖∇_x̂ D(x̂)‖₂ − 1)²`` on per-sample random
interpolates x̂ (λ_GP = 10), one step each per generator step. Each step runs the generator
once: the critics step on the detached fused batch first, then the generator steps against the
updated (frozen) critics. Optimizers: the config's ``optimizer``/``lr`` for the generator (Adam
as released), ``critic_optimizer``/``critic_lr`` for the critics (RMSprop as released;
``critic_lr`` unset = ``lr``).

Critic head: the release rebuilds each critic's final Linear with random weights on every call
(§3.6), so its adversarial signal is noise and nothing about the head can be trained or
checkpointed. ``critic_head = "registered"`` trains critics with an owned Linear head over the
crop's 16×(H/8)×(W/8) features; ``"model"`` uses the model's own
:meth:`~litefuse.models.dwsfusion.DWSFusion.make_critic`, i.e. the release quirk for
``dwsfusion``. The packaged configs use ``"model"``: in longer runs the trained critics pulled
the generator away from its content target (see the configs' comments). The critics live in :attr:`nets`: they are checkpointed (exact
resume) but never exported with the generator weights.

Validation (nets in eval mode, deterministic centre crops): ``loss = content_weight·L_c +
dual_weight·L_W`` — the generator loss without its adversarial term, which depends on the
moving critics and is not comparable between validations — plus the components.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ModelError
from ...models.dwsfusion import DWSCritic
from ..config import ConfigError, TrainConfig
from ..losses import ms_ssim, sobel_gradient
from ..objective import Objective, make_optimizer, register_objective

__all__ = ["DWSFusionObjective", "content_loss", "dual_weight_loss", "gradient_penalty"]


def content_loss(fused: Tensor, ir: Tensor, vi: Tensor, grad_weight: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """``L1(F, M) + g·L1(∇F, max(∇IR, ∇VI)) + (1 − MS-SSIM(F, M))`` and its parts (l1, grad, msssim).

    ``g = grad_weight`` is 1 in the paper; a curriculum stage may lower it.
    """
    target = torch.maximum(ir, vi)
    l1 = F.l1_loss(fused, target)
    grad = F.l1_loss(sobel_gradient(fused), torch.maximum(sobel_gradient(ir), sobel_gradient(vi)))
    sim = ms_ssim(fused, target)
    return l1 + grad_weight * grad + (1.0 - sim), {"l1": l1, "grad": grad, "msssim": sim}


def dual_weight_loss(out: dict[str, Tensor]) -> Tensor:
    """``L1(W_IR, F_IR) + L1(W_VI, F_VI) + L1(W_IR, 1 − W_VI)`` from ``forward_all(..., dual=True)``."""
    w_ir, w_vi = out["w_ir"], out["w_vi"]
    return F.l1_loss(w_ir, out["f_ir"]) + F.l1_loss(w_vi, out["f_vi"]) + F.l1_loss(w_ir, 1.0 - w_vi)


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: ``mean_b (‖∇_x̂ D(x̂_b)‖₂ − 1)²`` with ``x̂ = ε·real + (1 − ε)·fake``, ε ~ U(0, 1) per sample."""
    eps = torch.rand(real.shape[0], 1, 1, 1, dtype=real.dtype, device=real.device)
    mixed = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


@register_objective("dwsfusion")
class DWSFusionObjective(Objective):
    """``10·L_c + L_W + 0.1·L_adv`` for the generator, two WGAN-GP critics (D_IR, D_VI)."""

    data = "pair"
    defaults = {
        "content_weight": 10.0,
        "dual_weight": 1.0,
        "adv_weight": 0.1,
        "gp_weight": 10.0,
        "grad_weight": 1.0,  # weight of the gradient term inside L_c (1 = the paper)
        "critic_lr": None,  # None = the generator's lr
        "critic_optimizer": "rmsprop",
        "critic_head": "model",  # the model's make_critic() (release quirk for dwsfusion), or "registered"
    }
    stage_keys = frozenset({"content_weight", "dual_weight", "adv_weight", "gp_weight", "grad_weight"})

    def build(self, model: nn.Module, config: TrainConfig) -> None:
        super().build(model, config)
        if not callable(getattr(model, "forward_all", None)):
            raise ModelError(f"{config.model or type(model).__name__} has no forward_all(ir, vi, dual); not a DWSFusion generator")
        p = self.params
        head = p["critic_head"]
        if head not in ("registered", "model"):
            raise ConfigError(f"[objective]: critic_head must be 'registered' or 'model', got {head!r}")
        for key in ("content_weight", "dual_weight", "adv_weight", "gp_weight", "grad_weight"):
            if not isinstance(p[key], (int, float)) or isinstance(p[key], bool) or p[key] < 0:
                raise ConfigError(f"[objective]: {key} must be a number >= 0, got {p[key]!r}")
        critic_lr = config.lr if p["critic_lr"] is None else float(p["critic_lr"])
        if critic_lr <= 0:
            raise ConfigError(f"[objective]: critic_lr must be > 0, got {critic_lr}")
        device = next(model.parameters()).device
        crop = tuple(config.crop)
        for name in ("ir", "vi"):
            critic = model.make_critic(crop) if head == "model" else DWSCritic(True, crop)
            self.nets[f"critic_{name}"] = critic.to(device).train()
        # generator first: plateau cuts and a stage's "lr" act on it
        self.optimizers["generator"] = make_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
        for name in ("ir", "vi"):
            self.optimizers[f"critic_{name}"] = make_optimizer(p["critic_optimizer"], self.nets[f"critic_{name}"].parameters(), critic_lr)
        self._set_weights(p)

    def _set_weights(self, params: dict[str, Any]) -> None:
        self.content_weight = float(params["content_weight"])
        self.dual_weight = float(params["dual_weight"])
        self.adv_weight = float(params["adv_weight"])
        self.gp_weight = float(params["gp_weight"])
        self.grad_weight = float(params["grad_weight"])

    def on_stage(self, index: int, params: dict[str, Any]) -> None:
        super().on_stage(index, params)
        self._set_weights(params)

    # -- steps ----------------------------------------------------------------------------

    def _critic_step(self, name: str, real: Tensor, fake: Tensor) -> tuple[float, float, float]:
        """One WGAN-GP step of critic ``name``; returns (loss, gp, Wasserstein estimate)."""
        critic = self.nets[name]
        real_score, fake_score = critic(real).mean(), critic(fake).mean()
        gp = gradient_penalty(critic, real, fake)
        loss = fake_score - real_score + self.gp_weight * gp
        self.optimize(loss, name)
        return loss.item(), gp.item(), (real_score - fake_score).item()

    def generator_losses(self, ir: Tensor, vi: Tensor, out: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """``content_weight·L_c + dual_weight·L_W`` (no adversarial term) and its logged parts."""
        content, parts = content_loss(out["fused"], ir, vi, self.grad_weight)
        dual = dual_weight_loss(out)
        total = self.content_weight * content + self.dual_weight * dual
        logged = {"content": content.item(), **{k: v.item() for k, v in parts.items()}, "dual": dual.item(),
                  "alpha": out["alpha"].mean().item()}
        return total, logged

    def training_step(self, batch: tuple[Tensor, Tensor], step: int) -> dict[str, float]:
        ir, vi = batch
        out = self.model.forward_all(ir, vi, dual=True)
        fused = out["fused"]

        critics = {"critic_ir": ir, "critic_vi": vi}
        d_parts: dict[str, float] = {}
        gp_sum = 0.0
        for name, real in critics.items():
            loss, gp, wdist = self._critic_step(name, real, fused.detach())
            d_parts["d_" + name[-2:]], d_parts["wd_" + name[-2:]] = loss, wdist
            gp_sum += gp

        for net in self.nets.values():
            net.requires_grad_(False)
        try:
            adv = -self.nets["critic_ir"](fused).mean() - self.nets["critic_vi"](fused).mean()
            base, parts = self.generator_losses(ir, vi, out)
            total = base + self.adv_weight * adv
            self.optimize(total, "generator")
        finally:
            for net in self.nets.values():
                net.requires_grad_(True)
        return {"loss": total.item(), **parts, "adv": adv.item(), "d_ir": d_parts["d_ir"], "d_vi": d_parts["d_vi"],
                "gp": gp_sum / 2, "wd_ir": d_parts["wd_ir"], "wd_vi": d_parts["wd_vi"]}

    def validation_step(self, batch: tuple[Tensor, Tensor]) -> dict[str, float]:
        ir, vi = batch
        total, parts = self.generator_losses(ir, vi, self.model.forward_all(ir, vi, dual=True))
        return {"loss": total.item(), **parts}
