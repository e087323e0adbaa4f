"""Run-folder files written by litefuse.train.state."""

from __future__ import annotations

import hashlib

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from litefuse.train.state import save_safetensors


def test_equal_weights_and_metadata_give_equal_bytes(tmp_path):
    """The safetensors writer keeps metadata in a hash map: the same weights saved twice had
    different sha256s (a model card's hash could not be reproduced by rerunning its recipe)."""
    state = {"conv.weight": torch.randn(4, 1, 3, 3), "conv.bias": torch.zeros(4, dtype=torch.float16)}
    metadata = {f"key{i}": str(i) for i in range(12)}
    digests = set()
    for i in range(4):
        path = tmp_path / f"{i}.safetensors"
        save_safetensors(state, path, metadata)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    loaded = load_file(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    with safe_open(path, "pt") as fh:
        assert fh.metadata() == metadata
    assert int.from_bytes(path.read_bytes()[:8], "little") % 8 == 0  # the header stays 8-byte aligned
