"""Shipped weights: every network has them, its card describes exactly that file, and it fuses.

The fusion checks use the built-in synthetic scene: people standing in a deep shadow are
visible only in the infrared, the brick texture only in the visible image. A trained fusion
network must keep both — an untrained one (or a wrong weights file) does not.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch

import litefuse
from litefuse.api import default_model
from litefuse.colour import rgb_to_ycbcr
from litefuse.demo import synthetic_pair
from litefuse.models.complexity import count_params
from litefuse.registry import get_model_info

NETWORKS = [m.name for m in litefuse.list_models("network")]


def _masks(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(people in the shadowed alcove, the brick wall left of it) of :func:`synthetic_pair`."""
    yy, xx = np.mgrid[0:h, 0:w]
    v, u = yy / h, xx / w
    people = np.zeros((h, w), bool)
    for cx in (0.63, 0.76):
        people |= ((yy - 0.68 * h) / (0.16 * h)) ** 2 + ((xx - cx * w) / (0.04 * w)) ** 2 <= 1
    wall = (v > 0.34) & (v < 0.72) & (u > 0.05) & (u < 0.5)
    return people, wall


def _detail(y: np.ndarray, mask: np.ndarray) -> float:
    gx = np.abs(np.diff(y, axis=1))[mask[:, 1:]]
    return float(gx.mean())


def test_every_network_ships_weights_and_the_default_is_a_network():
    for name in NETWORKS:
        assert get_model_info(name).weights_path is not None, name
    assert default_model() == "aenetv2-ivif"  # infrared-visible: the distilled real-time network
    assert default_model("ab") == "aenetv2"  # A/B pairs of unstated task: the general one
    assert default_model("medical") == "aenetv2"
    # named multi-focus and multi-exposure pairs: the Laplacian pyramid, ahead of aenetv2 on 7 of
    # the 8 core metrics of each task's validation pairs (docs/results.md)
    assert default_model("mff") == default_model("mef") == "laplacian"


@pytest.mark.parametrize("name", NETWORKS)
def test_card_describes_the_shipped_file(name):
    info = get_model_info(name)
    card = info.weights_path.with_suffix(".md").read_text()
    sha = hashlib.sha256(info.weights_path.read_bytes()).hexdigest()
    assert f"sha256 `{sha[:16]}" in card
    params = count_params(litefuse.load_model(name))
    assert f"| parameters | {params:,} |" in card
    assert re.search(r"\| seed \| \d+ \|", card) and f"litefuse train {name}" in card
    assert "| max |" in card  # scored beside the classical baseline


@pytest.mark.parametrize("name", NETWORKS)
def test_shipped_network_keeps_infrared_targets_and_visible_texture(name):
    torch.manual_seed(0)
    ir, vi = synthetic_pair()
    vi_y = rgb_to_ycbcr(vi)[0]
    fused = litefuse.Fuser(name).fuse_images(ir, vi, grey=True)
    assert fused.shape == ir.shape and fused.min() >= 0 and fused.max() <= 1
    people, wall = _masks(*ir.shape)
    background = ~people & (np.mgrid[0 : ir.shape[0], 0 : ir.shape[1]][0] > 0.4 * ir.shape[0])
    # the warm people stand out of the dark alcove (invisible in the visible image)
    assert fused[people].mean() - vi_y[people].mean() > 0.55, name  # (mean fusion: 0.43)
    assert fused[people].mean() > fused[background].mean() + 0.15, name
    # the brick texture of the visible image survives (the infrared wall is smooth)
    assert _detail(vi_y, wall) > 4 * _detail(ir, wall)  # the scene: texture only in the visible
    assert _detail(fused, wall) > 0.4 * _detail(vi_y, wall), name


def test_untrained_network_fails_the_same_check():
    """The fusion check above can fail: a randomly initialised AE-Netv2 does not pass it."""
    torch.manual_seed(0)
    ir, vi = synthetic_pair()
    model = litefuse.load_model("aenetv2", pretrained=False)
    with torch.inference_mode():
        out = model(torch.from_numpy(ir)[None, None], torch.from_numpy(rgb_to_ycbcr(vi)[0])[None, None])[0, 0].numpy()
    people, wall = _masks(*ir.shape)
    vi_y = rgb_to_ycbcr(vi)[0]
    assert not (out[people].mean() - vi_y[people].mean() > 0.55 and _detail(out, wall) > 0.4 * _detail(vi_y, wall))


