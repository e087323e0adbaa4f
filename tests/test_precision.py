"""Half precision: every network runs in fp16 and bf16 on the CPU and stays close to float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sample_pair_paths

from litefuse.api import Fuser
from litefuse.demo import synthetic_pair
from litefuse.errors import OptionError
from litefuse.data.datasets import load_luma_u8
from litefuse.metrics import CORE_METRICS, evaluate, to_uint8
from litefuse.registry import list_models
from litefuse.runtime import HalfPrecision

# measured on the 96x128 demo scene: bf16 max |d| <= 0.019, fp16 <= 0.0025 (dwsfusion-plus worst)
TOLERANCE = {"bf16": (0.04, 0.006), "fp16": (0.006, 0.001)}  # (max |d|, mean |d|)
NETWORKS = [m.name for m in list_models("network") if m.has_weights]


@pytest.fixture(scope="module")
def scene():
    return synthetic_pair(96, 128)


@pytest.mark.parametrize("name", NETWORKS)
def test_half_precision_close_to_fp32(name, scene, one_thread):
    ir, vi = scene
    ref = Fuser(name).fuse_images(ir, vi, grey=True)
    for precision, (max_tol, mean_tol) in TOLERANCE.items():
        fuser = Fuser(name, precision=precision)
        assert isinstance(fuser.model, HalfPrecision)
        assert next(fuser.model.parameters()).dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        out = fuser.fuse_images(ir, vi, grey=True)
        assert out.dtype == np.float32 and out.shape == ref.shape
        diff = np.abs(out - ref)
        assert diff.max() <= max_tol and diff.mean() <= mean_tol, (precision, diff.max(), diff.mean())
        assert diff.max() > 0  # really ran in half precision


def test_lwc_densefuse_fp16_at_a_real_frame_size(one_thread):
    """Statistics over a whole frame overflow float16 (65,504) unless summed in float32: at the
    96x128 scene above they fit, at 280x280 (TNO's smallest) the output was all NaN."""
    ir, vi = synthetic_pair(280, 280)
    ref = Fuser("lwc-densefuse").fuse_images(ir, vi, grey=True)
    out = Fuser("lwc-densefuse", precision="fp16").fuse_images(ir, vi, grey=True)
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() <= TOLERANCE["fp16"][0]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_dwsfusion_gpu_sampler_in_half_precision(precision, one_thread):
    """The ``grid`` sampler (the default on a GPU and under torch.compile) in fp16 / bf16: the
    grid and the gather stay float32 -- a half-precision grid sits up to a pixel off at 640
    wide, and ATen's CPU grid_sample gave NaN at this size in fp16 -- so it agrees with the
    CPU's ``shift`` sampler."""
    ir, vi = synthetic_pair(240, 320)
    outs = {}
    for sampler in ("shift", "grid"):
        fuser = Fuser("dwsfusion", precision=precision)
        fuser.model.set_sampler(sampler)
        outs[sampler] = fuser.fuse_images(ir, vi, grey=True)
    assert np.isfinite(outs["grid"]).all()
    assert np.abs(outs["grid"] - outs["shift"]).max() <= TOLERANCE[precision][0] / 4


def test_fp32_is_the_unwrapped_model_and_classical_stays_fp32():
    assert not isinstance(Fuser("aenetv2").model, HalfPrecision)
    fuser = Fuser("gff", precision="bf16")
    assert fuser.precision == "fp32" and not isinstance(fuser.model, HalfPrecision)
    with pytest.raises(OptionError, match="precision"):
        Fuser("aenetv2", precision="fp8")


def test_fp16_on_the_cpu_is_said_to_be_emulated(recwarn):
    """fp16 ran lwc-densefuse 38x slower than fp32 on the CPU without a word (compile had its note)."""
    from litefuse.api import CPU_FP16_NOTE

    said = lambda: [str(w.message) for w in recwarn.list].count(CPU_FP16_NOTE)  # noqa: E731
    Fuser("aenetv2", precision="fp16")
    assert said() == 1
    Fuser("aenetv2", precision="bf16")
    Fuser("max", precision="fp16")  # classical: float32 anyway
    assert said() == 1


def test_dwsfusion_under_autocast(scene, one_thread):
    """Users who wrap the module in autocast themselves: the FFT stays float32 inside."""
    from litefuse.registry import load_model

    ir, vi = (torch.from_numpy(np.ascontiguousarray(x if x.ndim == 2 else x.mean(-1)))[None, None] for x in scene)
    model = load_model("dwsfusion")
    with torch.inference_mode():
        ref = model(ir, vi)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(ir, vi)
    assert (out.float() - ref).abs().max() < 0.04


def test_mac_count_does_not_depend_on_precision():
    from litefuse.models.complexity import count_macs
    from litefuse.registry import load_model

    x = torch.rand(1, 1, 64, 80)
    model = load_model("lwc-densefuse")
    fp32 = count_macs(model, (x, x), "auto")
    assert fp32 == count_macs(load_model("lwc-densefuse").to(torch.bfloat16), (x.bfloat16(), x.bfloat16()), "auto")
    assert next(model.parameters()).dtype == torch.float32  # counted on a copy


@pytest.mark.parametrize("name", NETWORKS)
def test_bf16_keeps_the_metrics_of_fp32_on_real_pairs(name, shared, one_thread):
    """Scored like a user scores: the core metrics of the saved uint8 image. Measured on these two
    MSRS pairs: every network within 1.3 % of fp32 in bf16; DWSFusion with its fusion head in
    bf16 (no ``float32_modules``) lost up to 6.5 % MI and 3.3 % VIF/Qabf/SSIM."""
    fusers = {p: Fuser(name, precision=p) for p in ("fp32", "bf16")}
    for stem in ("00633D", "00881N"):
        ir, vi = (load_luma_u8(path) for path in sample_pair_paths(shared, "MSRS", stem))
        scores = {p: evaluate(ir, vi, to_uint8(f.fuse_images(ir, vi, grey=True)), CORE_METRICS) for p, f in fusers.items()}
        change = {m: (scores["bf16"][m] - scores["fp32"][m]) / abs(scores["fp32"][m]) for m in CORE_METRICS}
        assert max(abs(v) for v in change.values()) < 0.02, (stem, change)
