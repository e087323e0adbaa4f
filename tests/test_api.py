"""The Python API as a library user calls it (litefuse.api): options, global state."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import litefuse
from litefuse.api import _cached_fuser
from litefuse.errors import InputError


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


def test_fuse_images_reads_float_arrays_of_any_documented_layout():
    """The float fast path takes only H×W / H×W×3 of a fusable size; C×H×W, H×W×1 and 1×H×W
    floats go through the input contract as their uint8 twins do (they failed with a bogus size
    mismatch or an IndexError), and a too-small float image is an InputError."""
    from litefuse.errors import InputError

    rng = np.random.default_rng(0)
    ir, vi = rng.random((16, 20)).astype(np.float32), rng.random((16, 20, 3)).astype(np.float32)
    fuser = litefuse.Fuser("max", threads=1)
    expected = fuser.fuse_images(ir, vi)
    np.testing.assert_array_equal(fuser.fuse_images(ir[None], np.moveaxis(vi, -1, 0)), expected)
    np.testing.assert_array_equal(fuser.fuse_images(ir[..., None], vi), expected)
    with pytest.raises(InputError, match="at least 8×8"):
        fuser.fuse_images(ir[:4, :4], vi[:4, :4])
    # three equal channels are grey on the fast path too (it returned H×W×3 where fuser() gave H×W)
    grey3 = np.repeat(ir[..., None], 3, axis=-1)
    assert fuser.fuse_images(vi[..., 0], grey3).shape == (16, 20) == fuser(vi[..., 0], grey3).shape


def test_weights_or_device_beside_a_loaded_fuser_are_refused():
    from litefuse.errors import OptionError

    x = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    for kwargs in ({"device": "cuda"}, {"weights": "w.safetensors"}):
        with pytest.raises(OptionError, match="weights= and device= choose what a Fuser loads"):
            litefuse.fuse(x, x, model=litefuse.Fuser("mean", threads=1), **kwargs)


def test_16_bit_colour_png_is_refused_before_the_fusion(tmp_path, monkeypatch):
    """``--bits 16 -o x.png`` with a colour visible failed only when writing, after the network ran."""
    from PIL import Image

    from litefuse.api import Fuser, fuse_files
    from litefuse.errors import OutputError

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((24, 32)) * 255).astype(np.uint8)).save(tmp_path / "ir.png")
    Image.fromarray((rng.random((24, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / "vi.png")
    fuser = Fuser("max")
    monkeypatch.setattr(Fuser, "fuse_images", lambda *a, **k: pytest.fail("fused before the output was found unwritable"))
    with pytest.raises(OutputError, match="16-bit colour is written as TIFF only"):
        fuse_files(tmp_path / "ir.png", tmp_path / "vi.png", tmp_path / "out.png", fuser, bits=16)
    monkeypatch.undo()
    assert fuse_files(tmp_path / "ir.png", tmp_path / "vi.png", tmp_path / "grey.png", fuser, bits=16, grey=True).is_file()
    assert not (tmp_path / "out.png").exists()


def test_read_only_frames_fuse_without_torch_warnings():
    """Frames from ``np.frombuffer`` or a shared buffer are read-only: the fast path for [0, 1]
    floats handed them to ``torch.from_numpy``, which warned about undefined behaviour."""
    import warnings

    rng = np.random.default_rng(0)
    ir, vi = rng.random((32, 40), dtype=np.float32), rng.random((16, 20, 3), dtype=np.float32)  # same aspect: no note
    want = litefuse.Fuser("mean").fuse_images(ir, vi, resize_b=True)
    ir.flags.writeable = vi.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = litefuse.Fuser("mean").fuse_images(ir, vi, resize_b=True)
    np.testing.assert_array_equal(got, want)


def test_an_unpickled_fuser_applies_its_threads():
    """A Fuser pickled to a spawn worker (multiprocessing) kept ``threads=1`` as an attribute
    only: the worker's torch ran on every core, the oversubscription ``threads`` avoids."""
    import pickle

    fuser = litefuse.Fuser("mean", threads=1)
    data = pickle.dumps(fuser)
    torch.set_num_threads(2)  # the worker's own count (conftest restores it)
    copy = pickle.loads(data)
    assert torch.get_num_threads() == 1 and copy.threads == 1
    x = np.full((16, 16), 0.5, np.float32)
    np.testing.assert_array_equal(copy.fuse_images(x, x), fuser.fuse_images(x, x))