def test_distilled_default_is_closer_to_its_teacher_than_max_and_an_untrained_student(shared):
    """aenetv2-ivif starts as a soft max(ir, vi) (its selection prior), so the synthetic check above
    cannot tell trained from untrained weights. On real pairs the shipped weights must reproduce
    their teacher, DWSFusion, more closely than `max` does, and far more closely than the same
    network with random weights."""
    from conftest import SAMPLE_PAIRS, sample_pair_paths

    from litefuse.io import read_image

    student, teacher = litefuse.Fuser("aenetv2-ivif"), litefuse.Fuser("dwsfusion")
    torch.manual_seed(0)
    untrained = litefuse.load_model("aenetv2-ivif", pretrained=False)
    gaps = {"shipped": [], "max": [], "untrained": []}
    for dataset, stem in SAMPLE_PAIRS:
        ir_path, vi_path = sample_pair_paths(shared, dataset, stem)
        ir, vi = read_image(ir_path), read_image(vi_path)
        ir = ir.mean(axis=2) if ir.ndim == 3 else ir
        vi = rgb_to_ycbcr(vi)[0] if vi.ndim == 3 else vi
        target = teacher.fuse_luma(ir, vi)
        with torch.inference_mode():
            raw = untrained(torch.from_numpy(ir)[None, None], torch.from_numpy(vi)[None, None])[0, 0].numpy()
        for key, out in (("shipped", student.fuse_luma(ir, vi)), ("max", np.maximum(ir, vi)), ("untrained", raw)):
            gaps[key].append(float(np.abs(out - target).mean()))
    mean = {k: float(np.mean(v)) for k, v in gaps.items()}
    assert mean["shipped"] < mean["max"] and 2 * mean["shipped"] < mean["untrained"], mean


def test_cards_name_the_licence_of_llvip_among_their_training_data(tmp_path):
    """LLVIP (inside data/ivif) is under a non-commercial licence: a card of weights trained on it
    says so, and the card writer finds it inside or as a data folder."""
    from pathlib import Path

    from litefuse.train.card import _licence_note

    weights = Path(litefuse.__file__).parent / "weights"
    for card in sorted(weights.glob("*.md")):
        row = next(line for line in card.read_text().splitlines() if line.startswith("| training data |"))
        assert ("data/ivif" in row) == ("non-commercial licence" in row), card.name
    (tmp_path / "ivif" / "LLVIP").mkdir(parents=True)
    (tmp_path / "mef").mkdir()
    assert "LLVIP" in _licence_note([str(tmp_path / "ivif")]) and "LLVIP" in _licence_note([str(tmp_path / "ivif" / "LLVIP")])
    assert _licence_note([str(tmp_path / "mef")]) == ""


@pytest.mark.parametrize("name", ["aenetv2", "aenetv2-ivif", "densefuse", "lwc-densefuse", "dwsfusion", "dwsfusion-plus"])
def test_card_facts_match_the_weights_file_and_the_model(name):
    """The card's seed and step are the weights file's metadata; its params and MACs are the
    model's, counted now (a card spliced by hand could drift from either)."""
    from pathlib import Path

    from litefuse.registry import get_model_info, weights_metadata
    from litefuse.train.card import model_complexity

    info = get_model_info(name)
    card = (Path(litefuse.__file__).parent / "weights" / f"{name}.md").read_text()
    rows = dict(re.findall(r"^\| ([^|]+?) \| (.+?) \|$", card, flags=re.M))
    meta = weights_metadata(info.weights_path)
    assert meta["model"] == name and rows["seed"] == meta["seed"], (rows.get("seed"), meta)
    params, macs = model_complexity(name, weights=info.weights_path)  # as the shipped file runs (its recorded settings)
    assert rows["parameters"] == f"{params:,}" and rows["MACs, one 640×480 fusion"] == f"{macs / 1e9:.3f} G"


@pytest.mark.parametrize("name", NETWORKS)
def test_shipped_network_draws_no_frame_at_the_image_edge(name):
    """On flat sources a fused image is flat to its edge (within 4 grey levels of its centre): the
    shipped aenetv2 drew up to 45 at the edge before its border (zero-padded convs)."""
    model = litefuse.load_model(name)
    for a, b in ((45, 236), (236, 45), (128, 128)):
        ir, vi = torch.full((1, 1, 120, 160), a / 255), torch.full((1, 1, 120, 160), b / 255)
        with torch.inference_mode():
            out = model(ir, vi)[0, 0] * 255
        assert float((out - out[60, 80]).abs().max()) <= 4.0, (name, a, b)
