"""litefuse.metrics against the validation pack (../shared/reference/metrics) and behaviour checks.

The pack tests skip when the shared folder is absent (set LITEFUSE_SHARED to point elsewhere).
Tolerances are those of METRICS.md §6; a miss is a definition error, never a reason to widen them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from litefuse.errors import InputError
from litefuse.metrics import (
    CORE_METRICS, DEFAULT_METRICS, METRICS, evaluate, grey_from_rgb, load_grey_u8, to_uint8,
)
from litefuse.metrics import information, structural

from conftest import SHARED

VALUES = SHARED / "reference" / "metrics" / "values.json"

# pack source → (litefuse convention, default rtol, per-metric rtol)
SOURCES = {
    "cddfuse_evaluator": ("cddfuse", 1e-6, {"SSIM": 1e-12, "EN": 1e-12, "MI": 1e-12, "VIF": 1e-12}),  # SSIM in float32, as the reference
    "octave_tang": ("tang", 1e-9, {}),
    "octave_vifb": ("vifb", 1e-9, {}),
    "octave_liu": ("liu", 1e-9, {}),
}


@functools.lru_cache(maxsize=1)
def _load_pack() -> dict | None:
    return json.loads(VALUES.read_text()) if VALUES.is_file() else None


def _triple_names() -> list[str]:
    pack = _load_pack()
    return list(pack["triples"]) if pack else ["(no pack)"]


@pytest.fixture(scope="module")
def pack() -> dict:
    data = _load_pack()
    if data is None:
        pytest.skip(f"metric validation pack not found at {VALUES} (set LITEFUSE_SHARED)")
    return data


@functools.lru_cache(maxsize=None)
def _triple_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    files = _load_pack()["triples"][name]["files"]
    return tuple(load_grey_u8(SHARED / files[k]) for k in ("ir_grey", "vi_grey", "fused"))


def _sha(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("triple", _triple_names())
def test_pack_values(pack: dict, triple: str, source: str) -> None:
    convention, rtol, special = SOURCES[source]
    ref = pack["triples"][triple]["metrics"][source]
    mine = evaluate(*_triple_arrays(triple), metrics=list(ref), convention=convention)
    misses = []
    for name, expected in ref.items():
        try:
            np.testing.assert_allclose(mine[name], expected, rtol=special.get(name, rtol), atol=0)
        except AssertionError:
            misses.append(f"{name}: {mine[name]!r} vs {expected!r} (rtol {special.get(name, rtol):g})")
    assert not misses, f"{triple} [{convention}]: " + "; ".join(misses)


@pytest.mark.parametrize("triple", _triple_names())
def test_pack_pixels(pack: dict, triple: str) -> None:
    """Our loader reproduces the scored grey arrays from the original data files (grey rule)."""
    t = pack["triples"][triple]
    for role in ("ir", "vi"):
        assert _sha(load_grey_u8(SHARED / t["files"][role])) == t["pixel_sha256"][role], f"{role}: {t['files'][role]}"
    a, b, f = _triple_arrays(triple)
    assert (_sha(a), _sha(b), _sha(f)) == tuple(t["pixel_sha256"][k] for k in ("ir", "vi", "fused"))


# ---------------------------------------------------------------- behaviour (no pack needed)


def _smooth_image(seed: int, shape=(64, 80), sigma: float = 2.0) -> np.ndarray:
    """A textured uint8 image spanning most of 0..255."""
    x = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma)
    x = (x - x.min()) / (x.max() - x.min())
    return np.round(10 + 235 * x).astype(np.uint8)


@pytest.fixture(scope="module")
def triple() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = _smooth_image(1), _smooth_image(2)
    return a, b, ((a.astype(np.uint16) + b + 1) // 2).astype(np.uint8)


@pytest.mark.parametrize("convention, expected", [("cddfuse", 2.0), ("vifb", 2.0), ("tang", 1.0)])
def test_ssim_of_identical_images(convention: str, expected: float) -> None:
    x = _smooth_image(3)
    assert evaluate(x, x, x, ["SSIM"], convention)["SSIM"] == pytest.approx(expected, rel=1e-12, abs=0)


def test_ssim_of_different_images_is_lower(triple) -> None:
    a, b, f = triple
    assert evaluate(a, b, f, ["SSIM"])["SSIM"] < 1.99


def test_entropy_of_constant_image_is_zero() -> None:
    const = np.full((32, 32), 77, np.uint8)
    assert evaluate(const, const, const, ["EN"])["EN"] == 0.0
    every_level = np.arange(256, dtype=np.uint8).reshape(16, 16).repeat(2, 0).repeat(2, 1)  # each level 4 times
    assert evaluate(const, const, every_level, ["EN"])["EN"] == pytest.approx(8.0, rel=1e-12)


def test_vif_flat_source_convention() -> None:
    flat, x = np.full((64, 64), 100, np.uint8), _smooth_image(4, (64, 64))
    # 1.0 for the flat source + vifp(x, x), which is 1 − O(1e-11) because of the 1e-10 regulariser in g
    assert evaluate(flat, x, x, ["VIF"], "cddfuse")["VIF"] == pytest.approx(2.0, rel=1e-9)
    assert np.isnan(evaluate(flat, x, x, ["VIF"], "tang")["VIF"])


def test_float_input_rejected_with_clear_message(triple) -> None:
    a, b, f = triple
    with pytest.raises(InputError, match=r"fused: float values are not integers 0\.\.255.*to_uint8"):
        evaluate(a, b, f / 255.0)
    # explicit conversion is the documented way, and integer-valued floats are accepted as is
    assert evaluate(a, b, to_uint8(f / 255.0)) == evaluate(a, b, f.astype(np.float32))


def test_to_uint8_never_rescales_integer_data() -> None:
    """uint8 is already 0..255 (was multiplied by 255: 128 became 255); other integers are refused."""
    levels = np.array([[0, 1, 128, 255]], np.uint8)
    np.testing.assert_array_equal(to_uint8(levels), levels)
    for bad in (levels.astype(np.uint16), levels > 0, np.array([["x"]])):
        with pytest.raises(InputError, match="to_uint8 maps"):
            to_uint8(bad)


def test_to_uint8_rounds_and_clips() -> None:
    assert to_uint8(np.array([[-0.1, 0.0, 0.5, 1.0, 1.7]])).tolist() == [[0, 0, 128, 255, 255]]


def test_size_mismatch_and_bad_shapes(triple) -> None:
    a, b, f = triple
    with pytest.raises(InputError, match="size mismatch"):
        evaluate(a, b, f[:-1])
    with pytest.raises(InputError, match="shape"):
        evaluate(a, b, np.stack([f] * 4, axis=-1))
    with pytest.raises(InputError, match="outside 0..255"):
        evaluate(a, b, f.astype(np.int16) + 300)


def test_colour_fused_is_converted_with_the_cddfuse_grey_rule(triple) -> None:
    a, b, f = triple
    assert grey_from_rgb(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]]])).tolist() == [[76, 150, 29, 9]]
    rgb = np.stack([f, np.roll(f, 3, 0), np.roll(f, 5, 1)], axis=-1)
    assert evaluate(a, b, rgb) == evaluate(a, b, grey_from_rgb(rgb))
    assert evaluate(a, b, np.stack([f] * 3, axis=-1)) == evaluate(a, b, f)  # R = G = B is itself


def test_sources_are_interchangeable(triple) -> None:
    a, b, f = triple
    names = [m for m in METRICS if m not in ("Nabf_as_called", "MS_SSIM")]
    for convention in ("cddfuse", "tang", "vifb"):
        ab, ba = evaluate(a, b, f, names, convention), evaluate(b, a, f, names, convention)
        np.testing.assert_allclose([ab[m] for m in names], [ba[m] for m in names], rtol=1e-12)


def test_default_sets_and_names(triple) -> None:
    assert CORE_METRICS == ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")
    assert DEFAULT_METRICS == CORE_METRICS + ("AG", "CC", "PSNR")
    assert tuple(evaluate(*triple)) == DEFAULT_METRICS
    assert tuple(evaluate(*triple, metrics="qabf, en")) == ("Qabf", "EN")
    assert all(isinstance(info.higher_is_better, bool) for info in METRICS.values())
    assert METRICS["MI"].higher_is_better and not METRICS["Nabf"].higher_is_better
    assert (METRICS["MI"].arrow, METRICS["Nabf"].arrow) == ("↑", "↓")
    assert METRICS["Nabf"].best([0.3, float("nan"), 0.1]) == 0.1 and METRICS["MI"].best([1.0, 3.0]) == 3.0
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(*triple, metrics=["FMI"])
    with pytest.raises(ValueError, match="unknown convention"):
        evaluate(*triple, convention="matlab")


def test_psnr_textbook_override(triple) -> None:
    a, b, f = triple
    mse = evaluate(a, b, f, ["MSE"])["MSE"]
    assert evaluate(a, b, f, ["PSNR"], psnr="textbook")["PSNR"] == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-14)
    tang = evaluate(a, b, f, ["PSNR"], "tang")["PSNR"]
    assert tang == pytest.approx(10 * np.log10(255**2 / mse) + 20 * np.log10(255), rel=1e-14)


def test_ms_ssim_unvalidated_sanity() -> None:
    x, y = _smooth_image(5, (192, 192)), _smooth_image(6, (192, 192))
    assert evaluate(x, x, x, ["MS_SSIM"])["MS_SSIM"] == pytest.approx(2.0, rel=1e-12)
    assert 0 < structural.ms_ssim(x.astype(float), y.astype(float)) < 1


# ---------------------------------------------------------------- oracles (test-only dependencies)


def test_oracle_skimage_ssim(triple) -> None:
    metrics = pytest.importorskip("skimage.metrics")
    a, b, f = (x.astype(np.float64) for x in triple)
    # CDDFuse = skimage 0.19.2 on float32 input, i.e. data_range 2: bit for bit
    for x in (a, b):
        assert structural.ssim(f, x, "cddfuse") == metrics.structural_similarity(
            f.astype(np.float32), x.astype(np.float32), data_range=2.0)
    wang = metrics.structural_similarity(a, f, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=255)
    np.testing.assert_allclose(structural.ssim(a, f, "wang"), wang, rtol=1e-12)


def test_cddfuse_ssim_is_the_float32_reference_where_float64_is_not() -> None:
    """A fused image close to, but not equal to, a source (a network's output): E[x²] − E[x]²
    cancels in float32 to the size of C2, so float64 arithmetic gives another number."""
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(3)
    a = (230 + ndimage.gaussian_filter(rng.uniform(-20, 20, (96, 128)), 3)).round()  # bright, low contrast
    f = np.clip(a + rng.integers(-1, 2, a.shape), 0, 255)
    want = metrics.structural_similarity(f.astype(np.float32), a.astype(np.float32), data_range=2.0)
    assert structural.ssim(f, a, "cddfuse") == want
    as_float64 = metrics.structural_similarity(f, a, data_range=2.0)
    assert abs(as_float64 - want) > 5e-6 * want  # beyond METRICS.md's float64 tolerance: why float32


def test_oracle_sklearn_mi_and_skimage_entropy(triple) -> None:
    skm = pytest.importorskip("sklearn.metrics")
    measure = pytest.importorskip("skimage.measure")
    a, b, f = triple
    expected = skm.mutual_info_score(f.ravel(), a.ravel()) + skm.mutual_info_score(f.ravel(), b.ravel())
    np.testing.assert_allclose(evaluate(a, b, f, ["MI"])["MI"], expected, rtol=1e-12)
    np.testing.assert_allclose(information.entropy(f), measure.shannon_entropy(f, base=2), rtol=1e-12)


# ---------------------------------------------------------------- loader


def test_load_grey_u8_formats(tmp_path: Path) -> None:
    from PIL import Image
    import tifffile

    grey = _smooth_image(7, (20, 24))
    rgb = np.stack([grey, np.roll(grey, 1, 0), np.roll(grey, 1, 1)], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert np.array_equal(load_grey_u8(tmp_path / "c.png"), grey_from_rgb(rgb))
    Image.fromarray(np.dstack([rgb, np.full_like(grey, 128)])).save(tmp_path / "ca.png")  # RGBA: alpha dropped
    assert np.array_equal(load_grey_u8(tmp_path / "ca.png"), grey_from_rgb(rgb))
    x16 = (grey.astype(np.uint16) * 257 + 100)
    tifffile.imwrite(tmp_path / "w.tif", x16)
    assert np.array_equal(load_grey_u8(tmp_path / "w.tif"), np.round(x16 / 257).astype(np.uint8))
    tifffile.imwrite(tmp_path / "i.tif", grey.astype(np.float32))
    assert np.array_equal(load_grey_u8(tmp_path / "i.tif"), grey)
    # [0, 1] floats: the input contract fuse reads them by, as to_uint8 maps them
    tifffile.imwrite(tmp_path / "f.tif", grey.astype(np.float32) / 255)
    assert np.array_equal(load_grey_u8(tmp_path / "f.tif"), grey)
    tifffile.imwrite(tmp_path / "g.tif", grey.astype(np.float32) / 255 * 2.5)  # neither levels nor [0, 1]
    with pytest.raises(InputError, match="g.tif: float values are not integers"):
        load_grey_u8(tmp_path / "g.tif")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="bad.png"):
        load_grey_u8(tmp_path / "bad.png")
    with pytest.raises(InputError, match="file not found"):
        load_grey_u8(tmp_path / "missing.png")


# ---------------------------------------------------------------- litefuse eval (CLI)


@pytest.fixture()
def eval_dirs(tmp_path: Path, triple) -> Path:
    from PIL import Image

    a, b, f = triple
    for role, img in (("ir", a), ("vi", b), ("fused", f)):
        (tmp_path / role).mkdir()
        for stem in ("s1", "s2"):
            Image.fromarray(img).save(tmp_path / role / f"{stem}.png")
    return tmp_path


def _run_eval(*args: str):
    from typer.testing import CliRunner

    from litefuse.cli import app

    return CliRunner().invoke(app, ["eval", *args])


def test_cli_eval_scores_and_writes_csv(eval_dirs: Path, triple) -> None:
    d = eval_dirs
    result = _run_eval("--ir", str(d / "ir"), "--vi", str(d / "vi"), "--fused", str(d / "fused"),
                       "--metrics", "EN,Qabf", "--csv", str(d / "out" / "s.csv"), "--markdown", "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert "| fused folder | EN ↑ |" in result.output and "Qabf ↑" in result.output and "cddfuse" in result.output
    lines = (d / "out" / "s.csv").read_text().splitlines()
    assert lines[0] == "image,EN,Qabf,convention" and [row.split(",")[0] for row in lines[1:]] == ["s1", "s2"]
    assert all(row.endswith(",cddfuse") for row in lines[1:])
    assert float(lines[1].split(",")[2]) == evaluate(*triple, ["Qabf"])["Qabf"]


def test_cli_eval_skips_bad_images_and_reports_exit_codes(eval_dirs: Path) -> None:
    d = eval_dirs
    (d / "fused" / "s2.png").write_bytes(b"broken")
    (d / "ir" / "lonely.png").write_bytes((d / "ir" / "s1.png").read_bytes())
    args = ("--ir", str(d / "ir"), "--vi", str(d / "vi"), "--fused", str(d / "fused"), "--metrics", "EN", "--jobs", "1")
    result = _run_eval(*args)
    assert result.exit_code == 1, result.output
    assert "s2: " in result.output and "not an image" in result.output
    assert "lonely.png: no partner in vi/ and fused/" in result.output and "1 scored, 2 skipped" in result.output
    (d / "fused" / "s1.png").write_bytes(b"broken")
    assert _run_eval(*args).exit_code == 2  # nothing scored
    assert _run_eval(*args[:4], "--fused", str(d / "nope")).exit_code == 2
    assert _run_eval(*args[:6], "--metrics", "FMI").exit_code == 2


def test_cli_eval_says_model_and_output_apply_with_input_only(eval_dirs: Path) -> None:
    """From a CLI QA pass: --model and --output beside --fused were ignored in silence."""
    d = eval_dirs
    args = ("--ir", str(d / "ir"), "--vi", str(d / "vi"), "--fused", str(d / "fused"), "--metrics", "EN", "--jobs", "1")
    result = _run_eval(*args, "-m", "max", "-o", str(d / "elsewhere"))
    assert result.exit_code == 0, result.output
    assert "note: --model and --output apply with --input only" in result.output
    assert "note:" not in _run_eval(*args).output


@pytest.mark.parametrize("metric, convention, side", [
    ("VIF", "cddfuse", 41), ("SSIM", "cddfuse", 7), ("SSIM", "vifb", 11), ("MS_SSIM", "cddfuse", 176),
    ("Qs", "liu", 11), ("Qy", "liu", 7),
])
def test_metrics_refuse_images_smaller_than_their_windows(metric, convention, side) -> None:
    """Below its window a metric's map is empty: VIF gave a 'perfect' 2.0 (NaN → 1.0 per source)
    on 16×16 images and SSIM a NaN; now a one-line error names the metric and its minimum."""
    from litefuse.metrics import min_side

    assert min_side(metric, convention) == side
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (3, side, side + 3), dtype=np.uint8)
    assert np.isfinite(evaluate(*big, [metric], convention)[metric])
    small = big[:, : side - 1]
    with pytest.raises(InputError, match=rf"{side + 3}×{side - 1} pixels is too small: {metric} needs {side}"):
        evaluate(*small, [metric], convention)


def test_ms_ssim_is_defined_where_a_coarse_scale_anti_correlates() -> None:
    """A fused image that inverts a source's coarse structure: the contrast-structure term of a
    coarse scale is negative, and a negative number to a fractional power was NaN."""
    yy, xx = np.mgrid[0:192, 0:192]
    a = (128 + 100 * np.sin(xx / 30.0)).astype(np.uint8)
    f = (255 - a).astype(np.uint8)
    cs = structural._moments(structural._halve(structural._halve(a.astype(float))),
                             structural._halve(structural._halve(f.astype(float))), structural._G11, "valid")
    assert np.mean(2 * cs[4] + structural._WANG_C[1]) < 0  # the negative term
    value = evaluate(a, a, f, ["MS_SSIM"])["MS_SSIM"]
    assert value == 0.0  # clamped, as TensorFlow's ssim_multiscale


def test_a_constant_image_has_entropy_zero_not_minus_zero() -> None:
    flat = np.full((16, 16), 7, np.uint8)
    assert str(evaluate(flat, flat, flat, ["EN"])["EN"]) == "0.0"


def test_load_grey_u8_reads_a_sensor_peak_as_fuse_does(tmp_path, monkeypatch) -> None:
    from PIL import Image

    from litefuse import io

    monkeypatch.setattr(io, "_NARROW_NOTED", [])
    levels = np.random.default_rng(0).integers(0, 4096, (24, 32)).astype(np.uint16)
    Image.fromarray(levels).save(tmp_path / "ir12.png")
    np.testing.assert_array_equal(load_grey_u8(tmp_path / "ir12.png", norm=4095), to_uint8(levels / 4095))
    with pytest.warns(io.OnceWarning, match=r"ir12.png: 16-bit image with values up to 40\d\d \(12-bit data\?\)"):
        np.testing.assert_array_equal(load_grey_u8(tmp_path / "ir12.png"), np.round(levels / 257))  # range: / 257
    with pytest.raises(InputError, match="outside 0..1000"):
        load_grey_u8(tmp_path / "ir12.png", norm=1000)


def test_cli_eval_reads_the_infrared_at_its_peak(eval_dirs: Path, triple, monkeypatch) -> None:
    """12-bit infrared in 16-bit files: `--ir-norm 4080` scores what `fuse --ir-norm 4080` saw;
    without it they score as read (/ 257), with the note that says so."""
    from PIL import Image

    from litefuse import io

    monkeypatch.setattr(io, "_NARROW_NOTED", [])
    d = eval_dirs
    for png in (d / "ir").glob("*.png"):
        Image.fromarray(np.asarray(Image.open(png)).astype(np.uint16) * 16).save(png)
    args = ["--ir", str(d / "ir"), "--vi", str(d / "vi"), "--fused", str(d / "fused"), "--metrics", "MI", "--jobs", "1"]
    want = evaluate(*triple, ["MI"])["MI"]
    scaled = _run_eval(*args, "--ir-norm", "4080", "--csv", str(d / "a.csv"))
    assert scaled.exit_code == 0, scaled.output
    assert float((d / "a.csv").read_text().splitlines()[1].split(",")[1]) == pytest.approx(want, rel=1e-12)
    with pytest.warns(io.OnceWarning, match="12-bit data"):
        assert _run_eval(*args, "--csv", str(d / "b.csv")).exit_code == 0
    assert float((d / "b.csv").read_text().splitlines()[1].split(",")[1]) != pytest.approx(want, rel=1e-3)
    bad = _run_eval(*args, "--ir-norm", "twelve")
    assert bad.exit_code == 2 and "--ir-norm twelve" in bad.output


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_cli_eval_refuses_an_unwritable_csv_before_scoring(eval_dirs: Path) -> None:
    """Even as root, for whom access() says every folder is writable."""
    d = eval_dirs
    result = _run_eval("--ir", str(d / "ir"), "--vi", str(d / "vi"), "--fused", str(d / "fused"), "--csv", "/proc/x.csv")
    assert result.exit_code == 2 and "/proc/x.csv: folder is not writable" in result.output
    assert "scored" not in result.output  # nothing was scored first


@pytest.mark.parametrize("convention, psnr", [("cddfuse", None), ("tang", None), ("cddfuse", "textbook"), ("vifb", None)])
def test_psnr_of_a_perfect_fusion_is_inf(convention: str, psnr: str | None) -> None:
    """F equal to both sources (MSE 0): every PSNR kind is +inf, never a ZeroDivisionError."""
    x = np.full((16, 16), 128, np.uint8)
    assert evaluate(x, x, x, ["PSNR"], convention, psnr=psnr)["PSNR"] == float("inf")


def test_qs_and_qw_share_one_computation_of_their_maps(triple, monkeypatch) -> None:
    """Liu's set scores Qs and Qw; evaluate computes Piella's maps once for both, and the
    numbers are exactly those of separate calls."""
    a, b, f = triple
    alone = {"Qs": evaluate(a, b, f, ["Qs"], "liu")["Qs"], "Qw": evaluate(a, b, f, ["Qw"], "liu")["Qw"]}
    calls = []
    ssim_map = structural.ssim_map_gaussian
    monkeypatch.setattr(structural, "ssim_map_gaussian", lambda *args, **kw: calls.append(1) or ssim_map(*args, **kw))
    assert evaluate(a, b, f, ["Qs", "Qw"], "liu") == alone
    assert len(calls) == 3  # (A,B), (F,A), (F,B): once, not once per metric
    calls.clear()
    evaluate(a, b, f, ["Qs", "Qw"], "liu")  # nothing is kept from one call to the next
    assert len(calls) == 3


def test_cli_eval_table_shows_small_values_as_the_markdown_does(eval_dirs: Path, triple) -> None:
    """From a metrics QA pass: the default (non-markdown) table printed Tang's Nabf (≈1e-7 on a
    good fusion) as 0.0000, while --markdown printed 4.667e-08."""
    d = eval_dirs
    args = ("--ir", str(d / "ir"), "--vi", str(d / "vi"), "--fused", str(d / "fused"), "--metrics", "Nabf,EN",
            "--convention", "tang", "--jobs", "1")
    nabf = evaluate(*triple, ["Nabf"], "tang")["Nabf"]
    assert 0 < nabf < 1e-3
    from litefuse.evaluation import format_value

    result = _run_eval(*args)
    assert result.exit_code == 0, result.output
    assert f"│ {format_value(nabf)} │" in result.output  # the mean of two equal images; was 0.0000
    assert format_value(nabf) in _run_eval(*args, "--markdown").output


def test_cli_eval_table_explains_nan_as_the_markdown_does(eval_dirs: Path) -> None:
    """A constant fused image has CC = NaN (as in the reference); the default table printed a bare
    'nan' where --markdown explains it."""
    from PIL import Image

    d = eval_dirs
    Image.fromarray(np.full((64, 80), 90, np.uint8)).save(d / "fused" / "s2.png")
    args = ("--ir", str(d / "ir"), "--vi", str(d / "vi"), "--fused", str(d / "fused"), "--metrics", "CC", "--jobs", "1")
    for extra in ((), ("--markdown",)):
        result = _run_eval(*args, *extra)
        assert result.exit_code == 0, result.output
        assert "nan" in result.output and "nan: the metric is undefined" in result.output
    clean = _run_eval(*args[:6], "--metrics", "EN", "--jobs", "1")
    assert clean.exit_code == 0 and "nan: the metric" not in clean.output


def test_undefined_values_on_flat_images_are_as_documented() -> None:
    """docs/metrics.md, "Undefined values": what the references give on constant images is kept."""
    x = _smooth_image(7, (48, 48))
    black, grey = np.zeros_like(x), np.full_like(x, 100)
    flat_f = evaluate(x, x[::-1], grey, ["CC", "SCD", "Qcb", "Qcv", "PSNR"])
    assert np.isnan(flat_f["CC"]) and np.isfinite(flat_f["SCD"]) and np.isnan(flat_f["Qcb"]) and np.isnan(flat_f["Qcv"])
    black_f = evaluate(x, x[::-1], black, ["PSNR", "Qcv"])
    assert black_f["PSNR"] == -np.inf and np.isfinite(black_f["Qcv"])  # an all-zero image is not normalised
    assert np.isnan(evaluate(black, black, black, ["PSNR"])["PSNR"])
    assert np.isnan(evaluate(x, x[::-1], x, ["SCD"])["SCD"])
    assert np.isnan(evaluate(black, black, x, ["Qabf"])["Qabf"]) and np.isfinite(evaluate(grey, grey, x, ["Qabf"])["Qabf"])
    assert np.isnan(evaluate(grey, grey, x, ["Qy"], "liu")["Qy"])
    assert evaluate(x, x[::-1], grey, ["CE"], "vifb")["CE"] < 0


def test_load_grey_u8_keeps_8_bit_levels_of_a_signed_or_wide_integer_file(tmp_path: Path) -> None:
    """Only uint16 data or values above 255 are 16-bit levels (/257): an int16 or int32 TIFF whose
    values stay within 0..255 (peak 255 included) holds 8-bit levels, scored as they are."""
    import tifffile

    ramp = (np.arange(16 * 16).reshape(16, 16) % 256).astype(np.int16)  # 0..255
    for dtype in (np.int16, np.int32):
        tifffile.imwrite(tmp_path / "x.tif", ramp.astype(dtype))
        np.testing.assert_array_equal(load_grey_u8(tmp_path / "x.tif"), ramp.astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float64])
def test_values_above_255_are_refused_at_256_not_beyond(dtype) -> None:
    """255 is the last 8-bit level: a 256 is outside the metrics' domain (it would add a 257th bin)."""
    x = _smooth_image(4).astype(dtype)
    assert evaluate(x, x, x, ["EN"])["EN"] > 0  # up to 255: accepted
    x[0, 0] = 256
    with pytest.raises(InputError, match="outside 0..255"):
        evaluate(x, x, x, ["EN"])


