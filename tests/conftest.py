"""Shared fixtures: the synthetic demo pair, and ``../shared`` beside the checkout (skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from litefuse.demo import synthetic_pair

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
