"""AE-Netv2 objective: saliency-weighted similarity loss + positive-sample loss, on a task mixture.

The network is trained end to end on registered pairs ``(a, b)`` (infrared/visible Y, or the
A/B sources of multi-focus, multi-exposure and medical pairs, colour reduced to BT.601 Y) and
their positive sample ``p``: the best of the five classical fusers under a fixed multi-metric
score (:mod:`litefuse.train.positives`), which is the ``"bank"`` teacher of the distillation
objective. With ``f`` the output, all images in [0, 1]::

    L_sim = λ_s · (1 − mean(w_a ⊙ SSIM(f, a) + w_b ⊙ SSIM(f, b)))
          + λ_i · mean|f − I*|            I* = w_a·a + w_b·b ("weighted", default) or max(a, b) ("max")
          + λ_g · mean| |∇f| − max(|∇a|, |∇b|) |
    L_pos = mean|f − p| + (1 − SSIM(f, p))
    L     = L_sim + λ_p · L_pos

with saliency weights ``w_a = s_a / (s_a + s_b)`` from local gradient energy
(:func:`~litefuse.train.losses.saliency_weights`) and per-pixel SSIM maps. This is
:class:`~litefuse.train.objectives.distill.DistillObjective` with AE-Net's defaults: teacher
``"bank"``, λ_p = ``teacher_weight``, teacher terms μ = (1, 1, 0), content weights 1. Other
teachers (``teachers = ["dwsfusion"]``) turn it into distillation with the same content terms.
"""

from __future__ import annotations

from ..objective import register_objective
from .distill import DistillObjective

__all__ = ["AENetV2Objective"]


@register_objective("aenetv2")
class AENetV2Objective(DistillObjective):
    """AE-Net's loss: similarity to both sources plus L1 + (1 − SSIM) to the positive sample."""

    defaults = {
        **DistillObjective.defaults,
        "teachers": ["bank"],
        "teacher_l1": 1.0,
        "teacher_ssim": 1.0,
        "teacher_grad": 0.0,
        "ssim_weight": 1.0,
        "intensity_weight": 1.0,
        "grad_weight": 1.0,
    }
