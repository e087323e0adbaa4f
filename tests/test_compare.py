"""compare(): every method scored on the same pairs, serial and parallel runs agree."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from litefuse.compare import compare, write_report
from litefuse.errors import InputError, OptionError
from litefuse.io import read_image, save_image
from litefuse.metrics import evaluate


@pytest.fixture()
def pairs(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "Set"
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True)
    for i in range(3):
        yy, xx = np.mgrid[0:40, 0:52]
        ir = np.full((40, 52), 40, np.uint8)
        ir[10 + i : 20 + i, 15:25] = 220
        vi = (120 + 60 * np.sin(xx / 2.0 + i) * np.cos(yy / 3.0) + rng.normal(0, 5, (40, 52))).clip(0, 255).astype(np.uint8)
        Image.fromarray(ir).save(root / "ir" / f"p{i}.png")
        Image.fromarray(vi).save(root / "vi" / f"p{i}.png")
    return root


def test_scores_are_the_metrics_of_the_fused_image(pairs):
    result = compare([pairs], ["max", "mean"], metrics=["EN", "SF", "MI"], preview=1)
    assert result.methods == ["max", "mean"] and len(result.rows) == 6 and not result.skipped
    ir = np.asarray(Image.open(pairs / "ir" / "p0.png"))
    vi = np.asarray(Image.open(pairs / "vi" / "p0.png"))
    expected = evaluate(ir, vi, np.maximum(ir, vi), metrics=["EN", "SF", "MI"])
    row = next(r for r in result.rows if r["image"] == "p0" and r["method"] == "max")
    assert all(row[m] == pytest.approx(expected[m], rel=1e-9) for m in expected)
    means = result.means()
    assert means["max"]["SF"] > means["mean"]["SF"]  # averaging halves the visible detail
    assert list(result.previews) == ["Set/p0"] and set(result.previews["Set/p0"]) == {"infrared", "visible", "max", "mean"}


def test_parallel_run_matches_serial_run_and_report_is_written(pairs, tmp_path):
    serial = compare([pairs], ["max", "gff"], metrics=["EN", "Qabf"], preview=0)
    parallel = compare([pairs], ["max", "gff"], metrics=["EN", "Qabf"], preview=0, jobs=2)
    assert parallel.rows == serial.rows
    paths = write_report(parallel, tmp_path / "rep", title="t")
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {"scores.csv", "summary.md", "chart.png"}
    assert "| max |" in paths["markdown"].read_text()


def test_worker_warnings_are_said_by_the_parent_once(tmp_path, monkeypatch):
    """compare -j 2 on 12-bit infrared in 16-bit files: the workers' note comes back through the
    parent once (not once per worker, as file:line + source on their own stderr)."""
    import tifffile

    from litefuse import io

    monkeypatch.setattr(io, "_NARROW_NOTED", [])
    rng = np.random.default_rng(0)
    for i in range(4):
        save_path = tmp_path / "set" / "ir" / f"p{i}.tif"
        save_path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(save_path, rng.integers(0, 4096, (32, 40)).astype(np.uint16))
        save_image(tmp_path / "set" / "vi" / f"p{i}.png", rng.random((32, 40)).astype(np.float32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = compare([tmp_path / "set"], ["max"], metrics=["EN"], preview=0, jobs=2)
    assert len(result.rows) == 4
    notes = [w for w in caught if issubclass(w.category, io.OnceWarning)]
    assert len(notes) == 1 and "12-bit data?" in str(notes[0].message), [str(w.message) for w in caught]


def test_cli_compare_adds_max_beside_networks_unless_told_not_to(pairs, tmp_path):
    from typer.testing import CliRunner

    from litefuse.cli import app

    runner = CliRunner()
    base = ["compare", "-i", str(pairs), "-m", "aenetv2-ivif", "--metrics", "EN", "-j", "1"]
    done = runner.invoke(app, [*base, "-o", str(tmp_path / "a")])
    assert done.exit_code == 0, done.output
    assert "| max |" in (tmp_path / "a" / "summary.md").read_text() and "`max` added" in done.output
    done = runner.invoke(app, [*base, "--no-reference", "-o", str(tmp_path / "b")])
    assert done.exit_code == 0 and "| max |" not in (tmp_path / "b" / "summary.md").read_text()
    done = runner.invoke(app, ["compare", "-i", str(pairs), "-m", "mean", "--metrics", "EN", "-j", "1", "-o", str(tmp_path / "c")])
    assert "| max |" not in (tmp_path / "c" / "summary.md").read_text()  # classical only: nothing to add


def test_report_without_matplotlib_leaves_only_the_chart_out(pairs, tmp_path, monkeypatch):
    import litefuse.viz

    monkeypatch.setattr(litefuse.viz, "plotting_available", lambda: False)
    result = compare([pairs], ["max"], metrics=["EN"], preview=1)
    paths = write_report(result, tmp_path / "rep")
    assert set(paths) == {"csv", "markdown", "grid"}
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {"scores.csv", "summary.md", "grid.png"}


def test_an_earlier_report_is_replaced_only_with_overwrite(pairs, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import litefuse.viz
    from litefuse.cli import app
    from litefuse.errors import OutputError

    base = ["compare", "-i", str(pairs), "-m", "mean", "--metrics", "EN", "-j", "1", "-o", str(tmp_path / "rep")]
    runner = CliRunner()
    assert runner.invoke(app, base).exit_code == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "rep").iterdir()}
    done = runner.invoke(app, [*base[:4], "max", *base[5:]])  # another method, same folder
    assert done.exit_code != 0 and "earlier report" in str(done.exception) + done.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "rep").iterdir()} == before  # untouched
    assert runner.invoke(app, [*base[:4], "max", *base[5:], "--overwrite"]).exit_code == 0
    assert "| max |" in (tmp_path / "rep" / "summary.md").read_text()
    # an overwritten report leaves no chart from the earlier one when it cannot draw its own
    monkeypatch.setattr(litefuse.viz, "plotting_available", lambda: False)
    result = compare([pairs], ["mean"], metrics=["EN"], preview=1)
    with pytest.raises(OutputError, match="earlier report"):
        write_report(result, tmp_path / "rep")
    write_report(result, tmp_path / "rep", overwrite=True)
    assert not (tmp_path / "rep" / "chart.png").exists() and "| mean |" in (tmp_path / "rep" / "summary.md").read_text()


def test_a_report_that_fails_midway_leaves_the_earlier_one_whole(pairs, tmp_path, monkeypatch):
    """A full disk at the grid (the last file): with --overwrite the earlier report stays as it
    was, not a new scores.csv beside an old chart; without an earlier one no folder is left;
    no staging folder remains either way."""
    import errno

    import litefuse.compare
    from litefuse.errors import OutputError

    first = compare([pairs], ["max"], metrics=["EN"], preview=1)
    write_report(first, tmp_path / "rep")
    before = {p.name: p.read_bytes() for p in (tmp_path / "rep").iterdir()}

    def full(path, image, bits=8):
        error = OutputError(f"{path}: cannot write (No space left on device)")
        error.errno = errno.ENOSPC
        raise error

    monkeypatch.setattr(litefuse.compare, "save_image", full)
    second = compare([pairs], ["mean"], metrics=["EN"], preview=1)
    with pytest.raises(OutputError, match="No space left"):
        write_report(second, tmp_path / "rep", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "rep").iterdir()} == before
    with pytest.raises(OutputError, match="No space left"):
        write_report(second, tmp_path / "new" / "rep")
    assert not (tmp_path / "new").exists()


def test_a_failed_report_names_the_report_file_not_the_staging_folder(pairs, tmp_path, monkeypatch):
    """A full disk while staging said '<rep>/.report-1a2b/grid.png: cannot write', a hidden
    folder that is gone by the time the line is read; it names <rep>/grid.png, errno kept."""
    import errno

    import litefuse._files
    from litefuse.errors import OutputError

    publish = litefuse._files.publish

    def full_at_grid(tmp, path, **kwargs):
        if path.name == "grid.png":
            raise OSError(errno.ENOSPC, "No space left on device")
        publish(tmp, path, **kwargs)

    monkeypatch.setattr("litefuse.io.publish", full_at_grid)
    result = compare([pairs], ["max"], metrics=["EN"], preview=1)
    with pytest.raises(OutputError) as caught:
        write_report(result, tmp_path / "rep")
    assert str(caught.value).startswith(f"{tmp_path / 'rep' / 'grid.png'}: cannot write (No space left"), str(caught.value)
    assert ".report-" not in str(caught.value) and caught.value.errno == errno.ENOSPC


def test_a_report_never_goes_into_a_source_folder(pairs, tmp_path):
    from litefuse.compare import check_report_dir
    from litefuse.errors import OutputError

    for sub in ("ir", "vi"):
        with pytest.raises(OutputError, match="source folder"):
            check_report_dir(pairs / sub, inputs=[pairs])
    assert check_report_dir(tmp_path / "rep", inputs=[pairs]) == tmp_path / "rep"


def test_compare_skips_what_fuse_refuses_and_says_so_in_its_exit_code(pairs, tmp_path):
    from typer.testing import CliRunner

    from litefuse.cli import app

    rgb = np.dstack([np.asarray(Image.open(pairs / "vi" / "p0.png"))] * 3)
    rgb[..., 0] = 255 - rgb[..., 0]  # three distinct channels: not an infrared image
    Image.fromarray(rgb).save(pairs / "ir" / "p0.png")
    base = ["compare", "-m", "max", "--metrics", "EN", "-j", "1"]
    done = CliRunner().invoke(app, [*base, "-i", str(pairs), "-o", str(tmp_path / "a")])
    assert done.exit_code == 1 and "p0.png: infrared image has 3 distinct colour channels" in done.output, done.output
    assert "p0" not in (tmp_path / "a" / "scores.csv").read_text()
    summary = (tmp_path / "a" / "summary.md").read_text()  # the report itself says what it left out
    assert "## Skipped (1; not in the means)" in summary and "p0.png: infrared image has 3" in summary
    assert "↑ higher is better" in summary
    bad = tmp_path / "Bad"
    for sub in ("ir", "vi"):
        (bad / sub).mkdir(parents=True)
    (bad / "ir" / "x.png").write_text("not an image")
    (bad / "vi" / "x.png").write_bytes((pairs / "vi" / "p1.png").read_bytes())
    done = CliRunner().invoke(app, [*base, "-i", str(bad), "-o", str(tmp_path / "b")])
    assert done.exit_code == 2 and "nothing could be scored" in done.output and not (tmp_path / "b").exists()


def test_folders_of_the_same_name_stay_apart_and_repeats_count_once(pairs, tmp_path):
    import shutil

    from litefuse.errors import OptionError

    twin = tmp_path / "other" / "Set"
    shutil.copytree(pairs, twin)
    result = compare([pairs, twin, pairs], ["max"], metrics=["EN"], preview=0)
    assert result.datasets() == [f"{pairs.parent.name}/Set", "other/Set"] and len(result.rows) == 6  # as given
    with pytest.raises(OptionError, match="'max' given twice"):
        compare([pairs], ["max", "max"], metrics=["EN"])
    with pytest.raises(OptionError, match="jobs"):
        compare([pairs], ["max"], metrics=["EN"], jobs=0)


def test_grid_takes_every_set_and_12_bit_infrared_is_read_at_its_peak(pairs, tmp_path, monkeypatch):
    """Previews come from every set in turn; --ir-norm PEAK scales the infrared for fusing and
    scoring alike (12-bit data in 16-bit files scored as a near-black round(x / 257) before)."""
    import shutil

    from litefuse.metrics import to_uint8

    deep = tmp_path / "deep" / "Set12"
    shutil.copytree(pairs, deep)
    for png in (deep / "ir").glob("*.png"):  # the same scenes as 12-bit levels in 16-bit files
        Image.fromarray((np.asarray(Image.open(png)).astype(np.uint16) * 16)).save(png)
    eight = compare([pairs], ["max"], metrics=["EN", "MI", "SSIM"], preview=0)
    twelve = compare([deep], ["max"], metrics=["EN", "MI", "SSIM"], preview=1, ir_norm=4080)
    for a, b in zip(eight.rows, twelve.rows):
        assert a["image"] == b["image"] and all(b[m] == pytest.approx(a[m], rel=1e-12) for m in ("EN", "MI", "SSIM"))
    np.testing.assert_array_equal(to_uint8(twelve.previews["Set12/p0"]["infrared"]), np.asarray(Image.open(pairs / "ir" / "p0.png")))
    from litefuse import io

    monkeypatch.setattr(io, "_NARROW_NOTED", [])
    with pytest.warns(io.OnceWarning, match="12-bit data"):  # and said
        plain = compare([deep], ["max"], metrics=["MI"], preview=0)  # range: / 65535, what the flag is for
    assert plain.means()["max"]["MI"] != pytest.approx(twelve.means()["max"]["MI"], rel=1e-3)

    both = compare([pairs, deep], ["max"], metrics=["EN", "MI", "SSIM"], preview=2)
    assert list(both.previews) == ["Set/p0", "Set12/p0"]  # not the first two pairs of one set
    paths = write_report(both, tmp_path / "report", title="two sets")
    summary = paths["markdown"].read_text()
    assert summary.index("## Set (") < summary.index("## Set12 (")  # the order given
    header, first = paths["csv"].read_text().splitlines()[:2]
    assert header == "set,image,method,EN,MI,SSIM,convention,protocol" and first.endswith(",cddfuse,")  # the default protocol


def test_ab_pairs_are_shown_as_a_and_b(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "mff"
    for sub in ("A", "B"):
        (root / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / sub / "x.png")
    result = compare([root], ["max"], metrics=["EN"], preview=1)
    assert set(result.previews["mff/x"]) == {"A", "B", "max"}


def test_a_grid_of_ab_and_ivif_sets_names_both_kinds_of_source(tmp_path, monkeypatch):
    """An A/B set beside an infrared-visible one: the grid's columns read "source A / source B",
    wrong on the infrared-visible rows."""
    import litefuse.viz as viz

    rng = np.random.default_rng(0)
    for root, subs in ((tmp_path / "mff", ("A", "B")), (tmp_path / "ivif", ("ir", "vi"))):
        for sub in subs:
            (root / sub).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (48, 56), dtype=np.uint8)).save(root / sub / "x.png")
    seen = {}
    real = viz.image_grid
    monkeypatch.setattr(viz, "image_grid", lambda rows, **kw: seen.update(kw) or real(rows, **kw))
    write_report(compare([tmp_path / "mff", tmp_path / "ivif"], ["max"], metrics=["EN"], preview=2), tmp_path / "rep")
    assert seen["col_labels"] == ["infrared / A", "visible / B", "max"], seen


def test_a_pair_too_small_for_a_metric_is_skipped_with_its_reason(pairs):
    result = compare([pairs], ["max", "mean"], metrics=["EN", "VIF"], preview=0)  # 52×40: VIF needs 41 px
    assert not result.rows and len(result.skipped) == 3
    assert "52×40 pixels is too small: VIF needs 41" in result.skipped[0]
    assert result.skipped[0].startswith(f"{pairs.name}/"), result.skipped[0]  # named with its set, as other skips


def test_ab_sets_refuse_ir_norm_and_name_a_size_mismatch_by_file(tmp_path):
    """From an A/B QA pass: --ir-norm minmax stretched source A alone; a size mismatch named the
    method and suggested an option compare does not have."""
    import warnings

    from litefuse.errors import OptionError
    from litefuse.folder import fuse_folder

    rng = np.random.default_rng(0)
    root = tmp_path / "mef"
    for sub, size in (("A", (40, 48)), ("B", (44, 48))):
        (root / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / sub / "x.png")
    with pytest.raises(OptionError, match=r"scales an infrared source; A/B pairs are read") as refused:
        compare([root], ["max"], metrics=["EN"], ir_norm="minmax")
    assert "(ab)" not in str(refused.value)  # "ab" is no task a user can name
    with pytest.raises(OptionError, match="scales an infrared source; A/B pairs"):
        fuse_folder(root, tmp_path / "o", "max", ir_norm="minmax")
    result = compare([root], ["max"], metrics=["EN"], preview=0)
    assert result.skipped == [f"{root / 'B' / 'x.png'}: size mismatch: 48×44 here but 48×40 for its partner x.png"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outside = compare([root], ["aenetv2-ivif"], metrics=["EN"], preview=0)
    assert any("aenetv2-ivif is made for ivif pairs, not A/B:" in str(w.message) for w in caught)
    assert [n.split(":")[0] for n in outside.notes] == ["aenetv2-ivif is made for ivif pairs, not A/B"]  # for summary.md too


def test_a_fuser_for_another_task_does_not_fit_a_folder(pairs, tmp_path):
    from litefuse.api import Fuser
    from litefuse.errors import OptionError
    from litefuse.folder import fuse_folder

    with pytest.raises(OptionError, match=r"a Fuser for task 'mef' does not fit .*; use Fuser\(\.\.\., task='ivif'\)"):
        fuse_folder(pairs, tmp_path / "o", Fuser("max", task="mef"))


def _mean_failing_on_p0(monkeypatch):
    """A ``mean`` Fuser that cannot fuse pair p0 (an InputError), as a method fails on one pair."""
    from litefuse import Fuser

    mean = Fuser("mean")
    real = mean.fuse_images

    def fails_on_p0(a, b, *args, **kwargs):
        if float(np.asarray(a)[10, 20]) > 0.5:  # only p0's target reaches row 10
            raise InputError("cannot fuse this one")
        return real(a, b, *args, **kwargs)

    monkeypatch.setattr(mean, "fuse_images", fails_on_p0)
    return mean


def test_grid_leaves_a_failed_method_blank_in_its_own_column(pairs, tmp_path, monkeypatch):
    import litefuse.viz

    mean = _mean_failing_on_p0(monkeypatch)
    result = compare([pairs], ["max", mean, "gff"], metrics=["EN"], preview=2)
    assert any("mean" in s for s in result.skipped) and "mean" not in result.previews["Set/p0"]
    # the pair is in no method's means (they were averaged over different pairs), and that is said
    assert not [r for r in result.rows if r["image"] == "p0"] and {r["method"] for r in result.rows} == {"max", "mean", "gff"}
    assert any("Set/p0: left out of every method's means" in s for s in result.skipped)
    seen = {}
    monkeypatch.setattr(litefuse.viz, "image_grid", lambda rows, **kw: seen.update(rows=rows, **kw) or np.zeros((8, 8, 3), np.uint8))
    write_report(result, tmp_path / "rep")
    cols, (p0, p1) = seen["col_labels"], seen["rows"]
    assert cols == ["infrared", "visible", "max", "mean", "gff"]
    assert p0[3] is None and p0[4] is result.previews["Set/p0"]["gff"]  # gff stays under its own label
    assert p1[3] is result.previews["Set/p1"]["mean"]


def test_an_unknown_convention_is_refused_before_any_pair_is_fused(pairs, monkeypatch):
    """From a CLI QA pass: `compare --convention foo` fused every pair, then skipped each one
    with the same message ('nothing could be scored')."""
    from litefuse.api import Fuser
    from litefuse.errors import OptionError

    def no_fusing(*args, **kwargs):
        raise AssertionError("fused before the convention was checked")

    monkeypatch.setattr(Fuser, "fuse_images", no_fusing)  # what compare fuses with
    with pytest.raises(OptionError, match="unknown convention 'foo'"):
        compare([pairs], ["max"], metrics=["EN"], convention="foo", preview=0)


def test_cli_compare_bad_ir_norm_is_one_line(pairs, tmp_path):
    """From a CLI QA pass: the `max added` note came first, then the error."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    done = CliRunner().invoke(app, ["compare", "-i", str(pairs), "-m", "aenetv2", "-o", str(tmp_path / "r"), "--ir-norm", "bar"])
    assert done.exit_code == 2 and done.output.strip().splitlines() == [
        "error: --ir-norm bar: give range, minmax or the sensor's peak value (e.g. 4095)"], done.output


