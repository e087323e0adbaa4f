"""The bad-input corpus: every case a user met (issue 23), generated here, none committed.

Command-line cases run the real entry point (:func:`litefuse.cli.main`) in this process, so they
see exactly what a user sees: the exit code, one ``error:`` line, no traceback, and nothing
half-written or overwritten. API cases check the input contract of :mod:`litefuse.io`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import litefuse
from litefuse.demo import synthetic_pair
from litefuse.errors import InputError, ModelError, OptionError, OutputError
from litefuse.io import FLOAT_TOLERANCE, read_image, save_image, to_float


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``litefuse ARGS`` through :func:`litefuse.cli.main`; returns (exit code, stdout, stderr)."""
    from litefuse.cli import main

    argv = sys.argv
    sys.argv = ["litefuse", *args]
    try:
        with pytest.raises(SystemExit) as stop:
            main()
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def one_line_error(capsys, *args: str, fragments: tuple[str, ...] = (), code: int = 2) -> str:
    rc, out, err = cli(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip() and "━" not in line]
    assert rc == code, err + out
    assert "Traceback" not in err and "\x1b[" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def pair_set(root: Path, sizes: list[tuple[int, int]]) -> Path:
    """``root/{ir,vi}/p<i>.png``: one synthetic pair per size."""
    for i, size in enumerate(sizes):
        ir, vi = synthetic_pair(*size)
        save_image(root / "ir" / f"p{i}.png", ir)
        save_image(root / "vi" / f"p{i}.png", vi)
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def pair(tmp_path) -> tuple[Path, Path]:
    ir, vi = synthetic_pair(48, 64)
    return save_image(tmp_path / "in" / "ir.png", ir), save_image(tmp_path / "in" / "vi.png", vi)


@pytest.fixture()
def blocker(tmp_path) -> Path:
    """A regular file used as a parent folder: unwritable for every user, root included."""
    path = tmp_path / "blocker"
    path.write_text("a file, not a folder")
    return path


# -- the input contract (API) --------------------------------------------------------------------

def test_float_rounding_above_one_is_clipped_not_rescaled():
    ir, vi = synthetic_pair(48, 64)
    ir = ir / ir.max()
    ir[0, 0] = 1.0000001
    fused = litefuse.fuse(ir, vi, model="max", grey=True)
    expected = litefuse.fuse(np.clip(ir, 0, 1), vi, model="max", grey=True)
    np.testing.assert_array_equal(fused, expected)
    assert fused.max() > 0.9  # the infrared did not collapse to 1/255 of its range
    tol = 0.99 * FLOAT_TOLERANCE
    edge = np.linspace(-tol, 1 + tol, 64 * 48, dtype=np.float32).reshape(48, 64)
    assert to_float(edge).min() == 0.0 and to_float(edge).max() == 1.0


@pytest.mark.parametrize(
    "array, fragment",
    [
        (np.linspace(0, 1.2, 48 * 64).reshape(48, 64), "span [0, 1.2]"),
        (np.linspace(0, 255, 48 * 64).reshape(48, 64), "never rescaled"),
        (np.linspace(-0.1, 1, 48 * 64).reshape(48, 64), "expected [0, 1]"),
        (np.arange(48 * 64).reshape(48, 64).astype(np.int32) - 100, "int32 pixels"),
        (np.arange(48 * 64).reshape(48, 64).astype(np.int64) % 1001, "no known range"),
        (np.full((48, 64), np.nan, np.float32), "NaN"),
    ],
)
def test_out_of_contract_arrays_are_refused(array, fragment):
    _, vi = synthetic_pair(48, 64)
    with pytest.raises(InputError, match=None) as err:
        litefuse.fuse(array, vi, model="max")
    assert fragment in str(err.value) and "infrared" in str(err.value)


def test_wide_integers_with_an_explicit_scale():
    data = (np.arange(48 * 64).reshape(48, 64) % 1001).astype(np.int64)
    np.testing.assert_allclose(to_float(data, norm=1000.0), np.minimum(data / 1000.0, 1.0), atol=1e-7)
    np.testing.assert_allclose(to_float(data, norm="minmax"), data / 1000.0, atol=1e-7)
    assert to_float(np.array([[0, 65535]] * 8, np.uint16).repeat(4, 1)).max() == 1.0


@pytest.mark.parametrize("norm", ["bogus", 0, -3.0, float("nan"), True])
def test_unknown_norm_is_an_option_error(norm):
    ir, vi = synthetic_pair(48, 64)
    with pytest.raises(OptionError, match="norm"):
        litefuse.fuse(ir, vi, model="max", ir_norm=norm)


@pytest.mark.parametrize("kwargs, error", [({"task": "bogus"}, OptionError), ({"device": "gpu0"}, OptionError),
                                           ({"threads": 0}, OptionError)])
def test_unknown_options_are_litefuse_errors(kwargs, error):
    with pytest.raises(error):
        litefuse.Fuser("max", **kwargs)


def test_save_image_writes_the_format_its_suffix_names(tmp_path):
    img = synthetic_pair(48, 64)[1]
    for suffix, fmt in ((".jpg", "JPEG"), (".tif", "TIFF"), (".bmp", "BMP"), (".png", "PNG")):
        with Image.open(save_image(tmp_path / f"x{suffix}", img)) as im:
            assert im.format == fmt
    grey16 = save_image(tmp_path / "g16.tif", synthetic_pair(48, 64)[0], bits=16)
    assert read_image(grey16).dtype == np.float32 and np.asarray(Image.open(grey16)).dtype == np.uint16
    with pytest.raises(OutputError, match="gif"):
        save_image(tmp_path / "x.gif", img)
    with pytest.raises(OutputError, match="8-bit"):
        save_image(tmp_path / "x.jpg", img, bits=16)
    assert not (tmp_path / "x.gif").exists()


def test_two_colour_sources_fuse_as_an_ab_pair():
    _, vi = synthetic_pair(48, 64)
    other = np.ascontiguousarray(vi[:, ::-1])
    with pytest.raises(InputError, match="--a/--b"):
        litefuse.fuse(vi, other, model="max")
    fused = litefuse.fuse(vi, other, model="max", task="mef")
    assert fused.shape == (48, 64, 3) and 0.0 <= fused.min() and fused.max() <= 1.0


