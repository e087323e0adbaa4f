"""The analysis scripts under tools/ whose numbers the docs quote, on hand-made inputs."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from litefuse.metrics import CORE_METRICS
from litefuse.train.positives import BANK


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ceiling = _tool("positive_ceiling")
residual = _tool("residual_to_max")
plus_init = _tool("plus_from_dwsfusion")


def _write(path: Path, table: dict[str, dict[str, float]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["set", "image", "method", *CORE_METRICS])
        for image, per_method in table.items():
            for method, v in per_method.items():
                w.writerow(["S", image, method, *([v] * len(CORE_METRICS))])


def test_oracle_takes_each_pairs_winner_and_counts_strict_wins(tmp_path):
    # pair a: gff wins every metric (value 5), pair b: max wins (value 7); the rest score 1
    table = {img: {m: 1.0 for m in (*BANK, "net")} for img in ("a", "b")}
    table["a"]["gff"], table["b"]["max"], table["a"]["net"], table["b"]["net"] = 5.0, 7.0, 3.0, 3.0
    path = tmp_path / "scores.csv"
    _write(path, table)
    out = ceiling.oracle_table(path, "net")
    assert "gff 1, max 1" in out
    rows = {line.split(" | ")[0].lstrip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert rows["oracle"].startswith("| oracle | 6.000")  # mean of 5 and 7
    assert rows["gff"].endswith("| 8/8 | 0/8 |")  # gff mean 3.0 ties the net: a tie is not a win
    assert rows["mean"].endswith("| 8/8 | 8/8 |")


def test_a_pair_missing_a_bank_fuser_is_one_line_error(tmp_path):
    table = {"a": {m: 1.0 for m in (*BANK, "net")}}
    del table["a"]["wavelet"]
    path = tmp_path / "scores.csv"
    _write(path, table)
    with pytest.raises(SystemExit, match="pair S/a has no rows for wavelet"):
        ceiling.oracle_table(path, "net")


def test_residual_to_max_separates_a_smooth_offset_from_added_edges():
    rng = np.random.default_rng(0)
    ir = rng.integers(0, 200, (64, 64)).astype(np.uint8)
    vi = rng.integers(0, 200, (64, 64)).astype(np.uint8)
    m = np.maximum(ir, vi)
    exact = dict(zip(residual.COLUMNS, residual.residual_stats(ir, vi, m)))
    assert exact["mean abs F−M"] == exact["abs low"] == exact["abs high"] == 0.0
    assert exact["std F"] == exact["std M"]
    offset = dict(zip(residual.COLUMNS, residual.residual_stats(ir, vi, m + 3)))  # a constant is all low frequency
    assert offset["abs low"] == pytest.approx(3.0) and offset["abs high"] == pytest.approx(0.0, abs=1e-12)
    assert offset["F>M+1"] == 1.0 and offset["MI(F,IR)"] == pytest.approx(exact["MI(F,IR)"])  # a shift keeps MI
    checker = (np.indices(m.shape).sum(axis=0) % 2 * 6).astype(np.uint8)  # +0/+6 alternating: high frequency
    edges = dict(zip(residual.COLUMNS, residual.residual_stats(ir, vi, m + checker)))
    assert edges["abs high"] == pytest.approx(3.0, abs=0.1)  # vs 0 for the constant offset
    assert edges["MI(F,VI)"] < exact["MI(F,VI)"]


def _demo_lumas(seeds=(0, 1, 2)):
    import torch

    from litefuse.demo import synthetic_luma_pair

    return [tuple(torch.from_numpy(a)[None, None] for a in synthetic_luma_pair(96, 128, seed)) for seed in seeds]


def test_plus_start_computes_what_the_shipped_dwsfusion_computes():
    import torch

    from litefuse.registry import load_model

    dws = load_model("dwsfusion").eval()
    pairs = _demo_lumas()
    state, a0, lo, hi = plus_init.plus_state(dws, pairs)
    assert 0 < lo <= a0 <= hi < 1
    plus = load_model("dwsfusion-plus", pretrained=False)
    plus.load_state_dict(state, strict=True)
    plus.eval()
    with torch.no_grad():
        for ir, vi in pairs:
            assert plus.alpha_net(torch.cat([ir, vi], 1)).item() == pytest.approx(dws.alpha_net(torch.cat([ir, vi], 1)).item(), abs=1e-5)
            assert (plus(ir, vi) - dws(ir, vi)).abs().max().item() < 1e-5
        # copying the weights unchanged would not: sigmoid(a0) is not relu(a0)
        plus.load_state_dict(dws.state_dict())
        ir, vi = pairs[0]
        assert (plus(ir, vi) - dws(ir, vi)).abs().max().item() > 1e-3


def test_plus_start_refuses_a_dead_alpha():
    import torch

    from litefuse.registry import load_model

    dws = load_model("dwsfusion").eval()
    with torch.no_grad():
        dws.alpha_net.fc.bias.fill_(-5.0)  # relu(a) = 0 on every pair: sigmoid cannot match
    with pytest.raises(SystemExit, match="alpha pre-activations span"):
        plus_init.plus_state(dws, _demo_lumas((0,)))


@pytest.mark.parametrize("script", sorted(p.name for p in (Path(__file__).parents[1] / "tools").glob("*.py")))
def test_tool_scripts_compile(script):
    path = Path(__file__).parents[1] / "tools" / script
    compile(path.read_text(encoding="utf-8"), str(path), "exec")  # maintainer scripts are not imported by the suite


@pytest.mark.parametrize("script, args", [
    ("tools/val_report.py", ["-m", "max", "--data"]),
    ("tools/residual_to_max.py", ["m=max", "--data"]),
    ("benchmarks/bench_pipeline.py", ["--methods", "max", "--pairs", "2", "--data"]),
    ("benchmarks/bench_precision.py", ["--quality"]),
])
def test_missing_shared_data_is_one_line(script, args, tmp_path):
    """Without ../shared the scripts died with a traceback (litefuse's InputError, or os.listdir's FileNotFoundError)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    done = subprocess.run([sys.executable, str(root / script), *args, str(tmp_path / "absent")], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert str(tmp_path / "absent") in done.stderr.strip().splitlines()[-1], done.stderr  # one line (argparse's usage above it)


def test_shipping_records_run_settings_in_the_weights_file(tmp_path):
    """``record_kwargs`` merges settings into a weights file's ``model_kwargs`` (tensors and other
    metadata kept, written once), and ``load_model`` then builds the network with them; the shipped
    ``aenetv2`` file is in the state the tool leaves it in."""
    import hashlib
    import shutil

    import torch
    from safetensors.torch import load_file

    from litefuse.registry import get_model_info, load_model, weights_metadata

    ship = _tool("ship_weights")
    shipped = get_model_info("aenetv2").weights_path
    assert not ship.record_kwargs(shipped, ship.SHIP_KWARGS["aenetv2"])  # already recorded: file untouched
    path = tmp_path / "w.safetensors"
    shutil.copyfile(shipped, path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert ship.record_kwargs(path, {"border": 4})
    assert hashlib.sha256(path.read_bytes()).hexdigest() != before
    meta = weights_metadata(path)
    assert meta["model_kwargs"] == '{"border": 4}' and meta["step"] == weights_metadata(shipped)["step"]
    got, want = load_file(str(path)), load_file(str(shipped))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert load_model("aenetv2", weights=path).border == 4
    assert load_model("aenetv2", weights=path, border=0).border == 0
