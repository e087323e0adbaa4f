"""Inference form of the DenseFuse family (DenseFuse, LWC-DenseFuse): the same function as the
training form to 1e-5, used exactly when nothing needs the training form's modules or graph."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from litefuse.models.complexity import count_macs
from litefuse.models.densefuse import DenseFuse, InferencePlan, fill_border_
from litefuse.models.lwc_densefuse import ABLATION_VARIANTS, LWCDenseFuse, window_sums
from litefuse.registry import load_model

from conftest import host_tensor_counter

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5


def _forms(model: torch.nn.Module, ir: torch.Tensor, vi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(training form, inference form) outputs of an eval-mode model."""
    model.eval()
    with torch.no_grad():
        train = model.fuse_for_inference(False)(ir, vi)
        infer = model.fuse_for_inference(True)(ir, vi)
    return train, infer


def _unsaturated(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturbed random weights with an output head that stays inside (0, 1), so the final clamp
    hides no difference."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.conv5.conv.weight.mul_(0.2)
        model.conv5.conv.bias.fill_(0.5)
    return model


@pytest.mark.parametrize("name", ["densefuse", "lwc-densefuse"])
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (2, 2), (3, 5), (37, 53), (130, 141)])
def test_shipped_weights_inference_form_equals_training_form(name: str, size: tuple[int, int]) -> None:
    model = load_model(name)
    torch.manual_seed(1)
    ir, vi = torch.rand(2, 1, *size), torch.rand(2, 1, *size)  # a batch: pairs are fused one by one
    train, infer = _forms(model, ir, vi)
    assert infer.shape == train.shape and infer.is_contiguous()
    torch.testing.assert_close(infer, train, atol=TOL, rtol=0)


@pytest.mark.parametrize("rule", ["l1-norm", "addition", "mean"])
def test_every_fusion_rule(rule: str) -> None:
    model = load_model("lwc-densefuse", fusion_rule=rule)
    ir, vi = torch.rand(1, 1, 140, 150), torch.rand(1, 1, 140, 150)
    torch.testing.assert_close(*_forms(model, ir, vi), atol=TOL, rtol=0)


@pytest.mark.parametrize("variant", list(ABLATION_VARIANTS))
def test_every_ablation_variant(variant: str) -> None:
    """Groups 1/2/4, with and without shuffle, ECA / SE / no attention, residual; grouped and dense
    pointwise execution; above and below the oneDNN size threshold."""
    model = _unsaturated(LWCDenseFuse(**ABLATION_VARIANTS[variant]))
    for size in ((29, 31), (131, 140)):
        ir, vi = torch.rand(1, 1, *size), torch.rand(1, 1, *size)
        train, infer = _forms(model, ir, vi)
        assert 0.01 < float(train.mean()) < 0.99  # not clamped flat
        torch.testing.assert_close(infer, train, atol=TOL, rtol=0)


@pytest.mark.parametrize("variant", list(ABLATION_VARIANTS))
@pytest.mark.parametrize("rule", ["l1-norm", "addition"])
def test_exported_form_equals_training_form(variant: str, rule: str) -> None:
    """The form ONNX graphs record (padded pieces, per-source encoder, per-piece C2) is the same
    function for every variant and layout, run here eagerly."""
    for channels_last in (True, False):
        model = _unsaturated(LWCDenseFuse(**ABLATION_VARIANTS[variant], fusion_rule=rule, channels_last=channels_last)).eval()
        ir, vi = torch.rand(1, 1, 29, 37), torch.rand(1, 1, 29, 37)
        with torch.no_grad():
            train = model.fuse_for_inference(False)(ir, vi)
            exported = model._export_forward(ir, vi)
        assert 0.01 < float(train.mean()) < 0.99
        torch.testing.assert_close(exported, train, atol=TOL, rtol=0)


