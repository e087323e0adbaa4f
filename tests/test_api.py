"""The Python API as a library user calls it (litefuse.api): options, global state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import litefuse
from litefuse.api import _cached_fuser


def test_fuse_threads_hold_on_the_first_call(monkeypatch):
    """``fuse(threads=1)`` runs with 1 thread even when it loads the method (a cache miss builds a
    Fuser with the default count, which must not win over the caller's)."""
    monkeypatch.setenv("LITEFUSE_THREADS", "2")
    _cached_fuser.cache_clear()
    before = torch.get_num_threads()
    try:
        x = np.random.default_rng(0).random((16, 16)).astype(np.float32)
        litefuse.fuse(x, x, model="mean", threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        _cached_fuser.cache_clear()


def test_fuse_refuses_ir_norm_for_ab_pairs():
    """As fuse_files, fuse_folder and the CLI: ``ir_norm`` would stretch source A alone."""
    from litefuse.errors import OptionError

    x = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    with pytest.raises(OptionError, match="A/B pairs"):
        litefuse.fuse(x * 0.5, x, model="mean", task="mef", ir_norm="minmax")
    with pytest.raises(OptionError, match="A/B pairs"):
        litefuse.fuse(x * 0.5, x, model=litefuse.Fuser("mean", task="mff"), ir_norm=2.0)
    assert litefuse.fuse(x * 0.5, x, model="mean", ir_norm="minmax").max() > 0.5  # ivif: the infrared stretched
