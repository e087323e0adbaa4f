"""Folder fusion: pipelined and batched, identical to one pair at a time, bad pairs skipped alone."""

from __future__ import annotations

import numpy as np
import pytest

from litefuse.api import Fuser, fuse_folder
from litefuse.demo import synthetic_pair
from litefuse.io import read_image, save_image


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "set"
    for i in range(5):
        ir, vi = synthetic_pair(48, 64, seed=i) if i != 3 else synthetic_pair(40, 56, seed=i)
        save_image(root / "ir" / f"{i}.png", ir)
        save_image(root / "vi" / f"{i}.png", vi if i != 1 else vi.mean(-1))  # one grey visible
    save_image(root / "ir" / "bad.png", np.zeros((48, 64), np.float32))
    (root / "vi" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return root


@pytest.mark.parametrize("batch_size", [1, 3])
def test_pipeline_matches_one_at_a_time(folder, tmp_path, batch_size, one_thread):
    fuser = Fuser("aenetv2-ivif")
    report = fuse_folder(folder, tmp_path / f"out{batch_size}", fuser, batch_size=batch_size)
    assert [p.name for p in report.fused] == ["0.png", "1.png", "2.png", "3.png", "4.png"]
    assert len(report.skipped) == 1 and "bad.png" in report.skipped[0]
    for path in report.fused:
        a, b = read_image(folder / "ir" / path.name), read_image(folder / "vi" / path.name)
        expected = np.clip(np.rint(fuser.fuse_images(a, b) * 255), 0, 255) / 255
        assert np.abs(read_image(path) - expected).max() <= 1 / 255 + 1e-6
    assert read_image(tmp_path / f"out{batch_size}" / "1.png").ndim == 2
    assert not list((tmp_path / f"out{batch_size}").glob(".*"))


def test_batch_equals_single_calls(one_thread):
    fuser = Fuser("aenetv2")
    pairs = [synthetic_pair(48, 64, seed=i) for i in range(3)]
    ys = [fuser.prepare(ir, vi) for ir, vi in pairs]
    batched = fuser.fuse_luma_batch([p.a[0] for p in ys], [p.b[0] for p in ys])
    for p, out in zip(ys, batched):
        np.testing.assert_allclose(out, fuser.fuse_luma(p.a[0], p.b[0]), atol=1e-5)
