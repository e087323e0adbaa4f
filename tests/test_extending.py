"""Extending litefuse from outside the package (docs/architecture.md, "Extending litefuse"):
a toy network, a classical fuser and a metric registered here, by name, reach fuse, compare,
bench, export and complexity like the built-in ones; plugins load from $LITEFUSE_PLUGINS."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import litefuse
from litefuse import metrics as M
from litefuse import plugins, registry
from litefuse.errors import ModelError, OptionError
from litefuse.plugins import load_plugins


class ToyNet(nn.Module):
    """Two convolutions: the smallest network the registry contract admits."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.c1 = nn.Conv2d(2, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.c2(torch.relu(self.c1(torch.cat([ir, vi], 1)))))


class MinFusion(nn.Module):
    tile_context, tile_align = 0, 1

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.minimum(a, b)


def _forget(*names: str) -> None:
    for name in names:
        registry._REGISTRY.pop(name, None)
        if name in M.METRICS:
            for table in (M._TABLE, M.METRICS, M._MIN_SIDES):
                table.pop(name, None)
            M._BY_LOWER.pop(name.lower(), None)


@pytest.fixture
def toys(tmp_path):
    """``toy-net`` (absolute weights path as its shipped weights), ``toy-min`` and metric ``ToyMean``."""
    torch.manual_seed(0)
    weights = tmp_path / "toy-net.safetensors"
    from safetensors.torch import save_file

    save_file(ToyNet(width=3).state_dict(), str(weights))
    registry.register_model("toy-net", lambda **kw: ToyNet(**{"width": 3, **kw}), description="toy",
                            weights=str(weights), tasks=("ivif", "mff"))
    registry.register_model("toy-min", MinFusion, description="per-pixel minimum", kind="classical")
    M.register_metric("ToyMean", lambda a, b, f: float(f.mean()), higher_is_better=True,
                      description="mean of F", min_side=4)
    try:
        yield weights
    finally:
        _forget("toy-net", "toy-min", "ToyMean")


def _pairs(root, n=2, size=(24, 32)):
    rng = np.random.default_rng(1)
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        Image.fromarray((rng.random(size) * 255).astype(np.uint8)).save(root / "ir" / f"p{i}.png")
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(root / "vi" / f"p{i}.png")
    return root


def test_registered_toys_work_by_name(toys, tmp_path):
    names = [m.name for m in litefuse.list_models()]
    assert "toy-net" in names and "toy-min" in names
    info = registry.get_model_info("toy-net")
    assert info.weights_path == toys and info.has_weights  # an absolute weights fact is the plugin's own file

    pairs = _pairs(tmp_path / "pairs")
    for name in ("toy-net", "toy-min"):
        fused = litefuse.fuse(pairs / "ir" / "p0.png", pairs / "vi" / "p0.png", model=name)
        assert fused.shape == (24, 32, 3) and 0 <= fused.min() <= fused.max() <= 1

    from litefuse.compare import compare

    result = compare([pairs], ["toy-net", "toy-min", "max"], metrics=["toymean", "EN"])
    assert result.metrics == ["ToyMean", "EN"]
    assert {r["method"] for r in result.rows} == {"toy-net", "toy-min", "max"}
    assert all(np.isfinite(r["ToyMean"]) for r in result.rows)

    from litefuse.models.complexity import count_macs, count_params

    model = litefuse.load_model("toy-net")
    assert count_params(model) == (2 * 3 * 9 + 3) + (3 * 9 + 1)
    assert count_macs(model, (torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))) == 64 * (2 * 3 * 9 + 3 * 9)

    report = litefuse.benchmark(["toy-net", "toy-min"], size=(16, 16), rounds=1, warmup=0)
    assert "toy-net" in report.markdown() and "toy-min" in report.markdown()