def test_rebin_minmax_rounds_half_away_and_maps_a_flat_image_to_zero() -> None:
    """VIFB's re-binning: round(255·(x − min)/(max − min)), halves up (127.5 → 128); flat → 0."""
    np.testing.assert_array_equal(information.rebin_minmax(np.array([0.0, 1.0, 2.0])), [0.0, 128.0, 255.0])
    np.testing.assert_array_equal(information.rebin_minmax(np.full((3, 3), 7.0)), np.zeros((3, 3)))


def test_ms_ssim_is_wangs_weighted_product_over_five_dyadic_scales() -> None:
    """MS-SSIM = Π_j cs_j^β_j · SSIM_5^β_5 with Wang et al. 2003's exponents and 2×2 block means
    (on even sizes): the per-scale terms recomputed here, the weights and down-sampling from the paper."""
    betas = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    x = _smooth_image(5, (176, 176)).astype(np.float64)
    y = np.round(0.5 * x + 0.5 * _smooth_image(6, (176, 176)))
    mine = structural.ms_ssim(x, y)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = 1.0
    for j, beta in enumerate(betas):
        if j:
            h, w = x.shape
            x, y = (z.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) for z in (x, y))
        mx, my, vx, vy, vxy = structural._moments(x, y, structural._G11, "valid")
        cs = np.mean((2 * vxy + c2) / (vx + vy + c2))
        term = np.mean((2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))) if j == 4 else cs
        assert term > 0
        expected *= term**beta
    assert mine == pytest.approx(expected, rel=1e-12)


