"""Teacher–student training: any registered network learns from other fusers' results.

Every training pair ``(a, b)`` (infrared/visible Y, or the A/B sources of the other tasks) is
paired once with a target ``t``: the result of one or more teachers
(:mod:`litefuse.train.teachers`: a registered method, a weights file, or AE-Net's ``"bank"`` of
classical fusers), combined pixel by pixel and cached on disk by content. Crops and flips are
shared by all three images. With ``f`` the student's output::

    L = λ_t · (μ_1·|f − t| + μ_s·(1 − SSIM(f, t)) + μ_g·| |∇f| − |∇t| |)     teacher terms
      + λ_s·(1 − wSSIM(f; a, b)) + λ_i·|f − I*| + λ_g·| |∇f| − max|∇a|,|∇b| |   content terms

(:func:`~litefuse.train.losses.teacher_loss`, :func:`~litefuse.train.losses.similarity_loss`).
AE-Net's own objective is this one with the ``"bank"`` teacher (its positive sample) and
μ = (1, 1, 0): :class:`~litefuse.train.objectives.aenetv2.AENetV2Objective` only changes the
defaults. Selected for any other student with ``objective_name = "distill"`` (``litefuse train
MODEL --teacher NAME`` sets it when the model's own objective has no teachers).

Parameters (``[objective]``; the weights may change per ``[[stages]]`` row):
``teachers`` (list of teacher specs), ``combine`` (``mean`` | ``max`` | ``median``),
``teacher_weight`` λ_t, ``teacher_l1`` μ_1, ``teacher_ssim`` μ_s, ``teacher_grad`` μ_g,
``ssim_weight`` λ_s, ``intensity_weight`` λ_i, ``grad_weight`` λ_g, ``intensity_target``
(``weighted`` | ``max``), ``saliency_radius``, ``teacher_cache`` (folder; empty = the default,
:func:`~litefuse.train.teachers.default_cache_dir`), ``bank_work_size`` (the bank teacher's
scoring size). Validation reports the same loss and its terms on centre crops of held-out pairs.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ...data import PairCropDataset
from ...data.pairs import Pair
from ...errors import ModelError
from ..config import ConfigError, TrainConfig
from ..losses import similarity_loss, teacher_loss
from ..objective import Objective, make_optimizer, register_objective
from ..teachers import COMBINE, TeacherCache, parse_teacher

__all__ = ["DistillObjective"]

_WEIGHTS = ("teacher_weight", "teacher_l1", "teacher_ssim", "teacher_grad", "ssim_weight", "intensity_weight", "grad_weight")


@register_objective("distill")
class DistillObjective(Objective):
    """Teacher terms + content terms on ``(a, b, target)`` crops, one optimizer."""

    data = "pair"
    defaults: dict[str, Any] = {
        "teachers": ["dwsfusion"],
        "combine": "mean",
        "teacher_weight": 1.0,
        "teacher_l1": 1.0,
        "teacher_ssim": 0.0,
        "teacher_grad": 0.5,
        "ssim_weight": 0.0,
        "intensity_weight": 0.0,
        "grad_weight": 0.0,
        "intensity_target": "weighted",
        "saliency_radius": 5,
        "teacher_cache": "",
        "bank_work_size": 256,
    }
    stage_keys = frozenset(_WEIGHTS)

    def build(self, model: nn.Module, config: TrainConfig) -> None:
        super().build(model, config)
        p = self.params
        if p["intensity_target"] not in ("weighted", "max"):
            raise ConfigError(f"[objective]: intensity_target must be 'weighted' or 'max', got {p['intensity_target']!r}")
        if p["combine"] not in COMBINE:
            raise ConfigError(f"[objective]: combine must be one of {', '.join(COMBINE)}, got {p['combine']!r}")
        for key, low in (("saliency_radius", 0), ("bank_work_size", 16)):
            value = p[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"[objective]: {key} must be an integer >= {low}, got {value!r}")
        teachers = p["teachers"]
        if isinstance(teachers, str):
            teachers = [teachers]
        if not isinstance(teachers, list) or not teachers or not all(isinstance(t, str) for t in teachers):
            raise ConfigError(f"[objective]: teachers must be a non-empty list of names, got {teachers!r}")
        try:
            self.teachers = [parse_teacher(t, p["bank_work_size"]) for t in teachers]
        except ModelError as exc:
            raise ConfigError(f"[objective]: {exc}") from None
        self.optimizers["model"] = make_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
        self._set_weights(p)

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
        """Pair crops with their teacher target (computed once, then read from the cache); the
        pre-pass stops at the run's time budget (:attr:`deadline`), keeping what it cached."""
        common = dict(crop=config.crop, small=config.small_images, workers=max(2, os.cpu_count() or 1), ir_norm=config.norm)
        train_ds = PairCropDataset(train, train=True, seed=config.seed, crops_per_image=config.crops_per_image, **common)
        val_ds = PairCropDataset(val, train=False, **common) if val else None
        kept = {split: ds for split, ds in (("training", train_ds), ("validation", val_ds)) if ds is not None}
        # one pre-pass over the usable pairs of both splits, counted as one ("N of M pairs cached")
        cache = TeacherCache(self.params["teacher_cache"] or None)
        targets = cache.targets(self.teachers, self.params["combine"], progress=config.progress,
                                deadline=self.deadline, total=sum(len(ds.names) for ds in kept.values()))
        for split, ds in kept.items():
            ds.add_targets(functools.partial(targets, split=split))
        return train_ds, val_ds  # the trainer drops an empty validation set (after reporting its skipped pairs)

    def losses(self, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss (for backward) and its components (for the log)."""
        a, b, t = batch
        w = self.weights
        f = self.model(a, b)
        content, parts = similarity_loss(
            f, a, b, (w["ssim_weight"], w["intensity_weight"], w["grad_weight"]),
            self.params["intensity_target"], self.params["saliency_radius"],
        )
        teach, t_parts = teacher_loss(f, t, (w["teacher_l1"], w["teacher_ssim"], w["teacher_grad"]))
        total = content + w["teacher_weight"] * teach
        out = {"loss": total.item(), "content": content.item(), "teacher": teach.item()}
        out.update({k: v.item() for k, v in {**parts, **t_parts}.items()})
        return total, out

    def training_step(self, batch: Sequence[torch.Tensor], step: int) -> dict[str, float]:
        total, parts = self.losses(batch)
        self.optimize(total)
        return parts

    def validation_step(self, batch: Sequence[torch.Tensor]) -> dict[str, float]:
        return self.losses(batch)[1]
