"""Image reading/writing: formats, bit depths, channel handling, bad files, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from litefuse.colour import fuse_chroma, rgb_to_ycbcr, ycbcr_to_rgb
from litefuse.errors import InputError, OutputError
from litefuse.io import FLOAT_TOLERANCE, check_output_path, read_image, save_image


def _gradient(h: int = 21, w: int = 33) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_8bit_grey_roundtrip_exact(tmp_path, ext):
    arr = _gradient()
    path = tmp_path / f"g{ext}"
    Image.fromarray(arr).save(path)
    out = read_image(path)
    assert out.shape == arr.shape and out.dtype == np.float32
    np.testing.assert_array_equal(np.round(out * 255).astype(np.uint8), arr)


def test_jpeg_rgb_is_colour(tmp_path):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (16, 24, 3)
    assert abs(out[..., 0].mean() - 200 / 255) < 0.03


def test_16bit_png_and_tiff_normalised(tmp_path):
    arr = np.linspace(1000, 60000, 20 * 30).reshape(20, 30).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "r.png")
    tifffile.imwrite(tmp_path / "r.tif", arr)
    for name in ("r.png", "r.tif"):
        out = read_image(tmp_path / name)
        np.testing.assert_allclose(out, arr / 65535.0, atol=1e-6)
        mm = read_image(tmp_path / name, norm="minmax")
        assert mm.min() == 0.0 and mm.max() == 1.0


def test_rgba_drops_alpha_and_identical_channels_collapse(tmp_path):
    grey = _gradient()
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 7)], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.ndim == 2  # R = G = B after dropping alpha → grey
    np.testing.assert_array_equal(np.round(out * 255).astype(np.uint8), grey)


def test_three_channel_tiff_planar(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (3, 12, 14), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", rgb, photometric="rgb", planarconfig="separate")
    assert read_image(tmp_path / "p.tif").shape == (12, 14, 3)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("hello, not an image"), "not an image"),
        (lambda p: Image.fromarray(np.zeros((1, 1), np.uint8)).save(p), "1×1 pixels"),
    ],
)
def test_bad_files_name_the_file(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(InputError) as err:
        read_image(path)
    assert message in str(err.value) and "bad.png" in str(err.value)


def test_truncated_png_and_jpeg(tmp_path):
    arr = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for ext in (".png", ".jpg"):
        full = tmp_path / f"full{ext}"
        Image.fromarray(arr).save(full)
        cut = tmp_path / f"cut{ext}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(InputError) as err:
            read_image(cut)
        assert f"cut{ext}" in str(err.value)


def test_ycbcr_roundtrip_within_one_level():
    rgb = np.random.default_rng(2).random((50, 60, 3)).astype(np.float32)
    back = ycbcr_to_rgb(*rgb_to_ycbcr(rgb))
    assert np.abs(back - rgb).max() <= 1 / 255


def test_ycbcr_matches_spec_coefficients():
    y, cb, cr = rgb_to_ycbcr(np.array([[[1.0, 0.0, 0.0]]]))
    assert np.isclose(y, 0.299) and np.isclose(cr, 0.713 * 0.701 + 0.5) and np.isclose(cb, 0.564 * -0.299 + 0.5)


def test_save_is_atomic_and_refuses_inputs(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(_gradient()).save(src)
    before = src.read_bytes()
    with pytest.raises(OutputError, match="one of the inputs"):
        check_output_path(src, (src,), overwrite=True)
    assert src.read_bytes() == before
    out = save_image(tmp_path / "o" / "x.png", np.full((9, 9), 0.5, np.float32))
    assert out.is_file() and not list(out.parent.glob("*.tmp*"))
    with pytest.raises(OutputError, match="exists"):
        check_output_path(out)


def test_a_folder_or_a_broken_link_at_an_output_name_is_said_as_it_is(tmp_path):
    """A folder where the output goes is 'is a directory' (it said 'output exists; pass
    --overwrite', which then failed); a broken symlink counts as existing (it was written
    through to its target, or named the target in the error)."""
    (tmp_path / "x.png").mkdir()
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="is a directory"):
            check_output_path(tmp_path / "x.png", overwrite=overwrite)
    (tmp_path / "l.png").symlink_to(tmp_path / "gone" / "t.png")
    with pytest.raises(OutputError, match=r"l.png: output exists"):
        check_output_path(tmp_path / "l.png")


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through ``mkstemp`` (mode 0600); published files must be readable by
    others like any ``open()``-created file (0666 minus the umask)."""
    import os
    import stat

    from litefuse._files import atomic_write_text

    old = os.umask(0o022)
    try:
        png = save_image(tmp_path / "x.png", np.zeros((9, 9), np.float32))
        txt = tmp_path / "t.csv"
        atomic_write_text(txt, "a,b\n")
    finally:
        os.umask(old)
    for path in (png, txt):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, oct(path.stat().st_mode)
    assert txt.read_text() == "a,b\n"


