"""DWSFusion training: the §3.7 losses against hand-computed values, the WGAN-GP penalty against
its formula, critics checkpointed but not exported, exact resume after a crash, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import correlate
from safetensors import safe_open
from torch import nn

import litefuse
from litefuse.train import TrainConfig, Trainer, default_config_path, get_objective
from litefuse.train.losses import MS_SSIM_WEIGHTS, ms_ssim
from litefuse.train.objectives.dwsfusion import DWSFusionObjective, content_loss, dual_weight_loss, gradient_penalty

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)


pytestmark = pytest.mark.usefixtures("one_thread")  # training tests: one torch thread (see conftest)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))[None, None]


def _grad_np(a: np.ndarray) -> np.ndarray:
    return np.abs(correlate(a, SOBEL_X, mode="constant")) + np.abs(correlate(a, SOBEL_X.T, mode="constant"))


# --------------------------------------------------------------------------------------------
# losses


def test_content_loss_matches_hand_computation():
    rng = np.random.default_rng(0)
    ir, vi, fused = rng.random((3, 24, 28))
    m = np.maximum(ir, vi)
    total, parts = content_loss(_t(fused), _t(ir), _t(vi))
    l1 = np.abs(fused - m).mean()
    grad = np.abs(_grad_np(fused) - np.maximum(_grad_np(ir), _grad_np(vi))).mean()
    sim = ms_ssim(_t(fused), _t(m)).item()  # checked against a numpy reference in test_train.py
    assert parts["l1"].item() == pytest.approx(l1, abs=1e-12)
    assert parts["grad"].item() == pytest.approx(grad, abs=1e-12)
    assert parts["msssim"].item() == pytest.approx(sim, abs=1e-12)
    assert total.item() == pytest.approx(l1 + grad + 1 - sim, abs=1e-12)
    # a curriculum stage may scale the gradient term; the parts stay unweighted
    total, parts = content_loss(_t(fused), _t(ir), _t(vi), grad_weight=0.25)
    assert total.item() == pytest.approx(l1 + 0.25 * grad + 1 - sim, abs=1e-12) and parts["grad"].item() == pytest.approx(grad, abs=1e-12)
    # F = max(IR, VI): only the gradient term is left
    total, parts = content_loss(_t(m), _t(ir), _t(vi))
    assert parts["l1"].item() == 0 and parts["msssim"].item() == pytest.approx(1.0, abs=1e-9)
    assert total.item() == pytest.approx(np.abs(_grad_np(m) - np.maximum(_grad_np(ir), _grad_np(vi))).mean(), abs=1e-9)


@pytest.mark.parametrize("model", ["dwsfusion", "dwsfusion-plus"])
def test_packaged_config_crop_holds_five_ms_ssim_scales(model):
    cfg = TrainConfig.load(default_config_path(model))
    assert cfg.model == model and cfg.data == ["../shared/data/ivif"] and cfg.val_fraction > 0
    assert get_objective(model) is DWSFusionObjective
    a, b = 0.3, 0.7  # constant images: MS-SSIM = luminance ** w_5 only when all five scales fit
    lum = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)
    x, y = (torch.full((1, 1, *cfg.crop), v, dtype=torch.float64) for v in (a, b))
    assert ms_ssim(x, y).item() == pytest.approx(lum ** MS_SSIM_WEIGHTS[-1], rel=1e-9)


def test_dual_weight_loss_hand_values_and_no_detach():
    full = lambda v: torch.full((1, 1, 4, 4), v)  # noqa: E731
    out = {"w_ir": full(0.7), "w_vi": full(0.6), "f_ir": full(0.5), "f_vi": full(0.9)}
    assert dual_weight_loss(out).item() == pytest.approx(0.2 + 0.3 + 0.3, abs=1e-6)
    # from forward_all: W_* = AWEM_*(source), F_* = AWEM_*(fused); every term reaches both AWEMs
    torch.manual_seed(0)
    model = litefuse.load_model("dwsfusion", pretrained=False).train()
    ir, vi = torch.rand(2, 2, 1, 16, 20)  # batch 2: AdaKern BN on pooled features needs > 1 in training
    out = model.forward_all(ir, vi, dual=True)
    assert torch.equal(out["f_ir"], model.awem_ir(out["fused"])) and torch.equal(out["w_vi"], model.awem_vi(vi))
    for key in ("f_ir", "f_vi", "w_ir"):
        model.zero_grad()
        parts = {k: v if k == key else v.detach() for k, v in out.items()}
        dual_weight_loss(parts).backward(retain_graph=True)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), key


class _Quadratic(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.pow(2).flatten(1).sum(1, keepdim=True)


def test_gradient_penalty_matches_formula():
    real, fake = torch.rand(2, 3, 1, 6, 7, dtype=torch.float64)
    w = torch.randn(1, 1, 6, 7, dtype=torch.float64)
    linear = lambda x: (x * w).flatten(1).sum(1, keepdim=True)  # noqa: E731  ∇D = w everywhere
    assert gradient_penalty(linear, real, fake).item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-12)
    # D(x) = ½‖x‖²: ∇D(x̂) = x̂ with x̂ = ε·real + (1 − ε)·fake, ε per sample from the global RNG
    torch.manual_seed(3)
    gp = gradient_penalty(_Quadratic(), real, fake)
    torch.manual_seed(3)
    eps = torch.rand(3, 1, 1, 1, dtype=torch.float64)
    mixed = eps * real + (1 - eps) * fake
    expected = ((mixed.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-12)
    assert gp.grad_fn is not None  # differentiable (create_graph): the critic step back-propagates it


# --------------------------------------------------------------------------------------------
# training on a synthetic pair folder


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.3 * np.sin(xx / (2 + seed % 5)) * np.cos(yy / (3 + seed % 3)) + 0.2 * rng.random((h, w))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture()
def pairs_root(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "SetA"
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True)
    for i in range(6):
        Image.fromarray(_texture(36, 44, i)).save(root / "ir" / f"p{i}.png")
        rgb = np.stack([_texture(36, 44, i + k) for k in (10, 20, 30)], -1)
        Image.fromarray(rgb).save(root / "vi" / f"p{i}.png")
    return tmp_path / "data"


def _config(root: Path, out: Path, model: str = "dwsfusion", **kw) -> TrainConfig:
    values = TrainConfig.load(default_config_path(model)).to_dict()
    values.update(
        data=[str(root)], crop=[32, 40], batch_size=2, val_fraction=0.3, log_every=1, checkpoint_every=2, val_every=2,
        progress=False, tensorboard=False, out_dir=str(out), seed=5, epochs=None, threads=1,
    )
    values.update(kw)
    return TrainConfig.from_dict(values)


def test_run_checkpoints_critics_but_exports_the_generator_only(pairs_root, tmp_path):
    out = tmp_path / "run"
    result = Trainer(_config(pairs_root, out, max_steps=3)).fit()
    assert result.steps == 3 and result.best_val is not None
    header = (out / "log.csv").read_text().splitlines()[0].split(",")
    assert {"content", "l1", "grad", "msssim", "dual", "adv", "d_ir", "d_vi", "gp"} <= set(header)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert set(ckpt["objective"]["nets"]) == {"critic_ir", "critic_vi"}
    assert "head.weight" not in ckpt["objective"]["nets"]["critic_ir"]  # packaged recipe: the release's random head
    assert set(ckpt["objective"]["optimizers"]) == {"generator", "critic_ir", "critic_vi"}
    model = litefuse.load_model("dwsfusion", pretrained=False)
    with safe_open(out / "model.safetensors", "pt") as fh:
        assert set(fh.keys()) == set(model.state_dict())
    loaded = litefuse.load_model("dwsfusion", weights=out / "model.safetensors")
    assert sum(p.numel() for p in loaded.parameters()) == 9035
    assert loaded(torch.rand(1, 1, 17, 23), torch.rand(1, 1, 17, 23)).shape == (1, 1, 17, 23)


def test_curriculum_stage_drops_the_gradient_term_then_restores_it(pairs_root, tmp_path):
    out = tmp_path / "run"
    stages = [{"epochs": 1, "grad_weight": 0.0}, {"epochs": 1}]
    Trainer(_config(pairs_root, out, stages=stages, val_every=0, max_steps=None)).fit()
    rows = [r.split(",") for r in (out / "log.csv").read_text().splitlines()]
    col = {k: i for i, k in enumerate(rows[0])}
    vals = [{k: float(r[i]) for k, i in col.items() if k not in ("kind",) and r[i]} for r in rows[1:] if r[0] == "val"]
    assert [v["stage"] for v in vals] == [1, 2]
    for v, g in zip(vals, (0.0, 1.0)):  # validation loss = 10·(l1 + g·grad + 1 − MS-SSIM) + dual
        assert v["grad"] > 0.01
        assert v["loss"] == pytest.approx(10 * (v["l1"] + g * v["grad"] + 1 - v["msssim"]) + v["dual"], rel=1e-3)


def test_registered_critic_head_is_trained_and_checkpointed(pairs_root, tmp_path):
    out = tmp_path / "reg"
    Trainer(_config(pairs_root, out, max_steps=2, objective={"critic_head": "registered"})).fit()
    nets = torch.load(out / "last.pt", weights_only=True)["objective"]["nets"]
    assert {"head.weight", "head.bias"} <= set(nets["critic_ir"]) and {"head.weight", "head.bias"} <= set(nets["critic_vi"])


class _Crash(RuntimeError):
    pass


def _assert_same_run(a: Path, b: Path) -> None:
    sa, sb = (torch.load(p / "last.pt", weights_only=True) for p in (a, b))
    assert sa["trainer"]["step"] == sb["trainer"]["step"]
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    for name, net in sa["objective"]["nets"].items():
        for k in net:
            assert torch.equal(net[k], sb["objective"]["nets"][name][k]), (name, k)
    for name, oa in sa["objective"]["optimizers"].items():
        ob = sb["objective"]["optimizers"][name]
        assert oa["param_groups"] == ob["param_groups"]
        for i in oa["state"]:
            for k in oa["state"][i]:
                assert torch.equal(torch.as_tensor(oa["state"][i][k]), torch.as_tensor(ob["state"][i][k])), (name, i, k)
    rows = lambda p: [r.split(",")[:5] + r.split(",")[6:] for r in (p / "log.csv").read_text().splitlines()[1:]]  # noqa: E731
    assert rows(a) == rows(b)


def test_resume_after_a_crash_matches_uninterrupted_run(pairs_root, tmp_path):
    """Killed at step 3 (last checkpoint at step 2), resumed to step 5: the same generator,
    critics, optimizer states and log as a run that was never interrupted."""
    Trainer(_config(pairs_root, tmp_path / "full", max_steps=5)).fit()
    objective = DWSFusionObjective()
    step_fn = objective.training_step

    def crashing(batch, step):
        if step == 3:
            raise _Crash
        return step_fn(batch, step)

    objective.training_step = crashing
    with pytest.raises(_Crash):
        Trainer(_config(pairs_root, tmp_path / "cut", max_steps=5), objective=objective).fit()
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["trainer"]["step"] == 2
    Trainer(_config(pairs_root, tmp_path / "cut", max_steps=5)).fit(resume=True)
    _assert_same_run(tmp_path / "full", tmp_path / "cut")


def test_train_command_dwsfusion_plus(pairs_root, tmp_path):
    from typer.testing import CliRunner

    from litefuse.cli import app

    out = tmp_path / "cli"
    args = ["train", "dwsfusion-plus", "--data", str(pairs_root), "-o", str(out), "--max-steps", "2", "-b", "2",
            "--set", "crop=[32,40]", "--set", "threads=1", "--set", "tensorboard=false", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["model"] == "dwsfusion-plus" and summary["params"] == sum(p.numel() for p in litefuse.load_model("dwsfusion-plus", pretrained=False).parameters())
    fused = litefuse.load_model("dwsfusion-plus", weights=out / "model.safetensors")(torch.rand(1, 1, 20, 26), torch.rand(1, 1, 20, 26))
    assert fused.shape == (1, 1, 20, 26) and 0 <= fused.min() and fused.max() <= 1
