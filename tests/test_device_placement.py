"""Every network on a device other than the CPU, without one: the ``meta`` device runs the
non-CPU code paths (the inference forms' GPU layout, DWSFusion's gather sampler and cached
masks, half precision) on shapes alone, and fails on any CPU tensor used as it is (a constant,
a cached grid, a mask) -- on a GPU, a device-mismatch error."""

from __future__ import annotations

import pytest
import torch

from litefuse.registry import list_models, load_model
from litefuse.runtime import with_precision

NETWORKS = [m.name for m in list_models("network")]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("name", NETWORKS)
def test_network_runs_on_a_non_cpu_device(name: str, precision: str) -> None:
    model = with_precision(load_model(name).eval().to("meta"), precision)
    ir, vi = torch.empty(2, 1, 37, 53, device="meta"), torch.empty(2, 1, 37, 53, device="meta")
    with torch.inference_mode():
        out = model(ir, vi)
    assert out.device.type == "meta" and out.shape == (2, 1, 37, 53) and out.dtype == torch.float32