def test_stretch_is_cddfuse_min_max_stretch_of_the_fused_luma(tmp_path):
    """METRICS.md: CDDFuse's test script stretches each fused image to 0..255 before saving, a
    protocol choice to be offered as an option, never applied silently."""
    from typer.testing import CliRunner

    from litefuse.api import Fuser
    from litefuse.cli import app
    from litefuse.demo import synthetic_pair
    from litefuse.io import read_image, save_image

    ir, vi = synthetic_pair(48, 64, seed=3)
    ir = 0.2 + 0.5 * ir  # a narrow range, as a dim scene gives
    for name in ("max", "aenetv2-ivif"):
        plain = Fuser(name).fuse_images(ir, vi.mean(-1))
        stretched = Fuser(name, stretch=True).fuse_images(ir, vi.mean(-1))
        expected = (plain - plain.min()) / (plain.max() - plain.min())
        assert plain.max() - plain.min() < 0.95 and np.abs(stretched - expected).max() < 1e-6
    flat = np.full((32, 32), 0.4, np.float32)
    assert np.allclose(Fuser("max", stretch=True).fuse_images(flat, flat), 0.4)  # a flat result is left as it is
    save_image(tmp_path / "ir.png", ir)
    save_image(tmp_path / "vi.png", vi)
    pair = ["fuse", "--ir", str(tmp_path / "ir.png"), "--vi", str(tmp_path / "vi.png"), "-m", "max", "--grey"]
    assert CliRunner().invoke(app, [*pair, "-o", str(tmp_path / "s.png"), "--stretch"]).exit_code == 0
    assert CliRunner().invoke(app, [*pair, "-o", str(tmp_path / "p.png")]).exit_code == 0
    s, p = read_image(tmp_path / "s.png"), read_image(tmp_path / "p.png")
    assert s.min() == 0 and s.max() == 1 and p.max() - p.min() < 0.95


