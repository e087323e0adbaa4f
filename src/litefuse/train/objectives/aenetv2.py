"""AE-Netv2 objective: saliency-weighted similarity loss + positive-sample loss, on a task mixture.

The network is trained end to end on registered pairs ``(a, b)`` (infrared/visible Y, or the
A/B sources of multi-focus, multi-exposure and medical pairs, colour reduced to BT.601 Y) and
their positive sample ``p`` (:mod:`litefuse.train.positives`: the best of the five classical
fusers under a fixed multi-metric score, cached on disk), all cropped and flipped together.
With ``f`` the output, all images in [0, 1]:

**Saliency weights.** Activity of a source = local gradient energy,
``s_k = box_r(|∇k|²) + ε`` with ∇ the Sobel magnitude (:func:`~litefuse.train.losses.sobel_gradient`),
``box_r`` a ``(2r+1)²`` mean (``saliency_radius`` r, default 5, replicate border) and ε = 1e-4.
Per pixel ``w_a = s_a / (s_a + s_b)``, ``w_b = 1 − w_a`` (they sum to 1; flat regions get ½/½).

**Similarity loss**::

    L_sim = λ_s · (1 − mean(w_a ⊙ SSIM(f, a) + w_b ⊙ SSIM(f, b)))
          + λ_i · mean|f − I*|            I* = w_a·a + w_b·b ("weighted", default) or max(a, b) ("max")
          + λ_g · mean| |∇f| − max(|∇a|, |∇b|) |

with per-pixel SSIM maps (:func:`~litefuse.train.losses.ssim_map`, 11×11 Gaussian, σ 1.5,
"valid" region; the weights are cropped to the same region, i.e. each SSIM window is weighted
by the activity at its centre).

**Positive-sample loss**::

    L_pos = mean|f − p| + (1 − SSIM(f, p))

**Total**: ``L = L_sim + λ_p · L_pos``. All four weights (``ssim_weight`` λ_s,
``intensity_weight`` λ_i, ``grad_weight`` λ_g, ``positive_weight`` λ_p) are ``[objective]``
parameters and may change per ``[[stages]]`` row. Validation reports the same loss (current
stage's weights) and its components on deterministic centre crops of the held-out pairs.

Objective parameters besides the weights: ``intensity_target`` ("weighted" | "max"),
``saliency_radius``, ``positive_cache`` (cache folder; empty = the default, see
:func:`~litefuse.train.positives.default_cache_dir`) and ``positive_work_size`` (longer side at
which the fuser bank is scored).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ...data import PairCropDataset
from ...data.pairs import Pair
from ..core import ConfigError, Objective, TrainConfig, make_optimizer, register_objective
from ..losses import sobel_gradient, ssim, ssim_map
from ..positives import WORK_SIZE, PositiveCache

__all__ = ["AENetV2Objective", "saliency_weights", "similarity_loss", "positive_loss"]

_EPS = 1e-4
_WEIGHTS = ("ssim_weight", "intensity_weight", "grad_weight", "positive_weight")


def saliency_weights(a: torch.Tensor, b: torch.Tensor, radius: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel weights ``(w_a, w_b)`` from local gradient energy; ``w_a + w_b = 1``."""

    def activity(x: torch.Tensor) -> torch.Tensor:
        energy = sobel_gradient(x).square()
        if radius > 0:
            energy = F.avg_pool2d(F.pad(energy, (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)
        return energy + _EPS

    s_a, s_b = activity(a), activity(b)
    w_a = s_a / (s_a + s_b)
    return w_a, 1.0 - w_a


def _crop_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Centre-crop ``x`` to ``ref``'s spatial size (the SSIM map's 'valid' region)."""
    dh, dw = (x.shape[-2] - ref.shape[-2]) // 2, (x.shape[-1] - ref.shape[-1]) // 2
    return x[..., dh : dh + ref.shape[-2], dw : dw + ref.shape[-1]]


def similarity_loss(
    f: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    intensity_target: str = "weighted",
    radius: int = 5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_sim`` of the module docstring and its (unweighted) terms ``wssim``, ``int``, ``grad``."""
    w_a, w_b = saliency_weights(a, b, radius)
    map_a, map_b = ssim_map(f, a), ssim_map(f, b)
    wssim = (_crop_like(w_a, map_a) * map_a + _crop_like(w_b, map_b) * map_b).mean()
    target = w_a * a + w_b * b if intensity_target == "weighted" else torch.maximum(a, b)
    intensity = F.l1_loss(f, target)
    grad = F.l1_loss(sobel_gradient(f), torch.maximum(sobel_gradient(a), sobel_gradient(b)))
    ls, li, lg = weights
    total = ls * (1.0 - wssim) + li * intensity + lg * grad
    return total, {"wssim": wssim, "int": intensity, "grad": grad}


def positive_loss(f: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_pos = L1(f, p) + (1 − SSIM(f, p))`` and its terms ``pos_l1``, ``pos_ssim``."""
    l1, s = F.l1_loss(f, p), ssim(f, p)
    return l1 + (1.0 - s), {"pos_l1": l1, "pos_ssim": s}


@register_objective("aenetv2")
class AENetV2Objective(Objective):
    """``L_sim + λ_p·L_pos`` on ``(a, b, positive)`` crops, one Adam optimizer."""

    data = "pair"
    defaults = {
        "ssim_weight": 1.0,
        "intensity_weight": 1.0,
        "grad_weight": 1.0,
        "positive_weight": 1.0,
        "intensity_target": "weighted",
        "saliency_radius": 5,
        "positive_cache": "",
        "positive_work_size": WORK_SIZE,
    }
    stage_keys = frozenset(_WEIGHTS)

    def build(self, model: nn.Module, config: TrainConfig) -> None:
        super().build(model, config)
        if self.params["intensity_target"] not in ("weighted", "max"):
            raise ConfigError(f"[objective]: intensity_target must be 'weighted' or 'max', got {self.params['intensity_target']!r}")
        for key in ("saliency_radius", "positive_work_size"):
            value = self.params[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "saliency_radius" else 16):
                raise ConfigError(f"[objective]: {key} must be an integer >= {0 if key == 'saliency_radius' else 16}, got {value!r}")
        self.optimizers["model"] = make_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
        self._set_weights(self.params)

    def _set_weights(self, params: dict[str, Any]) -> None:
        for key in _WEIGHTS:
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"[objective]: {key} must be a number >= 0, got {value!r}")
        self.weights = {key: float(params[key]) for key in _WEIGHTS}

    def on_stage(self, index: int, params: dict[str, Any]) -> None:
        super().on_stage(index, params)
        self._set_weights(params)

    def build_datasets(
        self, train: Sequence[Pair], val: Sequence[Pair], config: TrainConfig
    ) -> tuple[Dataset, Dataset | None]:
        """Pair crops with their positive samples (built or read from the cache once)."""
        cache = PositiveCache(self.params["positive_cache"] or None, self.params["positive_work_size"])
        targets = lambda names, pairs: cache.build(names, pairs, progress=config.progress)  # noqa: E731
        common = dict(crop=config.crop, small=config.small_images, workers=max(2, os.cpu_count() or 1), targets=targets)
        train_ds = PairCropDataset(train, train=True, seed=config.seed, crops_per_image=config.crops_per_image, **common)
        val_ds = PairCropDataset(val, train=False, **common) if val else None
        return train_ds, (val_ds if val_ds is not None and len(val_ds) else None)

    def losses(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss (for backward) and its components (for the log)."""
        a, b, p = batch
        w = self.weights
        f = self.model(a, b)
        sim, parts = similarity_loss(
            f, a, b, (w["ssim_weight"], w["intensity_weight"], w["grad_weight"]),
            self.params["intensity_target"], self.params["saliency_radius"],
        )
        pos, pos_parts = positive_loss(f, p)
        total = sim + w["positive_weight"] * pos
        out = {"loss": total.item(), "sim": sim.item(), "pos": pos.item()}
        out.update({k: v.item() for k, v in {**parts, **pos_parts}.items()})
        return total, out

    def training_step(self, batch: Sequence[torch.Tensor], step: int) -> dict[str, float]:
        total, parts = self.losses(batch)
        self.optimize(total)
        return parts

    def validation_step(self, batch: Sequence[torch.Tensor]) -> dict[str, float]:
        return self.losses(batch)[1]