def test_fsync_before_publishing_uses_a_writable_handle(tmp_path, monkeypatch):
    """Windows' fsync (FlushFileBuffers) fails with EBADF on a handle opened read-only: a training
    checkpoint (published with fsync) could never be saved there."""
    import fcntl
    import os

    from litefuse import _files

    real = os.fsync

    def windows_fsync(fd):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(9, "Bad file descriptor")
        real(fd)

    monkeypatch.setattr(_files.os, "fsync", windows_fsync)
    path = tmp_path / "ckpt.pt"
    with _files.temporary_beside(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"state")
        _files.publish(tmp, path, fsync=True)
    assert path.read_bytes() == b"state"


def test_outputs_with_names_near_the_length_limit_are_written(tmp_path):
    """From a folder QA pass: a 240-letter stem (a valid output name) failed with 'File name too
    long', the temporary file's name (dot, name, 8 random letters, .tmp.png) being longer."""
    image = np.zeros((16, 16), np.float32)
    for stem in ("x" * 251, "é" * 125 + "x"):  # 255 bytes with .png; a 2-byte letter at the cut
        path = save_image(tmp_path / f"{stem}.png", image)
        assert read_image(path).shape == (16, 16)
    assert sorted(p.name.startswith(".") for p in tmp_path.iterdir()) == [False, False]  # no temporary left


def test_save_into_a_file_path_fails_cleanly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        save_image(blocker / "x.png", np.zeros((9, 9), np.float32))


def test_api_accepts_paths_arrays_and_pil(tmp_path, demo_pair):
    import litefuse
    from litefuse.api import fuse

    ir, vi = demo_pair
    ir_u8 = (ir * 255).round().astype(np.uint8)
    vi_u8 = (vi * 255).round().astype(np.uint8)
    from_arrays = fuse(ir_u8, vi_u8, model="max")
    from_pil = fuse(Image.fromarray(ir_u8), Image.fromarray(vi_u8), model="max")
    p_ir, p_vi = save_image(tmp_path / "i.png", ir_u8), save_image(tmp_path / "v.png", vi_u8)
    from_paths = litefuse.fuse(p_ir, p_vi, model="max")
    assert from_arrays.shape == (240, 320, 3)
    np.testing.assert_array_equal(from_arrays, from_pil)
    np.testing.assert_array_equal(from_arrays, from_paths)
    grey = fuse(ir_u8.astype(np.uint16) * 257, vi_u8[..., 1], model="max")
    assert grey.shape == (240, 320)