@pytest.mark.parametrize("option, value, message", [
    ("--convention", "foo", "error: --convention: unknown convention 'foo'"), ("--metrics", "EN,foo", "error: --metrics: unknown metric 'foo'"),
    ("-m", "nosuch", "error: -m nosuch: unknown model 'nosuch'"), ("-m", "max@x.safetensors", "error: -m max@x.safetensors: model 'max' is classical")])
def test_cli_compare_bad_convention_or_metric_is_one_line_before_loading(pairs, tmp_path, option, value, message):
    """As --ir-norm: no `max added` note, no model loaded, before the error."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    done = CliRunner().invoke(app, ["compare", "-i", str(pairs), "-m", "aenetv2", "-o", str(tmp_path / "r"), option, value])  # named by its option
    lines = done.output.strip().splitlines()
    assert done.exit_code == 2 and len(lines) == 1 and lines[0].startswith(message), done.output


def test_previews_are_kept_at_grid_size_and_draw_the_same_grid(tmp_path):
    """Full frames of every method were kept to the end for a 200-row grid (2.5 GB at 12 MP)."""
    from litefuse.compare import GRID_HEIGHT
    from litefuse.viz import image_grid

    rng = np.random.default_rng(3)
    for sub in ("ir", "vi"):
        (tmp_path / "Big" / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (450, 600), dtype=np.uint8)).save(tmp_path / "Big" / sub / "p.png")
    result = compare([tmp_path / "Big"], ["max"], metrics=["EN"], preview=1)
    kept = result.previews["Big/p"]
    assert {v.shape for v in kept.values()} == {(GRID_HEIGHT, 267)}
    full = [read_image(tmp_path / "Big" / s / "p.png") for s in ("ir", "vi")]
    full.append(np.maximum(*full))
    np.testing.assert_array_equal(image_grid([list(kept.values())], height=GRID_HEIGHT), image_grid([full], height=GRID_HEIGHT))


def test_a_parent_folder_gives_each_pair_folder_below_it_as_a_set(image_root, tmp_path):
    """``compare -i data/ivif`` (as ``train -d``) was 'no source sub-folders found'."""
    result = compare([image_root], ["max"], metrics=["EN"], limit=1, preview=0)
    assert result.datasets() == ["SetA", "SetB"] and len(result.rows) == 2
    again = compare([image_root / "ivif", image_root / "ivif" / "SetA"], ["max"], metrics=["EN"], limit=1, preview=0)
    assert again.datasets() == ["SetA"] and len(again.rows) == 1  # a pair folder reached twice is scored once
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no source sub-folders found"):
        compare([tmp_path / "empty"], ["max"])


def test_compare_stretch_applies_to_every_method(image_root, tmp_path):
    from typer.testing import CliRunner

    from litefuse.cli import app

    rows = {}
    for flag in ([], ["--stretch"]):
        out = tmp_path / ("s" if flag else "p")
        done = CliRunner().invoke(app, ["compare", "-i", str(image_root / "ivif" / "SetA"), "-m", "max", "-m", "mean",
                                        "--metrics", "SD", "--limit", "2", "-j", "1", "-o", str(out), *flag])
        assert done.exit_code == 0, done.output
        # the console heads its tables as summary.md does (it printed the set's name alone)
        assert "Convention: `cddfuse`; mean over images" in done.output and "SetA (2 pairs)" in done.output, done.output
        assert ("min-max stretched" in done.output) == bool(flag)
        rows[bool(flag)] = (out / "scores.csv").read_text().splitlines()[1:]
    assert all(a != b for a, b in zip(rows[False], rows[True]))  # max and mean alike: stretched images score otherwise
    assert "min-max stretched before scoring (`--stretch`)" in (tmp_path / "s" / "summary.md").read_text()  # said
    assert all(row.endswith(",cddfuse,fused images min-max stretched before scoring (`--stretch`)") for row in rows[True])
    assert "stretched" not in (tmp_path / "p" / "summary.md").read_text()


def test_compare_summary_names_precision_and_tile(image_root):
    """QA pass: compare --precision bf16 / --tile N changed every network's scores, but summary.md
    read as an fp32, default-tile run (--stretch and --ir-norm were said; these were not)."""
    from litefuse.api import Fuser

    pairs = image_root / "ivif" / "SetA"
    plain = compare([pairs], ["aenetv2", "max"], metrics=["EN"], limit=1, preview=0)
    assert plain.protocol == []
    both = compare([pairs], [Fuser("aenetv2", precision="bf16", tile=256), "max"], metrics=["EN"], limit=1, preview=0)
    assert both.protocol == ["networks run with `--precision bf16`", "networks run with `--tile 256`"]
    one = compare([pairs], [Fuser("aenetv2", precision="bf16"), "lwc-densefuse"], metrics=["EN"], limit=1, preview=0)
    assert one.protocol == ["`--precision`: aenetv2 bf16"]
    assert "networks run with `--precision bf16`" in write_report(both, image_root / "rep")["markdown"].read_text()
    # a row labelled over its own weights says which file (it read "release" only, like the shipped weights)
    from litefuse.registry import get_model_info

    shipped = get_model_info("aenetv2").weights_path
    own = compare([pairs], [f"release=aenetv2@{shipped}", "max"], metrics=["EN"], limit=1, preview=0)
    assert own.protocol == [f"weights: release = aenetv2@{shipped}"]


def test_compare_without_methods_shows_the_default_network_dwsfusion_and_max(image_root, tmp_path):
    """Without -m it compared max and gff only: no network at all. An A/B folder does not say its
    task: every A/B task's default is shown (aenetv2; laplacian for named mff and mef pairs)."""
    from typer.testing import CliRunner

    from litefuse.api import default_model
    from litefuse.cli import app

    for folder, expected in ((image_root / "ivif" / "SetA", [default_model("ivif"), "dwsfusion", "max"]),
                             (image_root / "mff" / "SetB", [default_model("ab"), "laplacian", "max"])):
        out = tmp_path / folder.name
        done = CliRunner().invoke(app, ["compare", "-i", str(folder), "--metrics", "EN", "--limit", "1", "-j", "1", "-o", str(out)])
        assert done.exit_code == 0, done.output
        assert [row.split(",")[2] for row in (out / "scores.csv").read_text().splitlines()[1:]] == expected


