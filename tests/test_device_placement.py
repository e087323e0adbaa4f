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


def _host_tensors_in_compiled_graphs(model, *inputs) -> list[str]:
    """Tensors on a device other than the inputs' in the graphs ``torch.compile`` traces."""
    found: list[str] = []

    def backend(gm, example_inputs):
        for node in gm.graph.nodes:
            value = node.meta.get("example_value")
            for t in value if isinstance(value, (tuple, list)) else [value]:
                if isinstance(t, torch.Tensor) and t.device.type != "meta":
                    found.append(f"{node.op} {node.target} on {t.device}")
        return gm.forward

    torch._dynamo.reset()
    try:
        with torch.inference_mode():
            out = torch.compile(model, backend=backend)(*inputs)
    finally:
        torch._dynamo.reset()
    assert out.device.type == "meta"
    return found


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["dwsfusion", "aenetv2", "lwc-densefuse"])
def test_compiled_graph_makes_no_host_tensors(name: str, precision: str) -> None:
    # on CUDA a CPU op in a compiled graph (DWSFusion's sampling grid was built on the host from
    # a CPU constant) costs a host computation and copy per call and stops CUDA graphs
    # (mode="reduce-overhead": "skipping cudagraphs due to cpu device")
    model = with_precision(load_model(name).eval().to("meta"), precision)
    ir = torch.empty(1, 1, 24, 32, device="meta")
    assert _host_tensors_in_compiled_graphs(model, ir, ir.clone()) == []