def test_fuser_fuse_images_applies_the_input_contract_to_integer_arrays():
    """uint8 arrays are uint8 / 255 there too (raw 0..255 values saturated every network's output
    to 1.0); integers without a known range are refused with the file-style one-line error."""
    from litefuse.api import Fuser

    rng = np.random.default_rng(0)
    ir, vi = (rng.integers(0, 256, (40, 48), dtype=np.uint8) for _ in range(2))
    fuser = Fuser("aenetv2")
    got = fuser.fuse_images(ir, vi, grey=True)
    assert np.array_equal(got, fuser.fuse_images(ir / np.float32(255), vi / np.float32(255), grey=True))
    assert 0.05 < got.mean() < 0.95
    with pytest.raises(InputError, match="no known range.*ir_norm='minmax' or ir_norm=<peak>"):  # what fuse takes (it said norm=)
        fuser.fuse_images(ir.astype(np.int32), vi, grey=True)
    # big-endian 16-bit camera frames are uint16 too (refused as having "no known range")
    deep = rng.integers(0, 65536, (40, 48), dtype=np.uint16)
    assert np.array_equal(fuser.fuse_images(deep.astype(">u2"), vi, grey=True), fuser.fuse_images(deep, vi, grey=True))


def test_fuser_takes_torch_tensors_as_their_numpy_twins():
    """Tensors (H×W, H×W×3, C×H×W, 1×C×H×W; float in [0, 1], uint8, half precision) follow the
    input contract, and numpy arrays in torch's layouts are read the same way."""
    import torch

    import litefuse
    from litefuse.api import Fuser

    rng = np.random.default_rng(1)
    ir = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    vi = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    fuser = Fuser("aenetv2-ivif")
    want = fuser.fuse_images(ir, vi)
    assert want.shape == (40, 48, 3)
    for a, b in [(torch.from_numpy(ir), torch.from_numpy(vi)),
                 (torch.from_numpy(ir).float() / 255, torch.from_numpy(vi).float() / 255)]:
        np.testing.assert_allclose(fuser.fuse_images(a, b), want, atol=1e-6)
        np.testing.assert_allclose(litefuse.fuse(a, b), want, atol=1e-6)
    chw = torch.from_numpy(vi).permute(2, 0, 1)  # torch's layouts: C×H×W and a batch of one
    np.testing.assert_allclose(fuser.fuse_images(torch.from_numpy(ir)[None, None], chw[None]), want, atol=1e-6)
    np.testing.assert_allclose(litefuse.fuse(torch.from_numpy(ir)[None], chw), want, atol=1e-6)
    np.testing.assert_array_equal(fuser.fuse_images(ir[None], np.moveaxis(vi, -1, 0)), want)
    np.testing.assert_array_equal(litefuse.fuse(ir[None, None], np.moveaxis(vi, -1, 0)[None]), want)
    with pytest.raises(InputError, match=r"shape 2×40×48"):
        fuser.fuse_images(np.stack([ir, ir]), vi)  # two images are not one
    half = fuser.fuse_images(torch.from_numpy(ir).to(torch.bfloat16) / 255, torch.from_numpy(vi).float() / 255)
    assert np.abs(half - want).max() < 0.02  # the inputs rounded to bf16
    with pytest.raises(InputError, match=r"expected \[0, 1\]"):
        fuser.fuse_images(torch.from_numpy(ir).float(), torch.from_numpy(vi).float())  # 0..255 floats