def test_piella_weight_is_one_half_where_both_sources_are_flat() -> None:
    """Liu's metricPeilla adds 0.5 to both variances where both are 0: λ = 1/2, so on constant
    images Qs is the mean of the two constant-image SSIMs (2μ_Fμ_S + C1)/(μ_F² + μ_S² + C1)."""
    a, b, f = np.full((16, 16), 50.0), np.full((16, 16), 200.0), np.full((16, 16), 100.0)
    c1 = (0.01 * 255) ** 2

    def s(x, y):
        return (2 * x * y + c1) / (x * x + y * y + c1)

    assert structural.qs(a, b, f) == pytest.approx(0.5 * s(100, 50) + 0.5 * s(100, 200), rel=1e-12)


def test_vifb_scores_qabf_on_255_times_the_image() -> None:
    """VIFB's Qabf runs on 255·x: through the g_S == g_F quirk that differs (slightly) where edges are faint."""
    from litefuse.metrics import gradient

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 3, (32, 32)).astype(np.uint8) for _ in range(2))
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    vifb = evaluate(a, b, a, ["Qabf"], "vifb")["Qabf"]
    assert vifb == gradient.qabf(fa, fb, fa, scale=255.0)
    assert vifb != gradient.qabf(fa, fb, fa)
    assert evaluate(a, b, a, ["Qabf"])["Qabf"] == gradient.qabf(fa, fb, fa)


def test_a_path_given_to_the_metrics_is_named_as_one():
    """`evaluate("ir.png", ...)` said "unsupported dtype <U6" (numpy's view of a string)."""
    from litefuse.errors import InputError
    from litefuse.metrics import evaluate

    grey = np.zeros((16, 16), np.uint8)
    with pytest.raises(InputError, match=r"ir: a path \(ir\.png\); the metrics take arrays: read a file with load_grey_u8"):
        evaluate("ir.png", grey, grey, ["EN"])
