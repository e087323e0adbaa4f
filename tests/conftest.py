"""Shared fixtures: the synthetic demo pair, and ``../shared`` beside the checkout (skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from litefuse.demo import synthetic_pair
from litefuse.runtime import keep_full_isa

# the suite runs float32 and bf16 models in one process: oneDNN keeps its every instruction set
# (tests/test_runtime.py checks the float32 cap in processes of its own)
keep_full_isa()

SHARED = Path(os.environ.get("LITEFUSE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))

# the smoke-test sample named in shared/data/README.md
SAMPLE_PAIRS = [("MSRS", "00633D"), ("MSRS", "00881N"), ("TNO", "05"), ("TNO", "11"), ("RoadScene", "FLIR_00018"), ("RoadScene", "FLIR_00060")]


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def demo_pair() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_pair()


def sample_pair_paths(shared_dir: Path, dataset: str, stem: str) -> tuple[Path, Path]:
    folder = shared_dir / "data" / "ivif" / dataset
    (ir,) = (folder / "ir").glob(f"{stem}.*")
    (vi,) = (folder / "vi").glob(f"{stem}.*")
    return ir, vi


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Every test leaves torch's thread count, and the count litefuse last set, as it found them:
    litefuse keeps a count the user chose (runtime.user_threads), so a leaked one would steer
    later tests."""
    import torch

    from litefuse import runtime

    before, last, users = torch.get_num_threads(), runtime._LAST_SET, runtime._LAST_WAS_USERS
    yield
    torch.set_num_threads(before)
    runtime._LAST_SET, runtime._LAST_WAS_USERS = last, users


@pytest.fixture(autouse=True)
def _once_notes_reset(monkeypatch):
    """Each test starts with litefuse's once-per-process notes unsaid, so whether a test sees one
    does not depend on which tests ran before it."""
    from litefuse import io

    monkeypatch.setattr(io, "_NARROW_NOTED", [])


@pytest.fixture()
def one_thread():
    """Run a test with one torch thread (training tests: deterministic and polite to the CPU)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def to_u8(x: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """A seeded uint8 sine texture with noise: structure for crop and training tests."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.25 * np.sin(xx / (3 + seed % 4)) * np.cos(yy / (2 + seed % 3)) + 0.2 * rng.random((h, w))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture()
def image_root(tmp_path: Path) -> Path:
    """``root/ivif/SetA/{ir,vi}`` (colour visible) and ``root/mff/SetB/{A,B}``, plus a small image."""
    root = tmp_path / "data"
    for i in range(8):
        stem = f"s{i:02d}"
        h, w = (20, 24) if i == 7 else (40, 48)  # s07 is smaller than a 32×32 crop
        for sub in ("ir", "vi"):
            (root / "ivif" / "SetA" / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(texture(h, w, i)).save(root / "ivif" / "SetA" / "ir" / f"{stem}.png")
        rgb = np.stack([texture(h, w, i + 10), texture(h, w, i + 20), texture(h, w, i + 30)], -1)
        Image.fromarray(rgb).save(root / "ivif" / "SetA" / "vi" / f"{stem}.png")
    for i in range(4):
        for sub in ("A", "B"):
            (root / "mff" / "SetB" / sub).mkdir(parents=True, exist_ok=True)
        a = texture(36, 44, 50 + i)
        Image.fromarray(a).save(root / "mff" / "SetB" / "A" / f"m{i}.png")
        Image.fromarray(255 - a).save(root / "mff" / "SetB" / "B" / f"m{i}.png")
    return root


def host_tensor_counter():
    """A dispatch mode counting tensors built from host data (``torch.tensor(...)``, a Python list
    used as an index): on a GPU each is a blocking upload. ``with host_tensor_counter() as c:
    ...; c.count``."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class HostTensors(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count += func is torch.ops.aten.lift_fresh.default
            return func(*args, **(kwargs or {}))

    return HostTensors()