def test_tiff_is_read_by_its_own_axes(tmp_path):
    grey = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100
    with tifffile.TiffWriter(tmp_path / "stack.tif") as tw:  # three grey frames: not an RGB image
        for k in range(3):
            tw.write(grey + k, photometric="minisblack")
    with pytest.raises(InputError, match=r"stack.tif.*multi-page TIFF holding 3 images"):
        read_image(tmp_path / "stack.tif")
    with tifffile.TiffWriter(tmp_path / "two.tif") as tw:  # two images of different sizes
        tw.write(grey, photometric="minisblack")
        tw.write(grey[:10, :10], photometric="minisblack")
    with pytest.raises(InputError, match="holding 2 images"):
        read_image(tmp_path / "two.tif")
    tifffile.imwrite(tmp_path / "one.tif", grey[None], photometric="minisblack")  # a stack of one is an image
    np.testing.assert_array_equal(read_image(tmp_path / "one.tif"), grey / np.float32(65535))
    # two samples: grey + alpha when the file says so, else refused
    ga = np.dstack([grey, np.full_like(grey, 65535)])
    tifffile.imwrite(tmp_path / "ga.tif", ga, photometric="minisblack", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(read_image(tmp_path / "ga.tif"), grey / np.float32(65535))
    tifffile.imwrite(tmp_path / "bands.tif", ga, photometric="minisblack", planarconfig="contig")
    with pytest.raises(InputError, match=r"bands.tif.*2 channels that are not grey \+ alpha"):
        read_image(tmp_path / "bands.tif")


def test_animated_png_and_gif_are_refused_not_cut_to_a_frame(tmp_path):
    frame = Image.fromarray(_gradient())
    frame.save(tmp_path / "a.png", save_all=True, append_images=[frame.rotate(90)])
    frame.save(tmp_path / "a.gif", save_all=True, append_images=[frame.rotate(90)])
    for name in ("a.png", "a.gif"):
        with pytest.raises(InputError, match=rf"{name}: animated (PNG|GIF) with 2 frames"):
            read_image(tmp_path / name)
    frame.save(tmp_path / "one.gif")
    assert read_image(tmp_path / "one.gif").shape == _gradient().shape


def test_a_sensor_peak_above_a_files_range_is_refused(tmp_path):
    """--ir-norm 4095 on an 8-bit infrared divided it by 4095: the fused image was the visible one."""
    from PIL import Image

    grey = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "ir8.png")
    with pytest.raises(InputError, match=r"ir8.png: 8-bit pixels cannot reach a peak of 4095 \(at most 255\)"):
        read_image(tmp_path / "ir8.png", norm=4095)
    np.testing.assert_allclose(read_image(tmp_path / "ir8.png", norm=255), grey / np.float32(255))


def test_real_world_files_decode_as_viewers_show_them(tmp_path):
    """From an I/O QA pass: each of these was read wrong without a word (or crashed)."""
    import png
    from PIL import Image

    rng = np.random.default_rng(0)
    # a phone photo stored landscape with EXIF orientation 6 (rotate 90° clockwise to view)
    stored = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    upright = read_image(tmp_path / "phone.png")
    assert upright.shape == (64, 48, 3)
    np.testing.assert_array_equal(upright, np.rot90(stored, -1) / np.float32(255))
    # 16-bit RGB PNG at full depth (Pillow cuts it to 8 bits)
    rgb16 = rng.integers(0, 65536, (20, 30, 3)).astype(np.uint16)
    with open(tmp_path / "rgb16.png", "wb") as fh:
        png.Writer(30, 20, greyscale=False, bitdepth=16).write(fh, rgb16.reshape(20, -1))
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png"), rgb16 / np.float32(65535))
    # TIFF: LZW without imagecodecs (Pillow reads it), white-is-zero, palette; CMYK refused
    grey16 = rng.integers(0, 65536, (20, 30)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(tmp_path / "lzw.tif"), grey16 / np.float32(65535))
    grey8 = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "white0.tif", 255 - grey8, photometric="miniswhite")
    np.testing.assert_array_equal(read_image(tmp_path / "white0.tif"), grey8 / np.float32(255))
    colour = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    pal = Image.fromarray(colour).quantize(16)
    pal.save(tmp_path / "pal.tif")
    np.testing.assert_allclose(read_image(tmp_path / "pal.tif"), np.asarray(pal.convert("RGB")) / np.float32(255), atol=1e-6)
    tifffile.imwrite(tmp_path / "cmyk.tif", rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), photometric="separated")
    with pytest.raises(InputError, match=r"cmyk.tif: CMYK \(separated\) TIFF"):
        read_image(tmp_path / "cmyk.tif")
    # a header claiming 20000×20000: one line naming the file, not Pillow's exception
    bomb = Image.new("L", (20000, 20000))
    bomb.save(tmp_path / "bomb.png")
    with pytest.raises(InputError, match=r"bomb.png: Image size \(400000000 pixels\).*decompression-bomb guard"):
        read_image(tmp_path / "bomb.png")


