"""Same pair, same method, different paths: the README's reproducibility and tiling claims."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litefuse.api import Fuser
from litefuse.demo import synthetic_pair


@pytest.fixture(scope="module")
def luma():
    ir, vi = synthetic_pair(96, 128)
    y = lambda x: x if x.ndim == 2 else x @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
    return np.float32(y(ir)), np.float32(y(vi))


@pytest.mark.parametrize("name", ["aenetv2", "aenetv2-ivif", "densefuse"])
def test_local_networks_tile_like_one_pass(name, luma):
    # README: AE-Netv2 and DenseFuse tiles equal the single pass (no global operator)
    whole = Fuser(name, threads=1, tile=4096).fuse_luma(*luma)
    tiled = Fuser(name, threads=1, tile=64).fuse_luma(*luma)  # 96x128 > 64²: tiled, 32 px of context
    assert np.abs(tiled - whole).max() <= 1e-5


@pytest.mark.parametrize("name", ["aenetv2-ivif", "dwsfusion", "gff"])
def test_twice_bit_identical_and_threads_only_round(name, luma):
    before = torch.get_num_threads()
    try:
        fuser = Fuser(name, threads=1)
        one = fuser.fuse_luma(*luma)
        assert np.array_equal(one, fuser.fuse_luma(*luma))
        torch.set_num_threads(2)
        assert np.abs(fuser.fuse_luma(*luma) - one).max() <= 1e-5
    finally:
        torch.set_num_threads(before)