def test_grey_infrared_in_a_lossy_colour_format_is_read_as_grey_and_false_colour_is_refused(capsys, tmp_path):
    """A grey infrared frame saved as WebP (or JPEG by other encoders) decodes as RGB whose
    channels differ by a level or so: it was refused as "3 distinct colour channels". Channels
    within ``NEAR_GREY`` are compression noise: the frame fuses as its luminance, in the API, a
    pair and a folder; a false-colour one (channels 3+ levels apart) is still refused."""
    from litefuse.io import NEAR_GREY

    ir, vi = synthetic_pair(48, 64)
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    Image.fromarray(np.rint(ir * 255).astype(np.uint8)).save(tmp_path / "ir" / "p.webp", quality=80)
    vi = read_image(save_image(tmp_path / "vi" / "p.png", vi))
    stored = read_image(tmp_path / "ir" / "p.webp")
    spread = (stored.max(-1) - stored.min(-1)).max()
    assert stored.ndim == 3 and 0 < spread <= NEAR_GREY, "Pillow's WebP keeps a little chroma noise"
    y = 0.299 * stored[..., 0] + 0.587 * stored[..., 1] + 0.114 * stored[..., 2]
    expected = litefuse.fuse(y, vi, model="max")
    np.testing.assert_allclose(litefuse.fuse(tmp_path / "ir" / "p.webp", tmp_path / "vi" / "p.png", model="max"), expected, atol=1e-6)
    rc, _, err = cli(capsys, "fuse", "-m", "max", "--input", str(tmp_path), "-o", str(tmp_path / "out"))
    assert rc == 0, err
    np.testing.assert_allclose(read_image(tmp_path / "out" / "p.png"), expected, atol=0.5 / 255 + 1e-6)
    tinted = np.clip(stored + np.array([3.0, 0.0, -3.0]) / 255, 0, 1)  # a palette's 3 levels of colour
    with pytest.raises(InputError, match="3 distinct colour channels"):
        litefuse.fuse(tinted, vi, model="max")


def test_weights_cache_follows_the_file_not_the_path(tmp_path):
    from safetensors.torch import load_file, save_file

    from litefuse.registry import get_model_info

    ir, vi = synthetic_pair(48, 64)
    path = tmp_path / "w.safetensors"
    state = load_file(str(get_model_info("aenetv2").weights_path))
    save_file(state, str(path), metadata={"model": "aenetv2"})
    first = litefuse.fuse(ir, vi, weights=path, grey=True)
    save_file({k: v * 0.5 if v.is_floating_point() else v for k, v in state.items()}, str(path), metadata={"model": "aenetv2"})
    second = litefuse.fuse(ir, vi, weights=path, grey=True)
    assert np.abs(first - second).max() > 1e-3  # a retrained file at the same path is reloaded


# -- the command line ----------------------------------------------------------------------------

def test_unwritable_outputs_are_one_line_and_exit_2(capsys, tmp_path, pair, blocker):
    ir, vi = map(str, pair)
    before = snapshot(tmp_path / "in")
    target = str(blocker / "sub" / "x.png")
    one_line_error(capsys, "fuse", "-m", "max", "--ir", ir, "--vi", vi, "-o", target, fragments=("not a directory",))
    one_line_error(capsys, "fuse", "-m", "max", "--input", str(tmp_path / "set"), "-o", str(blocker / "out"),
                   fragments=("set",))  # no such folder: refused before any work
    (tmp_path / "set" / "ir").mkdir(parents=True)
    (tmp_path / "set" / "vi").mkdir()
    for i in range(3):
        save_image(tmp_path / "set" / "ir" / f"{i}.png", read_image(ir))
        save_image(tmp_path / "set" / "vi" / f"{i}.png", read_image(vi))
    line = one_line_error(capsys, "fuse", "-m", "max", "--input", str(tmp_path / "set"), "-o", str(blocker / "out"))
    assert "blocker" in line  # stops at once, not one skipped line per pair
    one_line_error(capsys, "fuse", "-m", "max", "--ir", str(tmp_path / "a.mp4"), "--vi", str(tmp_path / "b.mp4"),
                   "-o", str(blocker / "v.mp4"), fragments=("blocker",))
    one_line_error(capsys, "export", "aenetv2", "-o", str(blocker / "m.onnx"), fragments=("not a directory",))
    one_line_error(capsys, "compare", "-i", str(tmp_path / "set"), "-m", "max", "-o", str(blocker / "rep"),
                   fragments=("blocker",))
    one_line_error(capsys, "eval", "--ir", str(tmp_path / "set" / "ir"), "--vi", str(tmp_path / "set" / "vi"),
                   "--fused", str(tmp_path / "set" / "vi"), "--csv", str(blocker / "s.csv"), fragments=("blocker",))
    one_line_error(capsys, "demo", "-m", "max", "-o", str(blocker / "demo"), fragments=("not a directory",))
    assert snapshot(tmp_path / "in") == before
    assert not list(tmp_path.rglob(".*.tmp*"))