def test_pillow_images_are_read_in_the_modes_their_files_would_be():
    import litefuse
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    from litefuse.api import as_image

    hsv = Image.fromarray(rgb).convert("HSV")
    np.testing.assert_allclose(as_image(hsv), np.asarray(hsv.convert("RGB")) / np.float32(255))
    i32 = Image.fromarray((rgb[..., 0].astype(np.int32) * 257))  # mode "I": 16-bit data
    np.testing.assert_allclose(as_image(i32), rgb[..., 0] / np.float32(255), atol=1e-6)
    assert litefuse.fuse(i32, hsv, model="max").shape == (24, 32, 3)


def test_save_refuses_empty_and_misshapen_arrays_by_what_was_given(tmp_path):
    """An empty image is an OutputError (not Pillow's bare ValueError); a float C×H×W array is
    named as the floats it is, not as the uint8 it was converted to."""
    with pytest.raises(OutputError, match="empty"):
        save_image(tmp_path / "e.png", np.zeros((0, 0), np.float32))
    with pytest.raises(OutputError, match="float32 values and shape \\(3, 16, 16\\)"):
        save_image(tmp_path / "c.png", np.zeros((3, 16, 16), np.float32))
    assert not list(tmp_path.iterdir())


def test_a_failed_write_keeps_its_os_error_number(tmp_path, monkeypatch):
    """A folder run stops on a full disk by the error number save_image keeps (ENOSPC)."""
    import errno

    import litefuse.io

    def full(tmp, path, fsync=False, replace=True):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(litefuse.io, "publish", full)
    with pytest.raises(OutputError, match="cannot write \\(No space left on device\\)") as caught:
        save_image(tmp_path / "x.png", np.zeros((8, 8), np.float32))
    assert caught.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())


def test_non_finite_images_are_never_written(tmp_path):
    image = np.full((8, 8), 0.5, np.float32)
    image[2, 3] = np.nan
    with pytest.raises(OutputError, match="NaN or infinite"):
        save_image(tmp_path / "x.png", image)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("array", [np.zeros((8, 8), np.int64), np.zeros((3, 8, 8), np.uint8), np.zeros((8, 8, 2), np.float32)])
def test_save_image_refuses_arrays_it_cannot_write(tmp_path, array):
    with pytest.raises(OutputError, match="cannot write a"):
        save_image(tmp_path / "x.png", array)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, fmt", [("x.jpg", "JPEG"), ("x.bmp", "BMP")])
def test_save_image_names_the_depth_a_uint16_array_cannot_take(tmp_path, name, fmt):
    # was Pillow's "cannot write (cannot write mode I;16 as JPEG)"
    with pytest.raises(OutputError, match=rf"{name}: {fmt} stores 8-bit images, not 16-bit"):
        save_image(tmp_path / name, np.zeros((8, 8), np.uint16))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("scale, offset", [(255.0, 0.0), (1.0, -5.0), (1.01, 0.0)])
def test_save_image_refuses_floats_outside_the_unit_range(tmp_path, scale, offset):
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32).reshape(16, 16)
    with pytest.raises(OutputError, match=r"x.png: float image values span .* expected \[0, 1\]"):
        save_image(tmp_path / "x.png", ramp * scale + offset)
    assert not list(tmp_path.iterdir())
    save_image(tmp_path / "ok.png", ramp * (1 + FLOAT_TOLERANCE / 2))  # rounding is clipped, as on reading


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_tag_applied_as_viewers_show_it(tmp_path, orientation):
    """A TIFF's Orientation tag turns it upright as EXIF's does a JPEG (tifffile ignored it: a
    camera's rotated TIFF was read sideways, and no longer paired with the JPEG of the same shot)."""
    from PIL import ImageOps

    stored = np.random.default_rng(orientation).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "rotated.tif"
    tifffile.imwrite(path, stored, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im))  # Pillow, as viewers show the file
    np.testing.assert_array_equal(read_image(path), upright / np.float32(255))


