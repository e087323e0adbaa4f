"""Convention presets: the same metric name means different numbers in different reference codes.

Every reported table must name its convention (docs/metrics.md, "Conventions"). The presets reproduce:

* ``cddfuse`` (default): CDDFuse ``utils/Evaluator.py`` @ fd8da1f3, the de-facto Python reference;
* ``tang``: Tang's MATLAB ``analysis_Reference`` (SeAFusion-style tables), with MATLAB's ``ssim``;
* ``vifb``: VIFB ``metricsX`` (MATLAB);
* ``liu``: Liu's ``imageFusionMetrics`` (Qs, Qw, Qy, Qcb, Qcv). Liu defines nothing else, so the
  other metrics use the VIFB switches (both are MATLAB toolboxes using Wang's ``ssim_index``).

``psnr='textbook'`` (10·log₁₀(255²/MSE)), which no reference computes, can override any preset.
"""

from __future__ import annotations

from ..errors import OptionError

from dataclasses import dataclass, replace

__all__ = ["Convention", "CONVENTIONS", "PSNR_KINDS", "get_convention", "scale_notes"]

PSNR_KINDS = ("cddfuse", "tang", "vifb", "textbook")


@dataclass(frozen=True)
class Convention:
    """The switches on which the reference codes disagree (docs/metrics.md, "Conventions")."""

    name: str
    description: str
    metrics: tuple[str, ...]  # the metrics this reference reports, in its order
    mi_bits: bool = False  # MI in bits (Tang) instead of nats
    mi_saturate: bool = False  # Tang's 254/255 merge in the joint histogram
    mi_rebin: bool = False  # VIFB's min-max re-binning (a relabelling on 8-bit data)
    ag: str = "mn"  # AG divided by M·N ('mn') or (M−1)(N−1) ('m1n1')
    sf: str = "mean"  # SF from means of the differences ('mean') or sums / M·N ('mn')
    ssim: str = "cddfuse"  # SSIM variant: 'cddfuse', 'wang' or 'matlab'
    ssim_combine: str = "sum"  # SSIM(F,A) and SSIM(F,B): 'sum' or 'mean'
    psnr: str = "cddfuse"  # one of PSNR_KINDS
    mse_scale: float = 1.0  # MSE divided by this (Tang: 255², i.e. the [0, 1] scale)
    rmse: str = "sqrt_mse"  # 'sqrt_mse' (sqrt of this convention's MSE) or 'vifb'
    vif_flat: float | None = 1.0  # per-source VIF on a flat source: CDDFuse 1.0, MATLAB NaN (None)
    qabf_scale: float = 1.0  # VIFB scores Qabf on 255·x


_CORE = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")

CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "cddfuse",
            "CDDFuse utils/Evaluator.py (fd8da1f3): MI in nats, SSIM = sum of skimage 0.19.2 SSIM "
            "(data_range 2), PSNR peak = max(F), AG / (M·N)",
            _CORE + ("AG", "CC", "PSNR"),
        ),
        Convention(
            "tang",
            "Tang's MATLAB analysis_Reference: MI in bits with the 254/255 joint-bin merge, SSIM = mean "
            "of MATLAB ssim, PSNR = textbook + 48.13 dB, MSE on [0, 1], AG / ((M−1)(N−1)), Nabf",
            ("EN", "SF", "SD", "PSNR", "MSE", "MI", "VIF", "AG", "CC", "SCD", "Qabf", "Nabf", "SSIM"),
            mi_bits=True, mi_saturate=True, ag="m1n1", ssim="matlab", ssim_combine="mean", psnr="tang",
            mse_scale=255.0**2, vif_flat=None,
        ),
        Convention(
            "vifb",
            "VIFB metricsX (MATLAB): MI in nats (re-binned), SSIM = sum of Wang ssim_index (L = 255, "
            "valid), size-dependent RMSE/PSNR, SF sums / (M·N), AG / ((M−1)(N−1)), CE, EI, Qcb, Qcv",
            ("CE", "EN", "MI", "PSNR", "AG", "EI", "Qabf", "SD", "SF", "RMSE", "SSIM", "Qcb", "Qcv"),
            mi_rebin=True, ag="m1n1", sf="mn", ssim="wang", psnr="vifb", rmse="vifb", vif_flat=None,
            qabf_scale=255.0,
        ),
        Convention(
            "liu",
            "Liu's imageFusionMetrics (MATLAB): Qs, Qw, Qy, Qcb, Qcv; other metrics as in vifb",
            ("Qs", "Qw", "Qy", "Qcv", "Qcb"),
            mi_rebin=True, ag="m1n1", sf="mn", ssim="wang", psnr="vifb", rmse="vifb", vif_flat=None,
            qabf_scale=255.0,
        ),
    )
}


def get_convention(convention: str | Convention = "cddfuse", *, psnr: str | None = None) -> Convention:
    """Look up a preset by name (case-insensitive), optionally overriding its PSNR kind."""
    if isinstance(convention, str):
        key = convention.lower()
        if key not in CONVENTIONS:
            raise OptionError(f"unknown convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
        convention = CONVENTIONS[key]
    if psnr is not None:
        if psnr not in PSNR_KINDS:
            raise OptionError(f"unknown PSNR kind {psnr!r}; expected one of {', '.join(PSNR_KINDS)}")
        convention = replace(convention, psnr=psnr, name=f"{convention.name}+psnr={psnr}")
    return convention


def scale_notes(convention: str | Convention = "cddfuse") -> dict[str, str]:
    """Per metric, the scale a reader could misread under ``convention`` (for chart panels): a
    summed SSIM runs to 2, and MI is in nats or bits."""
    c = get_convention(convention.split("+", 1)[0]) if isinstance(convention, str) else convention  # "cddfuse+psnr=…"
    notes = {"MI": "bits" if c.mi_bits else "nats"}
    if c.ssim_combine == "sum":
        notes["SSIM"] = "SSIM(F,A) + SSIM(F,B), up to 2"
    return notes