def test_empty_inputs_write_nothing(capsys, tmp_path):
    (tmp_path / "empty" / "ir").mkdir(parents=True)
    (tmp_path / "empty" / "vi").mkdir()
    one_line_error(capsys, "compare", "-i", str(tmp_path / "empty"), "-m", "max", "-o", str(tmp_path / "rep"),
                   fragments=("no image pairs",))
    one_line_error(capsys, "eval", "-i", str(tmp_path / "empty"), "-m", "max", "-o", str(tmp_path / "fused"),
                   fragments=("no image pairs",))
    one_line_error(capsys, "fuse", "-m", "max", "-i", str(tmp_path / "empty"), "-o", str(tmp_path / "out"),
                   fragments=("no image pairs",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_demo_never_overwrites_without_the_flag(capsys, tmp_path):
    out = tmp_path / "demo"
    rc, _, err = cli(capsys, "demo", "-m", "max", "-o", str(out))
    assert rc == 0, err
    (out / "demo_ir.png").write_bytes(b"mine")
    one_line_error(capsys, "demo", "-m", "max", "-o", str(out), fragments=("demo_ir.png", "--overwrite"))
    assert (out / "demo_ir.png").read_bytes() == b"mine"
    rc, _, err = cli(capsys, "demo", "-m", "max", "-o", str(out), "--overwrite")
    assert rc == 0 and read_image(out / "demo_ir.png").shape == (240, 320)


def test_colour_pair_from_the_command_line(capsys, tmp_path, pair):
    _, vi = pair
    other = save_image(tmp_path / "other.jpg", read_image(vi)[:, ::-1])
    one_line_error(capsys, "fuse", "-m", "max", "--ir", str(vi), "--vi", str(other), "-o", str(tmp_path / "x.png"),
                   fragments=("colour", "--a/--b"))
    rc, _, err = cli(capsys, "fuse", "-m", "max", "--a", str(vi), "--b", str(other), "-o", str(tmp_path / "ab.jpg"))
    assert rc == 0, err
    with Image.open(tmp_path / "ab.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    one_line_error(capsys, "fuse", "--a", str(vi), "--vi", str(other), "-o", str(tmp_path / "y.png"), fragments=("not both",))


def test_weights_files_errors_are_one_short_line(capsys, tmp_path, pair):
    ir, vi = map(str, pair)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(np.random.default_rng(0).bytes(3000))
    text = tmp_path / "text.pth"
    text.write_text("hello world\n")
    foreign = tmp_path / "foreign.pth"
    torch.save({"a": torch.zeros(3)}, foreign)
    pickled = tmp_path / "pickled.pt"  # garbage after a pickle opcode: torch's "please file an issue" note was a second line
    pickled.write_bytes(b"\x80\x04garbage-bytes-here")
    noname = tmp_path / "weights"  # no suffix: torch's IndexError was the message
    noname.write_text("root:x:0:0:root:/root:/bin/bash\n")
    for path, fragment in ((corrupt, "not a weights file"), (text, "not a weights file"), (noname, "not a weights file"),
                           (foreign, "missing"), (pickled, "not a PyTorch/safetensors")):
        line = one_line_error(capsys, "fuse", "-m", "aenetv2", "--weights", str(path), "--ir", ir, "--vi", vi,
                              "-o", str(tmp_path / "o.png"), fragments=(path.name, fragment))
        assert len(line) < 300, line
    from safetensors.torch import load_file

    from litefuse.registry import get_model_info

    shipped = get_model_info("densefuse").weights_path
    line = one_line_error(capsys, "fuse", "-m", "lwc-densefuse", "--weights", str(shipped), "--ir", ir, "--vi", vi,
                          "-o", str(tmp_path / "o.png"), fragments=("load it as densefuse (-m densefuse)",))
    assert len(line) < 300
    missing = tmp_path / "missing.safetensors"  # without -m: the missing file, not an unnamed model
    one_line_error(capsys, "fuse", "--weights", str(missing), "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"),
                   fragments=("missing.safetensors: weights file not found",))
    run = tmp_path / "run"  # a training run's folder given for its weights: the file inside is named
    run.mkdir()
    (run / "model.safetensors").write_bytes(shipped.read_bytes())
    one_line_error(capsys, "fuse", "-m", f"densefuse@{run}", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"),
                   fragments=(f"run: is a folder, not a weights file (a training run's is {run / 'model.safetensors'})",))
    # a cut-off file without -m: unreadable, said as such (it was "does not name its model; pass -m")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(shipped.read_bytes()[:5000])
    one_line_error(capsys, "fuse", "--weights", str(cut), "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"),
                   fragments=("cut.safetensors: cannot read weights (SafetensorError", "incomplete metadata"))
    checkpoint = tmp_path / "cut.pt"
    torch.save({"config": {"model": "densefuse"}, "model": load_file(str(shipped))}, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    for model in ((), ("-m", "densefuse")):
        one_line_error(capsys, "fuse", *model, "--weights", str(checkpoint), "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"),
                       fragments=("cut.pt: cannot read weights (corrupt or truncated file)",))
    rc, out, err = cli(capsys, "fuse", "--weights", str(shipped), "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"))
    assert rc == 0 and "densefuse" in out, err  # the file names its model: no -m needed
    assert not (tmp_path / "o.png").exists() or read_image(tmp_path / "o.png").shape[:2] == (48, 64)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("fuse", "--bogus"), "No such option"),
        (("fuse", "--threads", "0", "--ir", "a.png", "--vi", "b.png", "-o", "c.png"), "--threads"),
        (("fuse", "--ir-norm", "bogus", "--ir", "a.png", "--vi", "b.png", "-o", "c.png"), "--ir-norm"),
        (("compare", "-i", ".", "--metrics", "FMI"), "FMI"),
        (("nothing",), "No such command"),
    ],
)
def test_unknown_options_are_one_line(capsys, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    if "compare" in args:
        for sub in ("ir", "vi"):
            save_image(tmp_path / sub / "0.png", synthetic_pair(48, 64)[0])
    one_line_error(capsys, *args, fragments=(fragment,))
    assert not (tmp_path / "c.png").exists()


def test_threads_option_sets_torch_threads(capsys, tmp_path, pair):
    ir, vi = map(str, pair)
    before = torch.get_num_threads()
    try:
        rc, _, err = cli(capsys, "fuse", "-m", "max", "--threads", "1", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "t.png"))
        assert rc == 0, err
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)




def test_model_errors_are_litefuse_errors():
    with pytest.raises(ModelError, match="unknown model"):
        litefuse.Fuser("nope")


def test_eval_scores_only_what_it_fused_with_the_named_method(capsys, tmp_path):
    """Fused images left in --output by another method are skipped, not scored under --model's name."""
    pair_set(tmp_path / "set", [(40, 48), (44, 52)])
    out = tmp_path / "fused"
    assert cli(capsys, "fuse", "-m", "max", "-i", str(tmp_path / "set"), "-o", str(out))[0] == 0
    before = snapshot(out)
    rc, _, err = cli(capsys, "eval", "-i", str(tmp_path / "set"), "-m", "mean", "-o", str(out), "--metrics", "EN")
    assert rc == 2 and "output exists" in err and "nothing could be scored" in err, err
    assert snapshot(out) == before
    rc, stdout, _ = cli(capsys, "eval", "-i", str(tmp_path / "set"), "-m", "mean", "-o", str(out), "--metrics", "EN", "--overwrite")
    assert rc == 0 and "2 scored" in stdout + _ and "mean" in stdout


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_compare_limit_below_one_is_refused(capsys, tmp_path, pair, limit):
    from litefuse.compare import compare

    with pytest.raises(OptionError, match="at least 1"):
        compare([tmp_path], ["mean"], limit=int(limit))
    (tmp_path / "set" / "ir").mkdir(parents=True)
    (tmp_path / "set" / "vi").mkdir()
    one_line_error(capsys, "compare", "-i", str(tmp_path / "set"), "-m", "mean", "--limit", limit, "-o", str(tmp_path / "rep"),
                   fragments=("--limit",))
    assert not (tmp_path / "rep").exists()