@pytest.mark.parametrize("variant", ["sclwc-g2", "dws"])
def test_decoder_runs_one_map_per_group_on_cpu(variant: str) -> None:
    """The fused features reach a grouped first decoder block as one map per group (g = 2 with
    shuffle: C2 split, C3 takes two pieces; g = 4 without: the split runs through C2-C4), and
    give what one map gives."""
    model = _unsaturated(LWCDenseFuse(**ABLATION_VARIANTS[variant])).eval()
    plan = model.inference_plan()
    groups = model.conv2.groups
    pieces = [torch.empty(1, c, 4, 4) for c in (16, 16, 16, 16)]
    assert plan.decoder_widths(pieces) == [64 // groups] * groups
    assert plan.decoder_widths([torch.empty(1, c, 4, 4) for c in (24, 40)]) == [64]  # a piece straddles groups
    ir, vi = torch.rand(1, 1, 131, 140), torch.rand(1, 1, 131, 140)
    with torch.no_grad():
        split = model(ir, vi)
        plan.decoder_widths = lambda pieces: [sum(p.shape[1] for p in pieces)]
        one_map = model(ir, vi)
    torch.testing.assert_close(split, one_map, atol=2e-6, rtol=0)


@pytest.mark.parametrize("name", ["densefuse", "lwc-densefuse"])
def test_inference_form_in_the_gpu_layout(name: str, monkeypatch) -> None:
    """Off the CPU the inference form keeps NCHW maps (and one decoder map): forced here on the
    CPU, so the layout a GPU runs is checked without one."""
    import litefuse.models.densefuse as densefuse

    monkeypatch.setattr(densefuse, "_layout", lambda x: torch.contiguous_format)
    monkeypatch.setattr(densefuse, "_in_layout", lambda x: x.contiguous())
    model = load_model(name)
    model.channels_last = False
    ir, vi = torch.rand(1, 1, 131, 140), torch.rand(1, 1, 131, 140)
    train, infer = _forms(model, ir, vi)
    torch.testing.assert_close(infer, train, atol=TOL, rtol=0)


def test_gpu_statistics_path_builds_nothing_on_the_host(monkeypatch) -> None:
    """Off the CPU the gates' means come from the depthwise outputs: same function, and no
    tensor built on the host per call (each would be a blocking host-to-device copy)."""
    from litefuse.models import lwc_densefuse

    model = load_model("lwc-densefuse")
    ir, vi = torch.rand(1, 1, 67, 90), torch.rand(1, 1, 67, 90)
    train, infer_cpu = _forms(model, ir, vi)
    monkeypatch.setattr(lwc_densefuse, "stats_from_input", lambda p: False)
    model.fuse_for_inference(True)
    plan = model.inference_plan()
    with torch.no_grad(), host_tensor_counter() as mode:
        infer = plan(ir, vi, model.fusion_rule)
    assert mode.count == 0
    torch.testing.assert_close(infer, train, atol=TOL, rtol=0)
    with torch.no_grad(), host_tensor_counter() as cpu_mode:  # the CPU path does build index tensors
        monkeypatch.undo()
        plan(ir, vi, model.fusion_rule)
    assert cpu_mode.count


def test_generic_path_in_float64() -> None:
    """Off oneDNN (another dtype, as on a GPU) the plan runs plain convolutions."""
    ir, vi = torch.rand(1, 1, 150, 160, dtype=torch.float64), torch.rand(1, 1, 150, 160, dtype=torch.float64)
    # random weights, and the shipped ones (whose gates moved 4e-8 while their statistics were summed in float32)
    for model in (_unsaturated(LWCDenseFuse(), seed=3).double(), load_model("lwc-densefuse").double()):
        train, infer = _forms(model, ir, vi)
        torch.testing.assert_close(infer, train, atol=1e-10, rtol=0)
        train, infer = _forms(model, ir[..., :2, :3], vi[..., :2, :3])  # statistics from the depthwise output
        torch.testing.assert_close(infer, train, atol=1e-10, rtol=0)


def _plan_calls(monkeypatch) -> list:
    calls = []
    original = InferencePlan.__call__

    def spy(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(InferencePlan, "__call__", spy)
    return calls


def test_the_form_is_chosen_only_when_nothing_needs_the_modules(monkeypatch) -> None:
    calls = _plan_calls(monkeypatch)
    model = load_model("lwc-densefuse")
    x = torch.rand(1, 1, 24, 32)
    with torch.no_grad():
        model(x, x)
    assert len(calls) == 1  # eval + no grad: the inference form
    model(x, x)
    assert len(calls) == 1  # grad enabled, parameters need grad: the training form
    model.train()
    with torch.no_grad():
        model(x, x)
    assert len(calls) == 1  # training mode
    model.eval()
    handle = model.conv2.register_forward_hook(lambda *a: None)
    with torch.no_grad():
        model(x, x)
    assert len(calls) == 1  # a hook watches a layer
    handle.remove()
    with torch.inference_mode():
        model(x, x)
    assert len(calls) == 2


def test_mac_counts_see_the_training_form() -> None:
    """MAC counters hook the layers (or dispatch ops): they must count the declared network."""
    x = torch.rand(1, 1, 48, 64)
    fresh = LWCDenseFuse().eval()
    assert count_macs(fresh, (x, x)) == count_macs(LWCDenseFuse().fuse_for_inference(False).eval(), (x, x))
    assert count_macs(fresh, (x, x), method="executed") > 0


def test_plan_follows_parameter_changes() -> None:
    model = _unsaturated(LWCDenseFuse(), seed=4).eval()
    x, y = torch.rand(1, 1, 40, 50), torch.rand(1, 1, 40, 50)
    with torch.no_grad():
        before = model(x, y)
        other = _unsaturated(LWCDenseFuse(), seed=5)
        model.load_state_dict(other.state_dict())  # in-place copies: the plan must be rebuilt
        after = model(x, y)
        reference = other.eval().fuse_for_inference(False)(x, y)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, reference, atol=TOL, rtol=0)


def test_plan_follows_in_place_changes_through_data() -> None:
    # p.data.mul_ (old-style EMA) bumps no version counter: the plan compares values too
    model = _unsaturated(LWCDenseFuse(), seed=4).eval()
    x, y = torch.rand(1, 1, 40, 50), torch.rand(1, 1, 40, 50)
    with torch.no_grad():
        before = model(x, y)
        model.conv3.dw.weight.data.mul_(1.5)
        model.dense.layers[1].pw.weight.data.mul_(0.5)
        after = model(x, y)
        reference = model.fuse_for_inference(False)(x, y)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, reference, atol=TOL, rtol=0)