def test_a_network_without_weights_names_the_option_on_the_command_line(tmp_path):
    """QA pass (the docs' recipe, weights=None): `litefuse fuse -m tiny` said 'pass weights=PATH
    or pretrained=False', Python names only; the command's option is --weights."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    registry.register_model("toy-bare", ToyNet, description="toy without weights", weights=None, tasks=("ivif",))
    try:
        pairs = _pairs(tmp_path / "pairs", n=1)
        done = CliRunner().invoke(app, ["fuse", "--ir", str(pairs / "ir" / "p0.png"), "--vi", str(pairs / "vi" / "p0.png"),
                                        "-m", "toy-bare", "-o", str(tmp_path / "f.png")])
        assert done.exit_code == 2 and "--weights PATH" in done.output, done.output
        with pytest.raises(ModelError, match=r"weights=PATH\) or pretrained=False"):
            litefuse.load_model("toy-bare")
    finally:
        _forget("toy-bare")


def test_registered_network_exports_to_onnx(toys, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    report = litefuse.export_onnx("toy-net", tmp_path / "toy.onnx", size=(16, 24))
    assert (tmp_path / "toy.onnx").is_file() and report.max_abs_error < 1e-4


def test_a_rank_per_task_makes_a_method_the_default_of_those_tasks_only():
    """``default_rank={"medical": -1}``: first for medical pairs, never the default elsewhere (an
    int ranks a method for every task it covers)."""
    from litefuse.api import default_model

    before = {task: default_model(task) for task in ("ivif", "ab", "mff", "mef", "medical")}
    registry.register_model("toy-min", MinFusion, description="per-pixel minimum", kind="classical",
                            tasks=("ivif", "mff", "mef", "medical"), default_rank={"medical": -1})
    try:
        assert default_model("medical") == "toy-min"
        assert {task: default_model(task) for task in ("ivif", "ab", "mff", "mef")} == {
            task: name for task, name in before.items() if task != "medical"}
    finally:
        _forget("toy-min")
    assert default_model("medical") == before["medical"]


@pytest.mark.parametrize("tasks", [("foo",), "ivif", ()])
def test_a_method_made_for_no_known_task_is_refused(tasks):
    """`tasks=("foo",)` was accepted (the method then covered no task), `tasks="ivif"` read as its letters."""
    with pytest.raises(ValueError, match="tasks must be a tuple of ivif, mff, mef, medical"):
        registry.register_model("toy-tasks", MinFusion, description="toy", kind="classical", tasks=tasks)
    assert "toy-tasks" not in registry.list_models()


def test_register_metric_contract(toys):
    a = b = f = np.full((8, 8), 100, np.uint8)
    assert M.evaluate(a, b, f, "ToyMean") == {"ToyMean": 100.0}
    assert M.METRICS["ToyMean"].arrow == "↑"
    with pytest.raises(Exception, match="too small: ToyMean needs 4"):
        M.evaluate(a[:3, :3], b[:3, :3], f[:3, :3], "ToyMean")
    with pytest.raises(OptionError, match="registered twice"):
        M.register_metric("toymean", lambda a, b, f: 0.0, higher_is_better=False, description="clash")
    with pytest.raises(OptionError, match="registered twice"):
        M.register_metric("SSIM", lambda a, b, f: 0.0, higher_is_better=True, description="clash")
    with pytest.raises(OptionError, match="unknown metric"):
        M.resolve_metrics("NoSuchMetric")
    # a score keyed 'method' or 'image' overwrote that column of compare's rows and scores.csv
    for column in ("method", "Image", "set", "convention"):
        with pytest.raises(OptionError, match="column of the score tables"):
            M.register_metric(column, lambda a, b, f: 0.0, higher_is_better=True, description="clash")
        assert column not in M.METRICS
    for bad in (None, "", "my-metric", 3):  # not a name: OptionError, not AttributeError from .lower()
        with pytest.raises(OptionError, match="letters, digits"):
            M.register_metric(bad, lambda a, b, f: 0.0, higher_is_better=True, description="bad")


def test_plugins_load_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "lf_toy_plugin.py").write_text(
        "from litefuse.registry import register_model\n"
        "from torch import nn\n"
        "class Mean(nn.Module):\n"
        "    def forward(self, a, b):\n"
        "        return (a + b) / 2\n"
        "register_model('toy-plugin-mean', Mean, description='plugin', kind='classical')\n"
    )
    (tmp_path / "lf_broken_plugin.py").write_text("raise RuntimeError('broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        monkeypatch.setenv("LITEFUSE_PLUGINS", " lf_toy_plugin , ")
        assert load_plugins() == ["lf_toy_plugin"]
        assert load_plugins() == []  # once per process
        assert registry.get_model_info("toy-plugin-mean").kind == "classical"
        monkeypatch.setenv("LITEFUSE_PLUGINS", "lf_toy_plugin,lf_broken_plugin")
        with pytest.raises(plugins.PluginError, match=r"'lf_broken_plugin' \(named by \$LITEFUSE_PLUGINS\) failed to "
                           r"import: RuntimeError: broken on purpose") as info:
            load_plugins()
        assert isinstance(info.value.__cause__, RuntimeError)  # the plugin's own traceback
        # as `import litefuse` loads them: kept, said by check_plugins and by an unknown name's error
        assert load_plugins(strict=False) == []
        with pytest.raises(plugins.PluginError, match="lf_broken_plugin"):
            plugins.check_plugins()
        with pytest.raises(ModelError, match=r"unknown model 'toy-broken'.*; litefuse plugin 'lf_broken_plugin'"):
            registry.get_model_info("toy-broken")
        with pytest.raises(OptionError, match=r"unknown metric .*lf_broken_plugin"):
            M.resolve_metrics("NoSuchMetric")
    finally:
        _forget("toy-plugin-mean")
        for mod in ("lf_toy_plugin", "lf_broken_plugin"):
            sys.modules.pop(mod, None)
            plugins._LOADED.discard(mod)
            plugins._FAILED.pop(mod, None)
    with pytest.raises(ModelError, match="unknown model") as info:
        registry.get_model_info("toy-plugin-mean")
    assert "failed to import" not in str(info.value)


def test_the_command_says_a_broken_plugin_in_one_line(tmp_path):
    import os
    import subprocess

    (tmp_path / "lf_broken_plugin.py").write_text("raise RuntimeError('broken on purpose')\n")
    env = {**os.environ, "LITEFUSE_PLUGINS": "lf_broken_plugin",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "litefuse", "models"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == ("error: litefuse plugin 'lf_broken_plugin' (named by $LITEFUSE_PLUGINS) failed to import: "
                                   "RuntimeError: broken on purpose")
    # help still shows (how else would one find the option to drop it), the failure as a note beside it
    for args in (["--help"], ["fuse", "--help"]):
        proc = subprocess.run([sys.executable, "-m", "litefuse", *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0 and "Usage" in proc.stdout, proc.stderr
        assert proc.stderr.startswith("note: litefuse plugin 'lf_broken_plugin'"), proc.stderr