def test_pair_into_a_new_folder_named_with_a_trailing_slash(capsys, tmp_path, pair):
    ir, vi = pair
    rc, _, err = cli(capsys, "fuse", "--ir", str(ir), "--vi", str(vi), "-m", "max", "-o", str(tmp_path / "new") + "/")
    assert rc == 0, err
    assert (tmp_path / "new" / "ir.png").is_file()


def test_folder_results_never_go_into_a_source_folder(capsys, tmp_path):
    ir, vi = synthetic_pair(40, 48)
    save_image(tmp_path / "set" / "ir" / "p.jpg", ir)
    save_image(tmp_path / "set" / "vi" / "p.jpg", vi)
    before = snapshot(tmp_path / "set")
    for sub in ("ir", "vi"):
        one_line_error(capsys, "fuse", "-m", "max", "-i", str(tmp_path / "set"), "-o", str(tmp_path / "set" / sub),
                       fragments=("source folder",))
    assert snapshot(tmp_path / "set") == before


def test_an_input_under_another_name_is_never_overwritten(capsys, tmp_path, pair):
    """A case-insensitive file system (macOS, Windows) gives a file several spellings (IR.png is
    ir.png); a hard link is the same on Linux: the output must not replace the input it names."""
    ir, vi = pair
    other = tmp_path / "IR.png"
    os.link(ir, other)
    before = ir.read_bytes()
    one_line_error(capsys, "fuse", "--ir", str(ir), "--vi", str(vi), "-m", "max", "-o", str(other), "--overwrite",
                   fragments=("one of the inputs",))
    assert ir.read_bytes() == before


def test_folder_results_never_go_into_a_source_folder_spelt_otherwise(capsys, tmp_path, monkeypatch):
    """``-o set/IR`` on a case-insensitive file system is the source folder ``set/ir``."""
    ir, vi = synthetic_pair(40, 48)
    save_image(tmp_path / "set" / "ir" / "p.jpg", ir)
    save_image(tmp_path / "set" / "vi" / "p.jpg", vi)
    before = snapshot(tmp_path / "set")
    monkeypatch.setattr(os.path, "samefile", lambda a, b: str(Path(a).resolve()).lower() == str(Path(b).resolve()).lower())
    for command in (("fuse", "-m", "max"), ("compare", "-m", "max", "--no-reference")):
        one_line_error(capsys, *command, "-i", str(tmp_path / "set"), "-o", str(tmp_path / "set" / "IR"),
                       fragments=("source folder",))
    assert snapshot(tmp_path / "set") == before


def test_bits_16_keeps_a_16_bit_source_s_precision(capsys, tmp_path):
    import tifffile

    ir8, vi8 = synthetic_pair(48, 64)
    ramp = np.linspace(0.2, 0.6, 48 * 64, dtype=np.float32).reshape(48, 64)  # 2^16 levels apart: 16-bit only
    ir = tmp_path / "ir.tif"
    tifffile.imwrite(ir, np.round(ramp * 65535).astype(np.uint16))
    vi_grey = save_image(tmp_path / "vi.png", vi8[..., 0] if vi8.ndim == 3 else vi8)
    vi_colour = save_image(tmp_path / "vic.png", np.dstack([vi8[..., 0] if vi8.ndim == 3 else vi8] * 3) * [1.0, 0.8, 0.6])
    rc, _, err = cli(capsys, "fuse", "-m", "max", "--ir", str(ir), "--vi", str(vi_grey), "-o", str(tmp_path / "o16.png"), "--bits", "16")
    assert rc == 0, err
    out = np.asarray(Image.open(tmp_path / "o16.png"))
    expected = np.round(np.maximum(ramp, read_image(vi_grey)) * 65535)
    assert out.dtype == np.uint16 and np.abs(out - expected).max() <= 1 and len(np.unique(out)) > 1000
    # colour: a 16-bit RGB TIFF; as PNG a one-line error and nothing written
    rc, _, err = cli(capsys, "fuse", "-m", "max", "--ir", str(ir), "--vi", str(vi_colour), "-o", str(tmp_path / "c16.tif"), "--bits", "16")
    assert rc == 0, err
    colour = tifffile.imread(tmp_path / "c16.tif")
    assert colour.dtype == np.uint16 and colour.shape == (48, 64, 3)
    one_line_error(capsys, "fuse", "-m", "max", "--ir", str(ir), "--vi", str(vi_colour), "-o", str(tmp_path / "c16.png"),
                   "--bits", "16", fragments=("c16.png", "TIFF only"))
    one_line_error(capsys, "fuse", "-m", "max", "--ir", str(ir), "--vi", str(vi_grey), "-o", str(tmp_path / "o.jpg"),
                   "--bits", "16", fragments=("o.jpg", "8-bit"))
    one_line_error(capsys, "fuse", "-m", "max", "--ir", str(ir), "--vi", str(vi_grey), "-o", str(tmp_path / "o.png"),
                   "--bits", "12", fragments=("--bits",))
    assert not any(p.name.startswith(("c16.png", "o.jpg", "o.png")) for p in tmp_path.iterdir())
    # a folder: 16-bit TIFFs, grey and colour alike
    for sub, src in (("ir", ir), ("vi", vi_colour)):
        (tmp_path / "set" / sub).mkdir(parents=True)
        (tmp_path / "set" / sub / f"p{src.suffix}").write_bytes(src.read_bytes())
    rc, _, err = cli(capsys, "fuse", "-m", "max", "-i", str(tmp_path / "set"), "-o", str(tmp_path / "out"), "--bits", "16")
    assert rc == 0, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["p.tif"]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "p.tif"), colour)


