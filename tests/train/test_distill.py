"""Distillation: teacher specs, the content-keyed teacher cache, the blend head of AE-Netv2, a
student of another family learning from a teacher through the CLI, and the per-task default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from litefuse.demo import synthetic_pair
from litefuse.errors import ModelError
from litefuse.models.aenetv2 import AENetV2
from litefuse.registry import load_model
from litefuse.train import teachers as T

pytestmark = pytest.mark.usefixtures("one_thread")


from conftest import to_u8 as _u8  # noqa: E402


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    ir, vi = synthetic_pair(40, 56, seed=5)
    return _u8(ir), _u8(vi.mean(axis=2))


def _write_pairs(root: Path, n: int, layout=("ir", "vi")) -> Path:
    for i in range(n):
        ir, vi = synthetic_pair(40, 56, seed=i)
        for sub, img in zip(layout, (_u8(ir), _u8(vi.mean(axis=2)))):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / sub / f"p{i:02d}.png")
    return root


# --------------------------------------------------------------------------------------------
# teachers


def test_teacher_specs(tmp_path):
    assert T.parse_teacher("max").name == "max" and T.parse_teacher("max").weights is None
    assert T.parse_teacher("bank", work_size=64).work_size == 64
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        T.parse_teacher("nope")
    with pytest.raises(ModelError, match="weights file not found"):
        T.parse_teacher(f"aenetv2={tmp_path / 'missing.safetensors'}")
    # a litefuse weights file names its model, so the bare path is enough
    model = load_model("aenetv2", pretrained=False)
    path = tmp_path / "student.safetensors"
    save_file(model.state_dict(), str(path), metadata={"model": "aenetv2"})
    teacher = T.parse_teacher(str(path))
    assert (teacher.name, teacher.weights) == ("aenetv2", path)
    for spec in (f"aenetv2={path}", f"aenetv2@{path}"):  # -m's NAME@WEIGHTS too (it said "unknown model")
        assert (T.parse_teacher(spec).name, T.parse_teacher(spec).weights) == ("aenetv2", path)
    with pytest.raises(ModelError, match="classical"):
        T.parse_teacher(f"max={path}")
    bare = tmp_path / "bare.safetensors"
    save_file(model.state_dict(), str(bare))
    with pytest.raises(ModelError, match="does not name its model"):
        T.parse_teacher(str(bare))
    cut = tmp_path / "cut.safetensors"  # unreadable: said as such (it said "does not name its model")
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ModelError, match=r"cut\.safetensors: cannot read weights \(SafetensorError"):
        T.parse_teacher(str(cut))


def test_network_teacher_is_keyed_by_its_weights(pair, tmp_path):
    a, b = pair
    model = load_model("aenetv2", pretrained=False)
    path = tmp_path / "t.safetensors"
    save_file(model.state_dict(), str(path), metadata={"model": "aenetv2"})
    teacher = T.parse_teacher(f"aenetv2={path}")
    cache = T.TeacherCache(tmp_path / "cache")
    first = cache.get(teacher, a, b)
    with torch.inference_mode():
        expect = model(torch.from_numpy(a).float()[None, None] / 255, torch.from_numpy(b).float()[None, None] / 255)
    np.testing.assert_array_equal(first, _u8(expect[0, 0].numpy()))
    assert cache.get(teacher, a, b).tobytes() == first.tobytes() and cache.hits == 1
    # retrained weights at the same path: a new signature, so the cache misses
    with torch.no_grad():
        model.head.bias.add_(1.0)
    save_file(model.state_dict(), str(path), metadata={"model": "aenetv2"})
    retrained = T.parse_teacher(f"aenetv2={path}")
    assert retrained.signature != teacher.signature
    assert not np.array_equal(cache.get(retrained, a, b), first) and cache.misses == 2


def test_combine_rules():
    x = np.array([[0, 100]], np.uint8)
    y = np.array([[51, 200]], np.uint8)
    z = np.array([[255, 0]], np.uint8)
    np.testing.assert_array_equal(T.combine_targets([x, y], "mean"), [[26, 150]])  # 25.5 rounds to even: 26
    np.testing.assert_array_equal(T.combine_targets([x, y, z], "max"), [[255, 200]])
    np.testing.assert_array_equal(T.combine_targets([x, y, z], "median"), [[51, 100]])
    assert T.combine_targets([x]) is x
    with pytest.raises(ValueError, match="unknown combine rule"):
        T.combine_targets([x, y], "vote")


# --------------------------------------------------------------------------------------------
# the blend head


def test_blend_output_is_a_mixture_of_the_sources():
    torch.manual_seed(0)
    ir, vi = torch.rand(2, 1, 17, 23), torch.rand(2, 1, 17, 23)
    net = AENetV2(output="blend").eval()
    assert net.head.out_channels == 1
    with torch.no_grad():
        out = net(ir, vi)
        assert out.shape == ir.shape
        lo, hi = torch.minimum(ir, vi), torch.maximum(ir, vi)
        assert ((out >= lo - 1e-6) & (out <= hi + 1e-6)).all()  # no residual: between the sources
        net.head.weight.zero_()
        net.head.bias.fill_(30.0)
        assert torch.allclose(net(ir, vi), ir)  # weight 1: the infrared
        net.head.bias.fill_(-30.0)
        assert torch.allclose(net(ir, vi), vi)
    res = AENetV2(output="blend", residual=0.25).eval()
    assert res.head.out_channels == 2
    with torch.no_grad():
        res.head.weight.zero_()
        res.head.bias.copy_(torch.tensor([-30.0, 30.0]))  # visible + the full residual bound
        assert torch.allclose(res(ir, vi), (vi + 0.25).clamp(0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="needs output='blend'"):
        AENetV2(residual=0.1)
    with pytest.raises(ValueError, match="unknown output"):
        AENetV2(output="sum")


def test_blend_student_trains(pair):
    net = load_model("aenetv2-ivif", pretrained=False).train()
    a, b = (torch.from_numpy(x).float()[None, None] / 255 for x in pair)
    out = net(a, b)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


# --------------------------------------------------------------------------------------------
# any network as a student, from the command line


def test_cli_distils_into_another_family(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from litefuse.cli import app

    monkeypatch.setenv("LITEFUSE_TEACHER_CACHE", str(tmp_path / "cache"))
    data = _write_pairs(tmp_path / "data" / "SYN", 6)
    out = tmp_path / "run"
    args = ["train", "densefuse", "--init", "pretrained", "--teacher", "max", "--teacher", "mean", "--data", str(data), "--out", str(out),
            "--max-steps", "16", "--no-progress", "--set", "crop=32", "--set", "batch_size=2", "--set", "val_fraction=0.34",
            "--set", "lr=2e-4", "--set", "objective.teacher_grad=0.0", "--set", "tensorboard=false", "--set", "threads=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    import json

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["objective_name"] == "distill" and cfg["objective"]["teachers"] == ["max", "mean"]
    import csv

    with open(out / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    val = [float(r["t_l1"]) for r in rows if r["kind"] == "val"]
    assert len(val) >= 2 and val[-1] < val[0]  # the student moves towards mean(max, mean)
    # the ensemble target is cached once per pair
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2 * 6
    bad = CliRunner().invoke(app, [*args[:2], "--teacher", "nope", "--data", str(data), "--out", str(tmp_path / "r2"), "--max-steps", "1"])
    assert bad.exit_code == 2 and "unknown model 'nope'" in bad.output


# --------------------------------------------------------------------------------------------
# the default per task


def test_default_follows_the_task(tmp_path):
    from litefuse.api import default_model, folder_task
    from litefuse.registry import get_model_info

    ivif = _write_pairs(tmp_path / "ivif", 1)
    ab = _write_pairs(tmp_path / "ab", 1, layout=("A", "B"))
    assert folder_task(ivif) == "ivif" and folder_task(ab) == "ab"
    assert default_model("ab") == "aenetv2"  # the general network covers multi-focus, multi-exposure, medical
    expect = "aenetv2-ivif" if get_model_info("aenetv2-ivif").weights_path else "aenetv2"
    assert default_model("ivif") == default_model() == expect