@pytest.mark.parametrize("name", ["densefuse", "lwc-densefuse"])
def test_frozen_network_passes_the_gradient_of_either_source(name: str) -> None:
    # frozen weights, one source needing its gradient (an adversarial or input-optimising loss):
    # the training form runs, whichever source it is
    model = load_model(name).requires_grad_(False)
    torch.manual_seed(0)
    ir, vi = torch.rand(1, 1, 24, 20), torch.rand(1, 1, 24, 20)
    grads = []
    for source in (ir, vi):
        source.requires_grad_(True)
        model(ir, vi).sum().backward()
        grads.append(source.grad.abs().sum().item())
        source.requires_grad_(False)
    assert min(grads) > 0


def test_gradients_flow_in_eval_mode() -> None:
    model = load_model("lwc-densefuse")
    x = torch.rand(1, 1, 20, 24)
    model(x, x).sum().backward()
    assert model.conv2.pw.weight.grad is not None and model.conv2.pw.weight.grad.abs().sum() > 0


def test_state_dict_holds_no_plan() -> None:
    model = load_model("densefuse")
    keys = set(model.state_dict())
    model.fuse_for_inference()
    assert set(model.state_dict()) == keys == set(DenseFuse().state_dict())


def test_window_sums_give_the_depthwise_mean() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 5, 9, 13)
    p = F.pad(x, (1, 1, 1, 1), mode="reflect")
    k = torch.randn(5, 1, 3, 3)
    expected = F.conv2d(p, k, groups=5).sum((0, 2, 3))
    torch.testing.assert_close((window_sums(p) * k.flatten(1)).sum(1), expected, rtol=1e-5, atol=1e-4)


def test_window_sums_of_a_half_precision_map_do_not_overflow() -> None:
    """A float16 map of a 640x480 frame sums past float16's 65,504: the sums are float32, so the
    gate stays finite (before, lwc-densefuse in fp16 gave an all-NaN image at real sizes)."""
    p = torch.full((1, 2, 482, 642), 0.75, dtype=torch.float16)
    sums = window_sums(p)
    assert sums.dtype == torch.float32 and torch.isfinite(sums).all()
    torch.testing.assert_close(sums, torch.full((2, 9), 0.75 * 480 * 640))


def test_fill_border_is_reflection_padding() -> None:
    x = torch.rand(2, 3, 6, 7)
    p = F.pad(x, (1, 1, 1, 1))  # zeros outside
    torch.testing.assert_close(fill_border_(p), F.pad(x, (1, 1, 1, 1), mode="reflect"), atol=0, rtol=0)
    one = torch.rand(1, 2, 1, 5)
    torch.testing.assert_close(fill_border_(F.pad(one, (1, 1, 1, 1)), replicate=True), F.pad(one, (1, 1, 1, 1), mode="replicate"))


def test_executed_mac_count_is_the_grouped_architecture():
    """The NHWC fast path runs the grouped pointwise conv as a dense block-diagonal one (2x the
    multiplies); a MAC counter watching the network must still see the grouped conv's work."""
    from litefuse.models.complexity import count_macs
    from litefuse.registry import load_model

    x = torch.rand(1, 1, 48, 64)
    model = load_model("lwc-densefuse")
    hooks, executed = count_macs(model, (x, x), "hooks"), count_macs(model, (x, x), "executed")
    assert hooks <= executed <= 1.05 * hooks, (hooks, executed)  # + fusion-rule arithmetic; dense would be ~1.6x