def test_a_network_used_outside_its_tasks_is_noted(capsys, tmp_path):
    with pytest.warns(UserWarning, match="densefuse is made for ivif pairs, not mff"):
        litefuse.Fuser("densefuse", task="mff")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        litefuse.Fuser("max", task="mff")  # classical fusers cover every task: no note
        litefuse.Fuser("densefuse")
    _, vi = synthetic_pair(48, 64)
    for sub in ("A", "B"):
        save_image(tmp_path / "set" / sub / "p.png", vi)
    rc, _, err = cli(capsys, "fuse", "-m", "densefuse", "-i", str(tmp_path / "set"), "-o", str(tmp_path / "out"))
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert rc == 0 and len(notes) == 1 and "not A/B:" in notes[0], err  # "ab" is no task a user can name
    assert (tmp_path / "out" / "p.png").exists()


def test_folder_options_given_for_one_pair_are_noted(capsys, pair, tmp_path):
    rc, _, err = cli(capsys, "fuse", "-m", "max", "--ir", str(pair[0]), "--vi", str(pair[1]), "-o", str(tmp_path / "o.png"),
                     "--batch-size", "4", "--compile")
    assert rc == 0 and "note: --batch-size and --compile apply to folders and videos" in err, err
    rc, _, err = cli(capsys, "fuse", "-m", "max", "--ir", str(pair[0]), "--vi", str(pair[1]), "-o", str(tmp_path / "p.png"))
    assert rc == 0 and "note:" not in err, err
    # network options given for a classical method: said, as bench's settings line says it
    rc, _, err = cli(capsys, "fuse", "-m", "max", "--ir", str(pair[0]), "--vi", str(pair[1]), "-o", str(tmp_path / "q.png"),
                     "--precision", "bf16")
    assert rc == 0 and "note: --precision bf16 applies to networks; max runs in float32, as it is" in err, err


def test_eval_counts_pairs_it_did_not_fuse_and_keeps_an_existing_csv(capsys, tmp_path):
    pair_set(tmp_path / "set", [(40, 48), (44, 52)])
    out = tmp_path / "fused"
    save_image(out / "p0.png", synthetic_pair(40, 48)[0])  # one output already there
    rc, stdout, err = cli(capsys, "eval", "-i", str(tmp_path / "set"), "-m", "max", "-o", str(out), "--metrics", "EN")
    assert rc == 1 and "not fused: " in err and "p0.png: output exists" in err and "1 scored, 1 skipped" in stdout, err + stdout
    # --csv: an existing file is replaced only with --overwrite
    csv = tmp_path / "scores.csv"
    csv.write_text("mine\n")
    args = ("eval", "--ir", str(tmp_path / "set" / "ir"), "--vi", str(tmp_path / "set" / "vi"), "--fused", str(out),
            "--metrics", "EN", "--csv", str(csv))
    one_line_error(capsys, *args, fragments=("scores.csv", "output exists", "--overwrite"))
    assert csv.read_text() == "mine\n"
    assert cli(capsys, *args, "--overwrite")[0] == 0 and csv.read_text().startswith("image,EN")


def test_eval_input_names_a_size_mismatch_without_an_option_it_lacks(capsys, tmp_path):
    """eval has no --resize-vi: a pair of two sizes is skipped without the hint fuse gives."""
    rng = np.random.default_rng(0)
    for sub, size in (("A", (40, 48)), ("B", (44, 48))):
        save_image(tmp_path / "set" / sub / "x.png", rng.random(size).astype(np.float32))
    rc, _, err = cli(capsys, "eval", "-i", str(tmp_path / "set"), "-m", "max", "-o", str(tmp_path / "f"), "--metrics", "EN")
    assert rc != 0 and "not fused: " in err and "size mismatch: 48×44 here but 48×40" in err, err
    assert "--resize-vi" not in err, err


def test_eval_reads_float_tiff_sources_by_the_input_contract(capsys, tmp_path):
    import tifffile

    ir, vi = synthetic_pair(40, 48)
    (tmp_path / "set" / "ir").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "set" / "ir" / "p.tif", ir.astype(np.float32))  # [0, 1] floats, as fuse reads them
    save_image(tmp_path / "set" / "vi" / "p.png", vi)
    rc, stdout, err = cli(capsys, "eval", "-i", str(tmp_path / "set"), "-m", "max", "-o", str(tmp_path / "f"), "--metrics", "EN")
    assert rc == 0 and "1 scored, 0 skipped" in stdout, err + stdout


@pytest.mark.parametrize("kwargs, match", [({"tile": -5}, "tile must be"), ({"tile": 4}, "tile must be"),
                                           ({"overlap": -1}, "overlap must be"), ({"bogus": 1}, "bogus")])
def test_fuser_options_are_checked(kwargs, match):
    with pytest.raises(OptionError, match=match):
        litefuse.Fuser("aenetv2", **kwargs)


def test_fuse_folder_checks_everything_before_creating_the_output(tmp_path):
    ir, vi = synthetic_pair(32, 32)
    save_image(tmp_path / "set" / "ir" / "p.png", ir)
    save_image(tmp_path / "set" / "vi" / "p.png", vi)
    with pytest.raises(OptionError, match="norm"):
        litefuse.fuse_folder(tmp_path / "set", tmp_path / "o1", "max", ir_norm="bogus")
    with pytest.raises(ModelError, match="unknown model"):
        litefuse.fuse_folder(tmp_path / "set", tmp_path / "o2", "bogus")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_integers_above_the_given_peak_name_the_peak():
    data = (np.arange(48 * 64).reshape(48, 64) % 4096).astype(np.int32)
    with pytest.raises(InputError, match=r"int32 pixels span 0..3071, outside 0..100 \(the peak given\)"):
        to_float(data, norm=100)


def test_a_folder_s_task_must_fit_its_pairs(capsys, tmp_path):
    ir, vi = synthetic_pair(32, 32)
    for a, b in (("ir", "vi"), ("A", "B")):
        save_image(tmp_path / a / a / "p.png", ir)
        save_image(tmp_path / a / b / "p.png", vi)
    one_line_error(capsys, "fuse", "-i", str(tmp_path / "ir"), "-o", str(tmp_path / "o1"), "--task", "mff",
                   fragments=("--task mff", "infrared/visible"))
    one_line_error(capsys, "fuse", "-i", str(tmp_path / "A"), "-o", str(tmp_path / "o2"), "--task", "ivif",
                   fragments=("--task ivif", "A/B pairs"))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    assert cli(capsys, "fuse", "-m", "max", "-i", str(tmp_path / "A"), "-o", str(tmp_path / "o3"), "--task", "mff")[0] == 0


