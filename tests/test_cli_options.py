"""The commands as one tool: the same concept under the same option name and metavar
everywhere, the other spellings still accepted as hidden aliases (in process, fast)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from litefuse.cli import app
from litefuse.cli_common import with_alias
from litefuse.demo import synthetic_pair
from litefuse.io import read_image, save_image

COMMANDS = ["fuse", "models", "demo", "export", "bench", "compare", "eval", "train", "card", "study"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def help_text(command: str) -> str:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_uses_one_vocabulary(command):
    text = help_text(command)
    assert "list[str]" not in text
    # a flag takes no value (`--overwrite=false` is an error): its row shows none; --help is typer's own
    assert not re.search(r"--(?!help\b)[\w-]+(\s+--no-[\w-]+)?\s+<bool>", text), text
    assert not re.search(r"--out\b(?!put)", text), "the run/study folder is --output, as everywhere"
    assert "--eval " not in text, "card's pair folders are --input -i, as compare's"
    if command not in ("bench", "compare"):
        assert "--method " not in text
    if "--output" in text:
        assert re.search(r"--output\s+-o\s+<path>", text), text
    if "--convention" in text:
        assert "<cddfuse|tang|vifb|liu>" in text
    if "--ir-norm" in text:
        assert "<range|minmax|PEAK>" in text
    if "--size" in text:
        assert "<WxH" in text
    for flag in ("--model", "--method"):  # the method is -m under whichever name the command shows
        if re.search(rf"{flag}\s+-m", text):
            break
    else:
        assert command in ("models", "card", "study"), text


def test_with_alias():
    assert with_alias(None, "a", "--model", "--method") == "a"
    assert with_alias("a", None, "--model", "--method") == "a"
    assert with_alias("a", "a", "--model", "--method") == "a"
    assert with_alias(["a"], ["b"], "--method", "--model") == ["a", "b"]


@pytest.fixture()
def pair(tmp_path):
    ir, vi = synthetic_pair(48, 64)
    return save_image(tmp_path / "ir.png", ir), save_image(tmp_path / "vi.png", vi)


def test_fuse_takes_method_alias_and_spec(pair, tmp_path):
    ir, vi = pair
    for i, args in enumerate((["--method", "max"], ["-m", "mine=max"])):
        out = tmp_path / f"o{i}.png"
        result = invoke("fuse", "--ir", str(ir), "--vi", str(vi), "-o", str(out), *args)
        assert result.exit_code == 0, result.output
        assert read_image(out).shape[:2] == (48, 64)
    twice = invoke("fuse", "--ir", str(ir), "--vi", str(vi), "-o", str(tmp_path / "x.png"), "-m", "max", "--method", "mean")
    assert twice.exit_code == 2 and "-m names 2 methods (max, mean)" in twice.output
    both = invoke("fuse", "--ir", str(ir), "--vi", str(vi), "-o", str(tmp_path / "y.png"), "-m", "aenetv2-ivif@a.safetensors",
                  "--weights", "b.safetensors")
    assert both.exit_code == 2 and "both name weights" in both.output


def test_bench_takes_model_alias():
    result = invoke("bench", "--model", "mean", "--size", "16x16", "--rounds", "1", "--warmup", "0", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "mean" in result.output


def test_old_spellings_still_parse(tmp_path):
    """--out (train, study), --eval (card), --method (export, train, eval), --model (compare): accepted, not 'No such option'."""
    cases = [
        (["train", "nosuch-net", "--out", str(tmp_path / "r"), "--no-progress"], "unknown model"),
        (["train", "--method", "nosuch-net", "--progress"], "unknown model"),
        (["export", "--method", "nosuch-net", "-o", str(tmp_path / "x.onnx")], "unknown model"),
        (["card", str(tmp_path), "--eval", str(tmp_path)], "not a finished training run"),
        (["eval", "-i", str(tmp_path / "none"), "--method", "max"], "not found"),
        (["compare", "-i", str(tmp_path / "none"), "--model", "max"], "not found"),
    ]
    for args, fragment in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert fragment in result.output and "No such option" not in result.output, (args, result.output)


def test_bad_numbers_are_one_line(tmp_path):
    jobs = invoke("eval", "--ir", str(tmp_path), "--vi", str(tmp_path), "--fused", str(tmp_path), "-j", "0")
    assert jobs.exit_code == 2 and "--jobs" in jobs.output
    for option in ("--budget-minutes", "--per-variant-minutes"):
        result = invoke("study", "aenetv2", option, "-1", "-o", str(tmp_path / "s"))
        assert result.exit_code == 2, result.output
        assert f"{option} must be a finite number of minutes more than 0 (got -1)" in result.output
        assert not (tmp_path / "s").exists()


def test_train_takes_threads_as_fuse_bench_and_study_do(tmp_path):
    from litefuse.cli_train import _build_config

    cfg = _build_config("lwc-densefuse", [tmp_path], None, tmp_path / "run", False, None, None, 1, None, None, None, None, threads=2)
    assert cfg.threads == 2
    zero = invoke("train", "lwc-densefuse", "--threads", "0")
    assert zero.exit_code == 2 and "--threads" in zero.output
    both = invoke("train", "lwc-densefuse", "-d", str(tmp_path), "-o", str(tmp_path / "r"), "--threads", "2", "--set", "threads=1")
    assert both.exit_code == 2 and "--threads both set threads" in both.output, both.output


def test_fuse_tile_sets_where_frames_are_tiled(tmp_path):
    """--tile N as Fuser(tile=N): a 640×608 frame, above lwc-densefuse's 600² tile, is tiled by
    default (its channel gate sees each tile alone) and fused in one pass with --tile 640."""
    import numpy as np

    from litefuse import Fuser

    ir, vi = synthetic_pair(608, 640)
    ir_path, vi_path = save_image(tmp_path / "ir.png", ir), save_image(tmp_path / "vi.png", vi)
    ir8, vi8 = read_image(ir_path), read_image(vi_path)
    outs = {}
    for tile in (None, 640):
        out = tmp_path / f"f{tile}.png"
        result = invoke("fuse", "--ir", str(ir_path), "--vi", str(vi_path), "-o", str(out), "-m", "lwc-densefuse",
                        "--grey", "--threads", "1", *(["--tile", str(tile)] if tile else []))
        assert result.exit_code == 0, result.output
        outs[tile] = np.round(read_image(out) * 255)
        expected = Fuser("lwc-densefuse", tile=tile, threads=1).fuse_images(ir8, vi8, grey=True)
        assert np.abs(outs[tile] - np.round(expected * 255)).max() <= 1
    assert np.abs(outs[None] - outs[640]).max() >= 1  # tiled and one pass differ for this network
    result = invoke("fuse", "--ir", str(ir_path), "--vi", str(vi_path), "-o", str(tmp_path / "x.png"), "--tile", "8")
    assert result.exit_code == 2 and "--tile" in result.output and not (tmp_path / "x.png").exists()


def _pair_folder(root, size=(160, 200)):
    ir, vi = synthetic_pair(*size)
    save_image(root / "ir" / "p.png", ir)
    save_image(root / "vi" / "p.png", vi)
    return root


def _scores(csv_path):
    import csv

    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def test_compare_and_eval_input_run_methods_as_fuse_does(tmp_path):
    """--tile, --precision, --threads and --device reach compare's and eval --input's methods as fuse's:
    lwc-densefuse in small tiles (96 px: 3 × its 32-pixel context) scores otherwise than in one pass; bf16
    runs; no CUDA is one line."""
    folder = _pair_folder(tmp_path / "set")
    rows = {}
    for name, extra in (("one", []), ("tiled", ["--tile", "16"]), ("bf16", ["--precision", "bf16", "--threads", "1"])):
        result = invoke("compare", "-i", str(folder), "-m", "lwc-densefuse", "--no-reference", "--metrics", "EN,SD",
                        "-j", "1", "-o", str(tmp_path / name), *extra)
        assert result.exit_code == 0, result.output
        rows[name] = _scores(tmp_path / name / "scores.csv")[0]
    assert rows["one"]["EN"] != rows["tiled"]["EN"]
    assert rows["one"]["SD"] != rows["bf16"]["SD"]  # --precision reached the method (it is not fp32's result)
    assert abs(float(rows["one"]["SD"]) - float(rows["bf16"]["SD"])) < 0.02 * float(rows["one"]["SD"])
    for command in (["compare", "-i", str(folder), "-o", str(tmp_path / "c")],
                    ["eval", "-i", str(folder), "-o", str(tmp_path / "e")]):
        result = invoke(*command, "-m", "lwc-densefuse", "--device", "cuda", "-j", "2")
        if result.exit_code == 0:  # a machine with CUDA
            continue
        assert result.exit_code == 2 and result.output.count("\n") <= 2 and "cuda" in result.output.lower(), result.output
        assert not (tmp_path / "c").exists() and not (tmp_path / "e").exists()
    fused = {}
    for name, extra in (("one", []), ("tiled", ["--tile", "16"])):
        result = invoke("eval", "-i", str(folder), "-m", "lwc-densefuse", "-o", str(tmp_path / f"f{name}"),
                        "--metrics", "EN", "-j", "1", *extra)
        assert result.exit_code == 0, result.output
        fused[name] = read_image(tmp_path / f"f{name}" / "p.png")
    assert abs(fused["one"] - fused["tiled"]).max() > 0


def test_fuse_names_a_labelled_method_by_its_label(tmp_path):
    folder = _pair_folder(tmp_path / "set", size=(32, 40))
    result = invoke("fuse", "--ir", str(folder / "ir" / "p.png"), "--vi", str(folder / "vi" / "p.png"),
                    "-m", "mine=max", "-o", str(tmp_path / "f.png"))
    assert result.exit_code == 0 and "fused (mine) ->" in result.output, result.output


def test_eval_notes_every_fusing_option_given_without_input(tmp_path):
    """--threads fuses (with --input) as --device, --precision and --tile do: without --input
    it is said to be unused, not silently dropped."""
    folder = _pair_folder(tmp_path / "set", size=(32, 40))
    result = invoke("eval", "--ir", str(folder / "ir"), "--vi", str(folder / "vi"), "--fused", str(folder / "vi"),
                    "--metrics", "EN", "-j", "1", "--threads", "2", "--tile", "64")
    assert result.exit_code == 0, result.output
    assert "note: --tile and --threads apply with --input only" in result.output, result.output


def test_fuse_format_writes_folders_in_the_format_named(tmp_path):
    """--format jpg: a folder's fused images (and a pair into a folder) as JPEG; a file output keeps its
    own suffix; 16 bits only as TIFF; an unknown format is one line, before any work."""
    from PIL import Image

    folder = _pair_folder(tmp_path / "set", size=(32, 40))
    result = invoke("fuse", "-i", str(folder), "-o", str(tmp_path / "out"), "-m", "max", "--format", "jpg")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["p.jpg"]
    assert Image.open(tmp_path / "out" / "p.jpg").format == "JPEG"
    pair = ["--ir", str(folder / "ir" / "p.png"), "--vi", str(folder / "vi" / "p.png"), "-m", "max"]
    assert invoke("fuse", *pair, "-o", str(tmp_path / "one") + "/", "--format", ".TIF").exit_code == 0
    assert Image.open(tmp_path / "one" / "p.tif").format == "TIFF"
    for extra, message in ((["--format", "webp"], "expected one of png, tif, jpg, bmp"),
                           (["--format", "jpg", "--bits", "16"], "16 bits per sample are written as TIFF"),
                           (["--format", "jpg", "-o", str(tmp_path / "x.png")], "names its own")):
        args = [*pair, *extra] if "-o" in extra else [*pair, "-o", str(tmp_path / "bad") + "/", *extra]
        result = invoke("fuse", *args)
        assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "bad").exists() and not (tmp_path / "x.png").exists()


def test_eval_scores_another_methods_outputs_named_after_the_stems(tmp_path):
    """Fused files named `<stem>_fused.png`: eval says the template it sees and --fused-name scores them."""
    import shutil

    folder = _pair_folder(tmp_path / "set", size=(32, 40))
    (tmp_path / "other").mkdir()
    shutil.copy(folder / "vi" / "p.png", tmp_path / "other" / "p_fused.png")
    args = ["eval", "--ir", str(folder / "ir"), "--vi", str(folder / "vi"), "--fused", str(tmp_path / "other"),
            "--metrics", "EN", "-j", "1"]
    result = invoke(*args)
    assert result.exit_code == 2 and "pass --fused-name '{stem}_fused'" in result.output, result.output
    result = invoke(*args, "--fused-name", "{stem}_fused")
    assert result.exit_code == 0 and "1 scored, 0 skipped" in result.output, result.output
    result = invoke(*args, "--fused-name", "fused")
    assert result.exit_code == 2 and "expected exactly one {stem}" in result.output
    # only files the template names count: a bare p.png beside p_fused.png is not a duplicate of it
    # (listed, not scored), and is not scored in place of a p_x.png that is not there
    shutil.copy(folder / "ir" / "p.png", tmp_path / "other" / "p.png")
    result = invoke(*args, "--fused-name", "{stem}_fused")
    assert result.exit_code == 1 and "1 scored, 1 skipped" in result.output, result.output
    assert "p.png: does not fit the name template '{stem}_fused'; not scored" in result.output
    result = invoke(*args, "--fused-name", "{stem}_x")
    assert result.exit_code == 2 and "nothing could be scored" in result.output, result.output


def test_guess_template_names_the_common_affix():
    from litefuse.data.pairs import guess_template

    assert guess_template(["01_fused", "02_fused", "x"], ["01", "02", "03"]) == ("{stem}_fused", 2)
    assert guess_template(["F_01", "F_02"], ["01", "02"]) == ("F_{stem}", 2)
    assert guess_template(["01", "02"], ["01", "02"]) is None  # already named as the sources
    assert guess_template(["a", "b"], ["01"]) is None


def test_a_second_interrupt_while_the_progress_bar_stops_is_not_a_traceback(monkeypatch):
    # the first Ctrl-C closes the tracker; a second one while rich joins its display thread
    # printed "Exception ignored in: <generator ...>" and a traceback
    from rich.progress import Progress

    from litefuse.cli_common import progress_bar

    stop = Progress.stop

    def interrupted(self):
        stop(self)
        raise KeyboardInterrupt

    track = progress_bar("fusing")(range(3), 3)
    assert next(track) == 0
    monkeypatch.setattr(Progress, "stop", interrupted)
    track.close()  # raised KeyboardInterrupt out of the generator
    # at a normal end the same Ctrl-C is the user's first: it interrupts
    with pytest.raises(KeyboardInterrupt):
        list(progress_bar("end")(range(2), 2))
    monkeypatch.undo()
    assert list(progress_bar("again")(range(2), 2)) == [0, 1]


def test_eval_of_a_parent_of_fused_folders_says_how_eval_takes_one(tmp_path):
    """--fused PARENT (fused sets below it): the skip line told eval users to 'fuse it as its own
    pair folder'; and the table's first column read 'method' over a folder's name."""
    import shutil

    folder = _pair_folder(tmp_path / "set", size=(48, 56))
    (tmp_path / "out" / "SetA").mkdir(parents=True)
    shutil.copy(folder / "vi" / "p.png", tmp_path / "out" / "SetA" / "p.png")
    shutil.copy(folder / "vi" / "p.png", tmp_path / "out" / "p.png")
    result = invoke("eval", "--ir", str(folder / "ir"), "--vi", str(folder / "vi"), "--fused", str(tmp_path / "out"),
                    "--metrics", "EN", "-j", "1")
    assert result.exit_code == 1 and "1 scored, 1 skipped" in result.output, result.output
    assert "subfolder not searched" in result.output and "score it with --ir, --vi and --fused of its own" in result.output
    assert "fuse it as its own pair folder" not in result.output and "fused folder" in result.output