def test_format_by_content_not_name(tmp_path):
    """A file is decoded as what it holds, whatever its suffix says: a PNG named .tif was refused
    ("not a TIFF file"), and 16-bit colour PNG / TIFF data under another suffix was cut to 8 bits."""
    import png

    rgb16 = np.random.default_rng(0).integers(0, 65536, (20, 30, 3)).astype(np.uint16)
    with open(tmp_path / "png16.jpg", "wb") as fh:
        png.Writer(30, 20, greyscale=False, bitdepth=16).write(fh, rgb16.reshape(20, -1))
    tifffile.imwrite(tmp_path / "tif16.png", rgb16, photometric="rgb")
    for name in ("png16.jpg", "tif16.png"):
        np.testing.assert_array_equal(read_image(tmp_path / name), rgb16 / np.float32(65535))
    grey = _gradient()
    Image.fromarray(grey).save(tmp_path / "png8.tif", format="PNG")
    np.testing.assert_array_equal(read_image(tmp_path / "png8.tif"), grey / np.float32(255))


def test_truncated_tiff_is_one_clear_error(tmp_path, caplog):
    """A TIFF cut before its directory (Pillow writes it last) was "unreadable TIFF (IndexError:
    list index out of range)", after a log line of tifffile's naming no file."""
    path = tmp_path / "cut.tif"
    Image.fromarray(_gradient()).save(path, compression="tiff_lzw")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match=r"cut.tif: truncated or corrupt TIFF \(no image in it\)$"):
        read_image(path)
    assert not [r for r in caplog.records if r.name == "tifffile"]


def test_tifffile_logs_outside_litefuse_are_kept(tmp_path, caplog):
    """The filter that drops tifffile's nameless lines while litefuse reads a file once dropped
    every tifffile log line of the whole process, a program's own reads included."""
    import tifffile

    path = tmp_path / "cut.tif"
    Image.fromarray(_gradient()).save(path, compression="tiff_lzw")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError):
        read_image(path)  # installs the filter
    with tifffile.TiffFile(str(path)) as tif:  # the program's own read, after litefuse's
        tif.series
    assert [r for r in caplog.records if r.name == "tifffile"]


def test_a_16_bit_file_holding_12_bits_is_noted_once(tmp_path, monkeypatch):
    """Raw 12-bit infrared in 16-bit files reads near-black (/ 65535): said, for the first file only."""
    import warnings

    from litefuse import io

    monkeypatch.setattr(io, "_NARROW_NOTED", [])
    ramp = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)  # 0..4095
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, ramp)
    Image.fromarray((ramp.astype(np.uint32) * 16).astype(np.uint16)).save(tmp_path / "full.png")  # 0..65520
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(tmp_path / "full.png")  # the 16-bit range used: nothing to say
        assert read_image(tmp_path / "a.tif", norm=4095).max() == 1.0  # the peak given: nothing to say
    with pytest.warns(io.OnceWarning, match=r"a\.tif: 16-bit image with values up to 4095 \(12-bit data\?\).*--ir-norm 4095"):
        assert read_image(tmp_path / "a.tif").max() == pytest.approx(4095 / 65535)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(tmp_path / "b.tif")  # said once
    monkeypatch.setattr(io, "_NARROW_NOTED", [])
    from litefuse.metrics import load_grey_u8

    with pytest.warns(io.OnceWarning, match=r"b\.tif: 16-bit image with values up to 4095"):  # scoring reads it so too
        assert load_grey_u8(tmp_path / "b.tif").max() == 16  # round(4095 / 257)