def test_fuse_images_applies_the_float_contract(tmp_path):
    ir, vi = synthetic_pair(32, 40)
    fuser = litefuse.Fuser("max")
    with pytest.raises(InputError, match=r"float image values span \[23.*expected \[0, 1\]"):
        fuser.fuse_images(ir.astype(np.float32) * 255, vi.astype(np.float32))
    with pytest.raises(InputError, match=r"size mismatch: 40×30 in the second image but 40×32 for its partner \("):
        fuser.fuse_images(ir, vi[:30])
    np.testing.assert_array_equal(fuser.fuse_images(ir, vi), litefuse.fuse(ir, vi, model="max"))


def test_ir_norm_takes_a_peak_on_the_command_line(capsys, tmp_path):
    import tifffile

    ramp = np.linspace(0, 4095, 48 * 64).reshape(48, 64).astype(np.uint16)  # 12-bit data in a 16-bit file
    tifffile.imwrite(tmp_path / "ir.tif", ramp)
    save_image(tmp_path / "vi.png", np.zeros((48, 64), np.float32))
    rc, _, err = cli(capsys, "fuse", "-m", "max", "--ir", str(tmp_path / "ir.tif"), "--vi", str(tmp_path / "vi.png"),
                     "-o", str(tmp_path / "o.png"), "--ir-norm", "4095", "--grey")
    assert rc == 0, err
    out = np.asarray(Image.open(tmp_path / "o.png"))
    np.testing.assert_allclose(out, np.round(ramp / 4095 * 255), atol=1)
    for bad in ("0", "-3", "nan", "bright"):
        one_line_error(capsys, "fuse", "-m", "max", "--ir", str(tmp_path / "ir.tif"), "--vi", str(tmp_path / "vi.png"),
                       "-o", str(tmp_path / "p.png"), "--ir-norm", bad, fragments=(f"--ir-norm {bad}",))


def test_a_broken_link_in_a_pair_folder_is_named(capsys, tmp_path):
    ir, vi = synthetic_pair(32, 32)
    save_image(tmp_path / "set" / "ir" / "a.png", ir)
    save_image(tmp_path / "set" / "vi" / "a.png", vi)
    save_image(tmp_path / "set" / "vi" / "b.png", vi)
    (tmp_path / "set" / "ir" / "b.png").symlink_to(tmp_path / "nowhere.png")
    rc, _, err = cli(capsys, "fuse", "-m", "max", "-i", str(tmp_path / "set"), "-o", str(tmp_path / "out"))
    assert rc == 1 and f"skipped: {tmp_path / 'set' / 'ir' / 'b.png'}: broken link" in err, err


def test_api_arguments_a_loaded_fuser_cannot_take_are_refused():
    ir, vi = synthetic_pair(32, 32)
    fuser = litefuse.Fuser("max")
    with pytest.raises(OptionError, match="give them to Fuser"):
        fuser(ir, vi, weights="other.safetensors")
    with pytest.raises(OptionError, match="give them to Fuser"):
        litefuse.fuse(ir, vi, model=fuser, device="cuda")
    with pytest.raises(OptionError, match=r"size must be \(H, W\)"):
        litefuse.benchmark(["max"], size=(640,))
    report = litefuse.benchmark("max", size=(16, 16), rounds=1, warmup=0)  # one name, not its letters
    assert "max" in report.markdown()


def test_method_specs_take_labels_and_weights_paths_with_equals_signs(tmp_path):
    from safetensors.torch import save_file

    from litefuse.api import Fuser, MethodSpec

    parse_method = Fuser.from_spec
    run = tmp_path / "lr=1e-4"
    run.mkdir()
    save_file(litefuse.load_model("aenetv2").state_dict(), str(run / "model.safetensors"))
    assert parse_method(f"aenetv2@{run / 'model.safetensors'}").label == "aenetv2@lr=1e-4"
    assert parse_method(f"mine=aenetv2@{run / 'model.safetensors'}").label == "mine"
    assert parse_method("max").label == "max"
    with pytest.raises(OptionError, match="give \\[label=\\]name"):
        parse_method("mine=@x.safetensors")
    assert MethodSpec.parse(" a = densefuse @ runs/lr=1e-4/last.pt") == MethodSpec("a", "densefuse", "runs/lr=1e-4/last.pt")
    assert MethodSpec.parse("densefuse@runs/lr=1e-4/last.pt").label == "densefuse@lr=1e-4"
    assert MethodSpec.parse("densefuse@w/ep3.safetensors").label == "densefuse@ep3"


def test_eval_fuses_with_given_weights(capsys, tmp_path):
    from litefuse.registry import get_model_info

    ir, vi = synthetic_pair(40, 48)
    save_image(tmp_path / "set" / "ir" / "p.png", ir)
    save_image(tmp_path / "set" / "vi" / "p.png", vi)
    shipped = get_model_info("aenetv2").weights_path
    rc, stdout, err = cli(capsys, "eval", "-i", str(tmp_path / "set"), "-m", f"ship=aenetv2@{shipped}", "--metrics", "EN",
                          "-o", str(tmp_path / "f"))
    assert rc == 0 and "ship" in stdout and "1 scored" in stdout, err + stdout
    np.testing.assert_allclose(read_image(tmp_path / "f" / "p.png"), litefuse.fuse(ir, vi, model="aenetv2"), atol=2 / 255)