def test_stored_results_are_scored_beside_the_methods(tmp_path, monkeypatch):
    """compare --fused DIR: another method's results (here max's, written by `fuse --input`, one
    set per folder, and named '{stem}_x' in a second copy) score exactly as the method itself;
    a missing result leaves the pair out of every mean, said."""
    import shutil
    from pathlib import Path

    from typer.testing import CliRunner

    from litefuse.cli import app
    from litefuse.compare import FusedFolder

    rng = np.random.default_rng(3)
    for s in ("SetA", "SetB"):
        for i in range(2):
            save_image(tmp_path / "data" / s / "ir" / f"p{i}.png", rng.random((40, 48)).astype(np.float32))
            save_image(tmp_path / "data" / s / "vi" / f"p{i}.png", rng.random((40, 48, 3)).astype(np.float32))
    runner = CliRunner()
    done = runner.invoke(app, ["fuse", "-i", str(tmp_path / "data"), "-o", str(tmp_path / "res"), "-m", "max"])
    assert done.exit_code == 0, done.output
    result = compare([tmp_path / "data"], ["max", FusedFolder("mine", tmp_path / "res")], metrics=["EN", "Qabf"], preview=0)
    by = {(r["set"], r["image"], r["method"]): (r["EN"], r["Qabf"]) for r in result.rows}
    assert len(by) == 8 and all(by[(s, i, "mine")] == by[(s, i, "max")] for s, i, m in by)
    assert any("results read from folders" in p for p in result.protocol)
    # named otherwise, flat (one set), one missing: that pair is out of both means, and said
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(tmp_path / "res" / "SetA" / "p0.png", flat / "p0_x.png")
    result = compare([tmp_path / "data" / "SetA"], ["max", FusedFolder("x", flat, "{stem}_x")], metrics=["EN"], preview=0)
    assert {r["image"] for r in result.rows} == {"p0"}
    missing = [p for p in result.skipped if "no fused image p1_x.*" in p]
    assert len(missing) == 1 and missing[0].count("x:") == 1, result.skipped  # the label said once, not thrice
    monkeypatch.chdir(tmp_path)  # a folder given relatively, labelled by its name: "flat: flat: no fused image" said it twice
    result = compare([tmp_path / "data" / "SetA"], ["max", FusedFolder("flat", Path("flat"), "{stem}_x")], metrics=["EN"], preview=0)
    assert [p for p in result.skipped if "no fused image" in p][0].startswith("flat: no fused image p1_x.*"), result.skipped
    out = runner.invoke(app, ["compare", "-i", str(tmp_path / "data" / "SetA"), "-m", "mean", "--fused", f"theirs={flat}",
                              "--fused-name", "{stem}_x", "--metrics", "EN", "-j", "1", "-o", str(tmp_path / "rep")])
    assert out.exit_code == 1, out.output  # a pair skipped
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "| theirs |" in summary and "| max |" in summary  # stored results get the reference beside them too
    bad = runner.invoke(app, ["compare", "-i", str(tmp_path / "data"), "--fused", str(tmp_path / "nope"), "-o", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "directory not found" in bad.output


def test_stored_results_template_with_other_braces(tmp_path):
    """--fused-name with braces besides {stem} ('{stem}_{v2}'): the braces are part of the file
    name, as eval --fused-name reads them; str.format made it an internal error (KeyError 'v2')."""
    from litefuse.compare import FusedFolder

    rng = np.random.default_rng(4)
    ir, vi = rng.random((40, 48)).astype(np.float32), rng.random((40, 48)).astype(np.float32)
    save_image(tmp_path / "data" / "ir" / "p0.png", ir)
    save_image(tmp_path / "data" / "vi" / "p0.png", vi)
    save_image(tmp_path / "res" / "p0_{v2}.png", np.maximum(ir, vi))
    result = compare([tmp_path / "data"], ["max", FusedFolder("theirs", tmp_path / "res", "{stem}_{v2}")], metrics=["EN"], preview=0)
    assert not result.skipped and {r["method"] for r in result.rows} == {"max", "theirs"}


def test_stored_results_label_clash_says_how_to_label_a_folder(tmp_path):
    """--fused results/gff beside -m gff: both are labelled 'gff'; the error says --fused LABEL=DIR,
    not 'label=name@weights' (which is for methods)."""
    from litefuse.compare import FusedFolder

    rng = np.random.default_rng(5)
    save_image(tmp_path / "data" / "ir" / "p0.png", rng.random((40, 48)).astype(np.float32))
    save_image(tmp_path / "data" / "vi" / "p0.png", rng.random((40, 48)).astype(np.float32))
    (tmp_path / "max").mkdir()
    with pytest.raises(OptionError, match="--fused LABEL=DIR"):
        compare([tmp_path / "data"], ["max", FusedFolder("max", tmp_path / "max")], metrics=["EN"], preview=0)


def test_stored_results_found_where_fuse_writes_a_parent(tmp_path):
    """`fuse -i PARENT -o res` writes res/<path below PARENT>/ (res/day/SetA); compare labels that
    set 'SetA' and looked only in res/SetA/ and res/: every pair was 'no fused image'."""
    from typer.testing import CliRunner

    from litefuse.cli import app
    from litefuse.compare import FusedFolder

    rng = np.random.default_rng(6)
    for s in ("day/SetA", "night/SetB"):
        for i in range(2):
            save_image(tmp_path / "data" / s / "ir" / f"p{i}.png", rng.random((40, 48)).astype(np.float32))
            save_image(tmp_path / "data" / s / "vi" / f"p{i}.png", rng.random((40, 48)).astype(np.float32))
    done = CliRunner().invoke(app, ["fuse", "-i", str(tmp_path / "data"), "-o", str(tmp_path / "res"), "-m", "max"])
    assert done.exit_code == 0 and (tmp_path / "res" / "day" / "SetA" / "p0.png").is_file(), done.output
    result = compare([tmp_path / "data"], ["max", FusedFolder("mine", tmp_path / "res")], metrics=["EN"], preview=0)
    assert not result.skipped, result.skipped
    by = {(r["set"], r["image"], r["method"]): r["EN"] for r in result.rows}
    assert len(by) == 8 and all(by[(s, i, "mine")] == by[(s, i, "max")] for s, i, m in by)


def test_stored_results_in_an_unreadable_folder_skip_the_pair_in_one_line(tmp_path, monkeypatch):
    """A --fused folder that cannot be listed (permissions): each pair is skipped with the folder and
    the reason named, as an unreadable image is; the OSError escaped compare as an internal error."""
    from pathlib import Path

    from litefuse.compare import FusedFolder

    rng = np.random.default_rng(7)
    save_image(tmp_path / "data" / "ir" / "p0.png", rng.random((40, 48)).astype(np.float32))
    save_image(tmp_path / "data" / "vi" / "p0.png", rng.random((40, 48)).astype(np.float32))
    (tmp_path / "res").mkdir()
    stored = FusedFolder("theirs", tmp_path / "res")
    listing = Path.iterdir

    def iterdir(self):
        if self == tmp_path / "res":
            raise PermissionError(13, "Permission denied")
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    result = compare([tmp_path / "data"], ["max", stored], metrics=["EN"], preview=0)
    assert not result.rows and "cannot read the folder (Permission denied)" in result.skipped[0], result.skipped


def test_a_pair_the_first_method_cannot_fuse_is_said_to_be_out_of_every_mean(pairs, monkeypatch):
    """When the failing method comes first, the others are fused (for the grid) but not scored,
    and the pair is still said to be left out of every method's means."""

    mean = _mean_failing_on_p0(monkeypatch)
    result = compare([pairs], [mean, "max"], metrics=["EN"], preview=2)
    assert not [r for r in result.rows if r["image"] == "p0"] and "max" in result.previews["Set/p0"]
    assert any("Set/p0: left out of every method's means" in s for s in result.skipped)


def test_means_of_one_set_average_only_that_sets_rows():
    """``means("A")`` averages set A's rows (1 and 3 -> 2), ``means("B")`` set B's (10),
    ``means()`` all three (14/3), per method."""
    from litefuse.compare import Comparison

    rows = [{"set": s, "image": f"{s}{i}", "method": m, "EN": v + (m == "y")}
            for s, i, v in (("A", 0, 1.0), ("A", 1, 3.0), ("B", 0, 10.0)) for m in ("x", "y")]
    result = Comparison(["x", "y"], ["EN"], "cddfuse", rows)
    assert result.means("A") == {"x": {"EN": 2.0}, "y": {"EN": 3.0}}
    assert result.means("B") == {"x": {"EN": 10.0}, "y": {"EN": 11.0}}
    assert result.means()["x"]["EN"] == pytest.approx(14 / 3) and result.datasets() == ["A", "B"]


def test_a_report_over_several_sets_charts_each_set_not_a_pooled_mean(pairs, tmp_path, monkeypatch):
    """chart.png drew one mean pooled over every set (a large set hides a loss on a small one,
    and an IVIF set beside a MEF set mixes tasks); now one group of bars per set, as summary.md."""
    import shutil

    import litefuse.viz

    small = tmp_path / "Small"
    shutil.copytree(pairs, small)
    (small / "ir" / "p2.png").unlink()
    (small / "vi" / "p2.png").unlink()
    result = compare([pairs, small], ["max", "mean"], metrics=["EN", "SF"], preview=0)
    seen = {}

    def chart(per_set, path, **kw):
        seen.update(per_set=per_set, **kw)
        path.write_bytes(b"")
        return path

    monkeypatch.setattr(litefuse.viz, "metric_chart_by_set", chart)
    write_report(result, tmp_path / "rep")
    assert list(seen["per_set"]) == ["Set (3 pairs)", "Small (2 pairs)"]
    assert seen["per_set"]["Small (2 pairs)"] == result.means("Small") != result.means()
    assert "each set" in seen["title"] and "pooled" not in seen["title"]


def test_cli_compare_preview_sets_the_pairs_in_the_grid(pairs, tmp_path):
    """The grid showed 4 pairs, fixed; --preview N shows N (0: no grid.png)."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    base = ["compare", "-i", str(pairs), "-m", "mean", "--metrics", "EN", "-j", "1"]
    heights = {}
    for n in (0, 1, 3):
        done = CliRunner().invoke(app, [*base, "--preview", str(n), "-o", str(tmp_path / str(n))])
        assert done.exit_code == 0, done.output
        grid = tmp_path / str(n) / "grid.png"
        heights[n] = Image.open(grid).height if grid.exists() else 0
    assert heights[0] == 0 and heights[3] > 2.5 * heights[1] > 0, heights


def test_one_folder_or_one_method_given_as_a_string_is_not_split_into_letters(pairs):
    """`compare("data", ["max"])` walked "/" ... then "t: directory not found"; `compare([...], "max")`
    said "unknown model 'm'"; `compare([...], [])` returned an empty comparison."""
    one = compare(str(pairs), "max", metrics=["EN"], preview=0)
    listed = compare([pairs], ["max"], metrics=["EN"], preview=0)
    assert one.rows == listed.rows and one.rows
    with pytest.raises(OptionError, match="no methods to compare"):
        compare([pairs], [], metrics=["EN"], preview=0)


@pytest.mark.parametrize("value", ["false", "no", 1, None])
def test_stretch_takes_a_bool_only(value):
    """`Fuser(stretch="false")` (truthy) stretched every output; compile= and threads= were already strict."""
    from litefuse import Fuser

    with pytest.raises(OptionError, match="stretch must be True or False"):
        Fuser("max", stretch=value)