def test_fuse_files_reads_the_trained_ir_norm_once_per_fuser(tmp_path, monkeypatch):
    """fuse_files asked the weights file for its trained --ir-norm on every call: a library user
    fusing pairs one by one paid a header read per pair (a ``last.pt``: a whole checkpoint load,
    more than the fusion of a small pair)."""
    import warnings

    from safetensors.torch import load_file, save_file

    import litefuse.api as api
    from litefuse.api import fuse_files
    from litefuse.io import save_image
    from litefuse.registry import get_model_info

    weights = tmp_path / "w.safetensors"
    save_file(load_file(str(get_model_info("aenetv2-ivif").weights_path)), str(weights),
              {"model": "aenetv2-ivif", "model_kwargs": "{}", "ir_norm": "4095"})
    rng = np.random.default_rng(0)
    save_image(tmp_path / "ir.png", rng.random((24, 32), dtype=np.float32))
    save_image(tmp_path / "vi.png", rng.random((24, 32), dtype=np.float32))
    fuser = litefuse.Fuser("aenetv2-ivif", weights=weights)
    reads = []
    real = api.weights_metadata
    monkeypatch.setattr(api, "weights_metadata", lambda path: reads.append(path) or real(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(3):
            fuse_files(tmp_path / "ir.png", tmp_path / "vi.png", tmp_path / f"{i}.png", fuser)
    assert len(reads) == 1
    assert sum("--ir-norm 4095" in str(w.message) for w in caught) == 3  # still said on each call


def test_fuse_files_scales_the_infrared_by_ir_norm_without_a_note_for_shipped_weights(tmp_path):
    """``fuse_files(..., ir_norm=4095)``: a 16-bit infrared is read as value / 4095 (12-bit data),
    the visible as its own range; a Fuser without a weights file says nothing about ir_norm."""
    from PIL import Image

    from litefuse.api import fuse_files

    ir = np.full((16, 16), 2000, np.uint16)
    ir[:8] = 4095
    vi = np.full((16, 16), 100, np.uint8)
    Image.fromarray(ir).save(tmp_path / "ir.png")
    Image.fromarray(vi).save(tmp_path / "vi.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fuse_files(tmp_path / "ir.png", tmp_path / "vi.png", tmp_path / "f.png",
                         litefuse.Fuser("max", threads=1), ir_norm=4095, bits=16)
    fused = np.asarray(Image.open(out)).astype(np.float64) / 65535
    np.testing.assert_allclose(fused[:8], 1.0, atol=1e-4)
    np.testing.assert_allclose(fused[8:], 2000 / 4095, atol=1e-4)


def test_fuse_luma_says_its_contract():
    fuser = litefuse.Fuser("aenetv2-ivif")
    grey = np.full((8, 8), 0.5, np.float32)
    with pytest.raises(InputError, match=r"one non-empty shape, got \(0, 5\) and \(0, 5\)"):
        fuser.fuse_luma(np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32))
    with pytest.raises(InputError, match=r"\(pair 1\), got \(8, 8\) and \(8, 9\)"):
        fuser.fuse_luma_batch([grey, grey], [grey, np.zeros((8, 9), np.float32)])
    with pytest.raises(InputError, match="2 images on one side but 1 on the other"):
        fuser.fuse_luma_batch([grey, grey], [grey])
    assert fuser.fuse_luma_batch([], []) == []
    assert fuser.fuse_luma(grey, grey).shape == (8, 8)
    # 0..255 planes came back saturated (99.9 % at 1.0) and NaN as NaN, without a word
    with pytest.raises(InputError, match=r"float arrays in \[0, 1\], got uint8 pixels"):
        fuser.fuse_luma((grey * 255).astype(np.uint8), grey)
    with pytest.raises(InputError, match=r"float arrays in \[0, 1\] \(pair 0\), got values 0\.\.255"):
        fuser.fuse_luma_batch([grey, grey], [np.linspace(0, 255, 64, dtype=np.float32).reshape(8, 8), grey])
    with pytest.raises(InputError, match="got NaN or infinity"):
        fuser.fuse_luma(grey, np.full((8, 8), np.nan, np.float32))


def test_tensors_without_data_are_input_errors():
    """A meta or sparse tensor raised torch's own NotImplementedError / TypeError from deep inside."""
    grey = np.zeros((16, 16), np.float32)
    for tensor, fragment in ((torch.zeros(16, 16, device="meta"), "meta"), (torch.zeros(16, 16).to_sparse(), "sparse_coo")):
        with pytest.raises(InputError, match=f"cannot read an image from this tensor .*{fragment}"):
            litefuse.fuse(tensor, grey, model="max")


def test_stretching_a_near_flat_result_is_said():
    """An all-dark pair fused to a 1-level image, min-max stretched, became full-range noise in silence."""
    from litefuse.io import OnceWarning

    dark = np.zeros((32, 32), np.uint8)
    dark[::2] = 1
    with pytest.warns(OnceWarning, match="a fused image spans 1 grey level; stretched to the full range"):
        out = litefuse.fuse(dark, np.zeros((32, 32), np.uint8), model=litefuse.Fuser("max", stretch=True))
    assert out.max() == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        litefuse.fuse(np.zeros((32, 32), np.uint8), np.full((32, 32), 200, np.uint8), model=litefuse.Fuser("max", stretch=True))