def test_deployment_options_are_checked_first_and_named(capsys, tmp_path):
    """From a deployment QA pass: each was a traceback, a misleading message or silently ignored."""
    from litefuse.export import export_onnx

    ir, vi = tmp_path / "ir.png", tmp_path / "vi.png"
    for path, img in zip((ir, vi), synthetic_pair(32, 40)):
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    one_line_error(capsys, "fuse", "--ir", str(ir), "--vi", str(vi), "-o", "", fragments=("--output is empty",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ir.png", "vi.png"]
    one_line_error(capsys, "bench", "--size", "abc", fragments=("expected WxH (e.g. 640x480)",))
    one_line_error(capsys, "fuse", "--ir", str(ir), "--vi", str(vi), "-o", str(tmp_path / "f.png"), "--weights", str(tmp_path),
                   fragments=("is a folder, not a weights file",))
    (tmp_path / "x.onnx").write_bytes(b"old")
    for kwargs, match in (({"size": "64x48"}, r"size must be \(H, W\)"), ({"size": (48.5, 64)}, r"size must be \(H, W\)"),
                          ({"opset": 99}, "newest ONNX opset")):
        with pytest.raises(OptionError, match=match):  # before "output exists"
            export_onnx("aenetv2", tmp_path / "x.onnx", **kwargs)
    with pytest.raises(OptionError, match="no methods given"):
        litefuse.benchmark([])
    with pytest.raises(OptionError, match="compile='nosuchbackend'"):
        litefuse.Fuser("max", compile="nosuchbackend")


def _unlistable(monkeypatch, *folders: Path) -> None:
    """``Path.iterdir`` of ``folders`` raises as a folder without read permission does (for root too)."""
    listing = Path.iterdir

    def iterdir(self):
        if self in folders:
            raise PermissionError(13, "Permission denied")
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)


def test_a_source_folder_that_cannot_be_listed_is_one_line_naming_it(capsys, tmp_path, monkeypatch):
    """An unreadable vi/ of a pair folder: `error: .../vi: cannot read the folder (...)`, exit 2,
    nothing written (it was an internal error, exit 3, from the listing's PermissionError)."""
    data = pair_set(tmp_path / "data", [(32, 40)])
    _unlistable(monkeypatch, data / "vi")
    for command in ("fuse", "compare"):
        one_line_error(capsys, command, "-i", str(data), "-o", str(tmp_path / command), "-m", "max",
                       fragments=(f"{data / 'vi'}: cannot read the folder (Permission denied)",))
        assert not (tmp_path / command).exists() or not any((tmp_path / command).iterdir())


def test_a_set_below_a_parent_that_cannot_be_listed_is_named_not_dropped(capsys, tmp_path, monkeypatch):
    """A parent of two sets, one unreadable: the other is fused and a note names the unreadable one
    (it vanished without a word); both unreadable: the notes, then the error."""
    parent = tmp_path / "parent"
    pair_set(parent / "S1", [(32, 40)])
    pair_set(parent / "S2", [(32, 40)])
    _unlistable(monkeypatch, parent / "S1")
    rc, out, err = cli(capsys, "fuse", "-i", str(parent), "-o", str(tmp_path / "out"), "-m", "max")
    assert rc == 0 and (tmp_path / "out" / "S2" / "p0.png").is_file() and not (tmp_path / "out" / "S1").exists(), err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: {parent / 'S1'}: cannot read the folder (Permission denied); not searched for pairs"], err
    _unlistable(monkeypatch, parent / "S1", parent / "S2")
    rc, out, err = cli(capsys, "fuse", "-i", str(parent), "-o", str(tmp_path / "out2"), "-m", "max")
    assert rc == 2 and f"{parent / 'S2'}: cannot read the folder" in err and "Traceback" not in err, err


def test_a_folder_with_files_but_no_pairs_names_the_first_unpaired_file_of_each_side(capsys, tmp_path):
    """`IR_000.png` beside `VIS_000.png` (names that differ): the one line names a file of each side
    and why, so the mismatch shows without a skipped list (it said only "6 unpaired ... files")."""
    for i in range(3):
        ir, vi = synthetic_pair(32, 40)
        save_image(tmp_path / "set" / "ir" / f"IR_{i:03d}.png", ir)
        save_image(tmp_path / "set" / "vi" / f"VIS_{i:03d}.png", vi)
    detail = "(6 unpaired or unreadable files, e.g. ir/IR_000.png: no partner in vi/; vi/VIS_000.png: no partner in ir/)"
    for command in ("fuse", "compare"):
        one_line_error(capsys, command, "-i", str(tmp_path / "set"), "-o", str(tmp_path / command), "-m", "max",
                       fragments=("no image pairs found", detail))
    one_line_error(capsys, "train", "-m", "aenetv2", "--data", str(tmp_path / "set"), "-o", str(tmp_path / "run"),
                   fragments=("no image pairs found", detail))


def test_an_empty_model_name_and_a_flag_given_a_value_are_one_line(capsys, tmp_path, pair):
    """`-m ""` (an empty shell variable) fused with the default method in silence; `--overwrite=false`
    pointed to `litefuse --help` rather than the command's own."""
    ir, vi = map(str, pair)
    one_line_error(capsys, "fuse", "-m", "", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"),
                   fragments=("--model is empty",))
    one_line_error(capsys, "fuse", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"), "--overwrite=false",
                   fragments=("'--overwrite' does not take a value", "(see: litefuse fuse --help)"))
    assert not (tmp_path / "o.png").exists()


def test_skip_existing_keeps_a_single_pairs_output_and_says_so(capsys, tmp_path, pair):
    """--skip-existing on one pair whose output exists: kept, said, exit 0 (it was 'exists; pass
    --overwrite', exit 2, though the option says to leave outputs already there)."""
    ir, vi = map(str, pair)
    out = tmp_path / "o.png"
    out.write_bytes(b"an earlier result")
    rc, stdout, err = cli(capsys, "fuse", "-m", "max", "--ir", ir, "--vi", vi, "-o", str(out), "--skip-existing")
    assert rc == 0 and f"{out}: already there, kept (--skip-existing)" in stdout and not err.strip(), (stdout, err)
    assert out.read_bytes() == b"an earlier result"
    rc, stdout, err = cli(capsys, "fuse", "-m", "max", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "new.png"), "--skip-existing")
    assert rc == 0 and read_image(tmp_path / "new.png").shape[:2] == (48, 64), err