def test_a_failed_text_write_is_one_output_error(tmp_path, monkeypatch):
    """CSV, Markdown and JSON outputs (compare's report, bench --json, a run's config) on a full
    disk: an OutputError naming the file, keeping ENOSPC, and no temporary file left -- not an
    OSError the CLI reports as an internal error."""
    import errno

    import litefuse._files
    from litefuse._files import atomic_write_text

    def full(tmp, path, fsync=False):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(litefuse._files, "publish", full)
    with pytest.raises(OutputError, match="scores.csv: cannot write \\(No space left on device\\)") as caught:
        atomic_write_text(tmp_path / "scores.csv", "a,b\n")
    assert caught.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())


@pytest.mark.parametrize("bits, peak", [(8, 255), (16, 65535)])
def test_floats_are_written_rounded_to_the_nearest_level_of_the_full_range(tmp_path, bits, peak):
    """round(x·peak), not floor, and 1.0 is the top level (255 / 65535), not one short of it."""
    levels = np.array([0, 1, 100, peak // 2, peak - 1, peak], np.float64)
    x = np.tile(np.clip((levels + np.array([0, 0.6, 0.6, -0.4, 0.4, 0])) / peak, 0, 1), (8, 2)).astype(np.float32)
    path = save_image(tmp_path / "x.png", x, bits=bits)
    stored = np.asarray(Image.open(path))
    np.testing.assert_array_equal(stored.astype(np.int64), np.round(x.astype(np.float64) * peak).astype(np.int64))
    assert stored.max() == peak and stored[0, 1] == 2  # 1.6 rounds up


def test_the_smallest_image_read_is_min_side_square():
    from litefuse.io import MIN_SIDE, to_float

    assert to_float(np.zeros((MIN_SIDE, MIN_SIDE), np.uint8)).shape == (MIN_SIDE, MIN_SIDE)
    with pytest.raises(InputError, match="at least"):
        to_float(np.zeros((MIN_SIDE - 1, MIN_SIDE), np.uint8))


def test_colour_with_two_equal_channels_stays_colour():
    """Only R = G = B collapses to grey: R = G with another B is a colour image."""
    from litefuse.io import to_float

    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = rgb[..., 1] = 100
    rgb[..., 2] = 200
    out = to_float(rgb)
    assert out.shape == (8, 8, 3) and out[0, 0, 2] == pytest.approx(200 / 255)


def test_narrow_16_bit_data_is_noted_up_to_14_bits(monkeypatch, tmp_path):
    """The note covers data of at most 14 bits (peak < 2^14), 13- and 14-bit sensors included."""
    import warnings

    from litefuse import io

    for peak, noted in ((16383, True), (8191, True), (16384, False)):
        monkeypatch.setattr(io, "_NARROW_NOTED", [])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            io.note_narrow_bits(peak, tmp_path / "x.tif")
        assert bool(caught) == noted, peak


def test_ycbcr_to_rgb_clamps_out_of_gamut_values():
    """Y = 1 with full red chroma lies outside the RGB cube: R clamps to 1, G and B by the formulas."""
    import torch

    y, cb, cr = np.ones((2, 2)), np.full((2, 2), 0.5), np.ones((2, 2))
    expected = [1.0, 1.0 - 0.714 * 0.5, 1.0]
    np.testing.assert_allclose(ycbcr_to_rgb(y, cb, cr)[0, 0], expected, rtol=1e-12)
    t = ycbcr_to_rgb(torch.ones(2, 2), torch.full((2, 2), 0.5), torch.ones(2, 2))
    np.testing.assert_allclose(t[0, 0].numpy(), expected, rtol=1e-6)


def test_chroma_blend_weights_each_source_by_its_own_saturation():
    """(c1·|c1 − ½| + c2·|c2 − ½|) / (|c1 − ½| + |c2 − ½|): 0.7 and 0.4 blend to 0.6; a neutral source adds nothing."""
    import torch


    c1, c2 = np.array([[0.7, 0.9]]), np.array([[0.4, 0.5]])
    cb, cr = fuse_chroma(c1, c1, c2, c2)
    np.testing.assert_allclose(cb, [[0.6, 0.9]], rtol=1e-12)
    np.testing.assert_allclose(cr, [[0.6, 0.9]], rtol=1e-12)
    tcb, _ = fuse_chroma(*(torch.from_numpy(c) for c in (c1, c1, c2, c2)))
    np.testing.assert_allclose(tcb.numpy(), [[0.6, 0.9]], rtol=1e-12)


def test_rgb_to_ycbcr_fills_every_row_of_a_tall_image():
    """Images taller than a conversion block (257 and 513 rows) give the per-pixel BT.601
    values on every row, the last one included."""
    for rows in (257, 513):
        rgb = np.random.default_rng(rows).random((rows, 5, 3)).astype(np.float32)
        y, cb, cr = rgb_to_ycbcr(rgb)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        ey = 0.299 * r + 0.587 * g + 0.114 * b
        np.testing.assert_allclose(y, ey, atol=1e-6)
        np.testing.assert_allclose(cb, 0.564 * (b - ey) + 0.5, atol=1e-6)
        np.testing.assert_allclose(cr, 0.713 * (r - ey) + 0.5, atol=1e-6)


def test_two_neutral_chroma_planes_blend_to_neutral():
    """Where both sources are grey (chroma exactly 0.5) the blend is 0.5, numpy and torch alike,
    so a grey region of two colour sources stays grey."""
    import torch

    half = np.full((4, 6), 0.5, np.float32)
    col = half.copy()
    col[0, 0] = 0.8
    cb, cr = fuse_chroma(half, half, col, half)
    assert cb[0, 0] == pytest.approx(0.8) and np.all(cb.ravel()[1:] == 0.5) and np.all(cr == 0.5)
    tcb, tcr = fuse_chroma(*(torch.from_numpy(x) for x in (half, half, col, half)))
    np.testing.assert_array_equal(tcb.numpy(), cb)
    np.testing.assert_array_equal(tcr.numpy(), cr)


def test_a_uint16_array_or_pil_image_of_narrow_data_is_noted_as_a_file_is(monkeypatch):
    """A uint16 array (or a PIL 32-bit integer image) holding 8- or 12-bit data is divided by 65535 and
    fuses near-black: said once, as for a 16-bit file (arrays and PIL images were darkened in silence)."""
    from PIL import Image

    import litefuse
    from litefuse import io

    vi = np.zeros((64, 64), np.uint8)
    monkeypatch.setattr(io, "_NARROW_NOTED", [])
    with pytest.warns(io.OnceWarning, match=r"16-bit image with values up to 4095 \(12-bit data\?\) reads as at most 6% grey"):
        litefuse.fuse((np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16), vi, model="max")
    monkeypatch.setattr(io, "_NARROW_NOTED", [])
    image = Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 256).astype(np.int32))  # mode "I"
    with pytest.warns(io.OnceWarning, match=r"values up to 255 \(8-bit data\?\) reads as at most 0\.4% grey .*; for an 8-bit"):
        assert litefuse.fuse(image, vi, model="max").max() == pytest.approx(255 / 65535)


def test_a_saved_image_and_to_uint8_agree_on_every_pixel(tmp_path):
    """`save_image` rounded 255·x in the image's float32, `to_uint8` in float64: the fused mean of two
    8-bit images (exact halves) came out different on ~a quarter of its pixels, so scores of the
    saved file (EN 7.573) and of compare's conversion (7.645) differed. One rounding now, float64."""
    import litefuse
    from litefuse.metrics import to_uint8

    rng = np.random.default_rng(0)
    ir, vi = (rng.integers(0, 256, (64, 64), dtype=np.uint8) for _ in range(2))
    fused = litefuse.fuse(ir, vi, model="mean")
    assert fused.dtype == np.float32
    save_image(tmp_path / "m.png", fused)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "m.png")), to_uint8(fused))
    save_image(tmp_path / "m16.png", fused, bits=16)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "m16.png")).astype(np.uint16),
                          np.round(fused.astype(np.float64) * 65535).astype(np.uint16))