def test_a_size_mismatch_made_by_an_orientation_tag_says_so(capsys, tmp_path):
    """A phone photo stored landscape with an EXIF quarter-turn tag beside an upright infrared image:
    read upright, its sides swap; the error names the tag rather than suggesting --resize-vi, which
    would squash the picture. Sides swapped without a tag: the usual message."""
    vi = Image.new("RGB", (64, 48), (10, 200, 30))
    exif = vi.getexif()
    exif[0x0112] = 6
    vi.save(tmp_path / "vi.jpg", exif=exif)
    Image.new("L", (64, 48), 100).save(tmp_path / "ir.png")
    args = ("fuse", "-m", "max", "--vi", str(tmp_path / "vi.jpg"), "-o", str(tmp_path / "o.png"))
    one_line_error(capsys, *args, "--ir", str(tmp_path / "ir.png"),
                   fragments=("size mismatch: 48×64 here but 64×48", "vi.jpg is turned a quarter by an orientation tag (EXIF)"))
    Image.new("RGB", (48, 64), (10, 200, 30)).save(tmp_path / "vi_plain.jpg")
    line = one_line_error(capsys, "fuse", "-m", "max", "--vi", str(tmp_path / "vi_plain.jpg"), "--ir", str(tmp_path / "ir.png"),
                          "-o", str(tmp_path / "o.png"), fragments=("size mismatch", "--resize-vi"))
    assert "orientation" not in line
    assert not (tmp_path / "o.png").exists()


def test_a_second_method_for_a_one_method_command_is_said(capsys, tmp_path, pair):
    """`fuse -m gff -m max` fused with max and dropped gff without a word (eval --input and export alike)."""
    ir, vi = map(str, pair)
    one_line_error(capsys, "fuse", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"), "-m", "gff", "-m", "max",
                   fragments=("-m names 2 methods (gff, max); fuse takes one",))
    one_line_error(capsys, "export", "-m", "aenetv2", "--method", "densefuse", "-o", str(tmp_path / "o.onnx"),
                   fragments=("-m names 2 methods (aenetv2, densefuse)",))
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.onnx").exists()
    rc, out, err = cli(capsys, "fuse", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"), "-m", "max", "-m", "max")
    assert rc == 0 and "fused (max)" in out, err  # the same one twice: that one


@pytest.mark.parametrize("name", ["fused.png", "fused.MP4"])
def test_a_folder_run_into_a_file_name_is_one_error_and_writes_nothing(capsys, tmp_path, name):
    """``fuse -i FOLDER -o fused.png`` made a folder named fused.png; a folder of that name that
    exists is still taken (a rerun)."""
    src = pair_set(tmp_path / "set", [(40, 48)])
    one_line_error(capsys, "fuse", "-i", str(src), "-o", str(tmp_path / name), "-m", "max",
                   fragments=(name, "names a file, but a folder is written here"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    with pytest.raises(OutputError, match="names a file"):
        litefuse.fuse_folder(src, tmp_path / name, "max")
    (tmp_path / name).mkdir()
    assert [p.name for p in litefuse.fuse_folder(src, tmp_path / name, "max").fused] == ["p0.png"]


@pytest.mark.parametrize("option, args", [
    ("--output", ("compare", "-i", "{set}", "-o", "")),
    ("--output", ("eval", "-i", "{set}", "-m", "max", "--output", "")),
    ("--output", ("demo", "-o", "")),
    ("--json", ("bench", "-m", "max", "--size", "64x64", "--json=")),
    ("--ir", ("fuse", "--ir", "", "--vi", "{set}/vi/p0.png", "-o", "{tmp}/x.png")),
])
def test_an_empty_option_value_is_one_error_and_writes_nothing(capsys, tmp_path, monkeypatch, option, args):
    """``compare -o ""`` and ``eval -o ""`` wrote their reports into the current folder (typer
    reads an empty path as ``.``); ``demo -o ""`` its images."""
    src = pair_set(tmp_path / "set", [(40, 48)])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = tuple(a.format(set=src, tmp=tmp_path) for a in args)
    one_line_error(capsys, *args, fragments=(f"error: {option} is empty", f"litefuse {args[0]} --help"))
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["set", "work"]


def test_an_unknown_option_is_not_answered_with_a_hidden_alias(capsys):
    """``train --bogus`` suggested ``--out`` (a hidden alias of --output kept for old scripts)."""
    line = one_line_error(capsys, "train", "lwc-densefuse", "--bogus", fragments=("No such option: --bogus",))
    assert "--out" not in line and "Possible options" not in line, line
    line = one_line_error(capsys, "train", "lwc-densefuse", "--outp", fragments=("Possible options: --output",))
    assert "--out," not in line and "--out)" not in line, line


def test_an_image_given_as_weights_is_named_as_not_weights(capsys, tmp_path, pair):
    """``--weights photo.png`` without -m said the file "does not name its model; pass -m", as if
    it were weights of an unknown network."""
    ir, vi = map(str, pair)
    one_line_error(capsys, "fuse", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"), "--weights", ir,
                   fragments=(f"{ir}: not a weights file",))
    torch.save({"w": torch.zeros(2)}, tmp_path / "plain.pt")  # weights, but of no named model
    one_line_error(capsys, "fuse", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"), "--weights", str(tmp_path / "plain.pt"),
                   fragments=("does not name its model; pass the model (-m NAME)",))
    assert not (tmp_path / "o.png").exists()


def test_a_bad_choice_and_a_device_file_as_weights_are_plain_lines(capsys, tmp_path, pair):
    """``--task foo`` carried pydantic's "Value error," into the line; ``--weights /dev/null`` said
    "weights file not found" of a file that exists."""
    ir, vi = map(str, pair)
    line = one_line_error(capsys, "fuse", "--ir", ir, "--vi", vi, "-o", str(tmp_path / "o.png"), "--task", "foo",
                          fragments=("Invalid value for '--task': 'foo' is not one of",))
    assert "Value error" not in line
    if Path("/dev/null").exists():
        one_line_error(capsys, "fuse", "-m", "aenetv2-ivif", "--weights", "/dev/null", "--ir", ir, "--vi", vi,
                       "-o", str(tmp_path / "o.png"), fragments=("/dev/null: not a regular file",))
    assert not (tmp_path / "o.png").exists()


def test_narrow_16_bit_and_no_range_hints_say_what_an_ab_source_takes(monkeypatch):
    """A 12-bit A/B scan was told to use --ir-norm, which A/B pairs refuse; so was an int32 A/B array."""
    import warnings

    from litefuse import io

    monkeypatch.setattr(io, "_NARROW_NOTED", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        to_float(np.full((16, 16), 4095, np.uint16), source="scan.tif")
    assert any("an A/B source (a 12-bit scan) to the full range before fusing: they take no --ir-norm" in str(w.message)
               for w in caught), [str(w.message) for w in caught]
    with pytest.raises(InputError, match="a visible or A/B source: convert or scale it first"):
        to_float(np.full((16, 16), 7, np.int32), source="a")
