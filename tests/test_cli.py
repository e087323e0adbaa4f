"""The CLI end to end, through a subprocess: demo, pair, folder, and every bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLE_PAIRS, sample_pair_paths
from litefuse import Fuser
from litefuse.api import fuse_files
from litefuse.demo import synthetic_pair
from litefuse.io import read_image, save_image


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "litefuse", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> None:
    assert proc.returncode == code, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture()
def pair(tmp_path):
    ir, vi = synthetic_pair(96, 128)
    return save_image(tmp_path / "ir.png", ir), save_image(tmp_path / "vi.png", vi)


def test_demo_writes_images(tmp_path):
    proc = run("demo", "-o", str(tmp_path / "demo"), "-m", "gff")
    assert proc.returncode == 0, proc.stderr
    side = read_image(tmp_path / "demo" / "demo_side_by_side_gff.png")
    fused = read_image(tmp_path / "demo" / "demo_fused_gff.png")
    assert fused.shape == (240, 320, 3) and side.shape[1] > 3 * 320
    assert "side_by_side" in proc.stdout


def test_demo_adds_another_method_beside_an_earlier_demo(tmp_path):
    assert run("demo", "-o", str(tmp_path / "d"), "-m", "gff").returncode == 0
    before = (tmp_path / "d" / "demo_ir.png").stat().st_mtime_ns
    proc = run("demo", "-o", str(tmp_path / "d"), "-m", "max")
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (tmp_path / "d").iterdir()} == {
        "demo_ir.png", "demo_vi.png", "demo_fused_gff.png", "demo_fused_max.png",
        "demo_side_by_side_gff.png", "demo_side_by_side_max.png"}
    assert (tmp_path / "d" / "demo_ir.png").stat().st_mtime_ns == before  # the same source, not rewritten
    proc = run("demo", "-o", str(tmp_path / "d"), "-m", "max")  # the same method again: its result exists
    assert proc.returncode == 2 and "demo_fused_max.png: output exists" in proc.stderr


def test_demo_takes_several_methods_and_checks_them_all_first(tmp_path):
    out = tmp_path / "d"
    proc = run("demo", "-o", str(out), "-m", "max", "-m", "mean", "-m", "max")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "demo_fused_max.png", "demo_fused_mean.png", "demo_ir.png",
        "demo_side_by_side_max.png", "demo_side_by_side_mean.png", "demo_vi.png"]
    ir, vi = synthetic_pair()  # the demo's own scene, before 8-bit rounding
    for method in ("max", "mean"):  # each file holds its own method's result
        expected = np.round(np.clip(Fuser(method).fuse_images(ir, vi), 0, 1) * 255)
        assert np.abs(np.round(read_image(out / f"demo_fused_{method}.png") * 255) - expected).max() <= 1
    # an unknown name or an existing result among several: refused before anything is written
    proc = run("demo", "-o", str(tmp_path / "e"), "-m", "max", "-m", "nope")
    assert proc.returncode == 2 and "unknown model 'nope'" in proc.stderr and not (tmp_path / "e").exists()
    proc = run("demo", "-o", str(out), "-m", "gff", "-m", "max")
    assert proc.returncode == 2 and "demo_fused_max.png: output exists" in proc.stderr
    assert not (out / "demo_fused_gff.png").exists()


def test_default_demo_runs(tmp_path):
    proc = run("demo", "-o", str(tmp_path / "d"))
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "d").glob("demo_fused_*.png"))


def test_fuse_pair_colour_and_grey(tmp_path, pair):
    ir, vi = pair
    proc = run("fuse", "--ir", str(ir), "--vi", str(vi), "-o", str(tmp_path / "f.png"), "-m", "max")
    assert proc.returncode == 0, proc.stderr
    out = read_image(tmp_path / "f.png")
    assert out.shape == (96, 128, 3)
    proc = run("fuse", "--ir", str(ir), "--vi", str(vi), "-o", str(tmp_path / "g.png"), "-m", "max", "--grey")
    assert read_image(tmp_path / "g.png").shape == (96, 128)


def test_existing_output_not_overwritten_without_flag(tmp_path, pair):
    ir, vi = pair
    out = tmp_path / "f.png"
    out.write_bytes(b"keep me")
    assert_one_line_error(run("fuse", "--ir", str(ir), "--vi", str(vi), "-o", str(out), "-m", "max"), "f.png", "exists")
    assert out.read_bytes() == b"keep me"
    assert run("fuse", "--ir", str(ir), "--vi", str(vi), "-o", str(out), "-m", "max", "--overwrite").returncode == 0
    assert read_image(out).shape == (96, 128, 3)


def test_bad_inputs_one_line_each(tmp_path, pair):
    ir, vi = pair
    out = str(tmp_path / "o.png")
    base = ("fuse", "-m", "max", "-o", out)
    assert_one_line_error(run(*base, "--ir", str(tmp_path / "missing.png"), "--vi", str(vi)), "missing.png", "file not found")
    (tmp_path / "empty.png").write_bytes(b"")
    assert_one_line_error(run(*base, "--ir", str(tmp_path / "empty.png"), "--vi", str(vi)), "empty.png", "empty file")
    (tmp_path / "text.png").write_text("not an image")
    assert_one_line_error(run(*base, "--ir", str(tmp_path / "text.png"), "--vi", str(vi)), "text.png", "not an image")
    cut = tmp_path / "cut.png"
    cut.write_bytes(vi.read_bytes()[:400])
    assert_one_line_error(run(*base, "--ir", str(ir), "--vi", str(cut)), "cut.png")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "tiny.png")
    assert_one_line_error(run(*base, "--ir", str(tmp_path / "tiny.png"), "--vi", str(vi)), "tiny.png", "1×1")
    small = save_image(tmp_path / "small.png", np.zeros((50, 60), np.float32))
    assert_one_line_error(run(*base, "--ir", str(ir), "--vi", str(small)), "small.png", "size mismatch")
    colour_ir = save_image(tmp_path / "cir.png", np.random.default_rng(0).random((96, 128, 3)))
    assert_one_line_error(run(*base, "--ir", str(colour_ir), "--vi", str(vi)), "cir.png", "colour")
    assert_one_line_error(run("fuse", "-m", "max", "--ir", str(ir), "--vi", str(vi), "-o", str(ir), "--overwrite"), "input")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    assert_one_line_error(run(*base[:-1], str(blocker / "x.png"), "--ir", str(ir), "--vi", str(vi)), "not a directory")
    assert_one_line_error(run("fuse", "-m", "nope", "--ir", str(ir), "--vi", str(vi), "-o", out), "unknown model")
    assert not Path(out).exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_resize_vi_opt_in(tmp_path, pair):
    ir, _ = pair
    small_vi = save_image(tmp_path / "svi.png", synthetic_pair(48, 64)[1])
    proc = run("fuse", "-m", "mean", "--ir", str(ir), "--vi", str(small_vi), "-o", str(tmp_path / "r.png"), "--resize-vi")
    assert proc.returncode == 0, proc.stderr
    assert read_image(tmp_path / "r.png").shape == (96, 128, 3)
    assert "aspect ratio" not in proc.stderr  # 64×48 -> 128×96: the same shape
    wide_vi = save_image(tmp_path / "wvi.png", synthetic_pair(48, 96)[1])
    proc = run("fuse", "-m", "mean", "--ir", str(ir), "--vi", str(wide_vi), "-o", str(tmp_path / "w.png"), "--resize-vi")
    assert proc.returncode == 0 and f"note: {wide_vi}: resampled from 96×48 to 128×96, which changes its aspect ratio" in proc.stderr


def test_16bit_rgba_inputs(tmp_path):
    ir, vi = synthetic_pair(64, 80)
    Image.fromarray((ir * 65535).astype(np.uint16)).save(tmp_path / "ir16.png")
    rgba = np.concatenate([(vi * 255).astype(np.uint8), np.full((64, 80, 1), 200, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "vi.png")
    ir3 = np.repeat((ir * 255).astype(np.uint8)[..., None], 3, -1)
    Image.fromarray(ir3).save(tmp_path / "ir3.png")
    for irp in ("ir16.png", "ir3.png"):
        proc = run("fuse", "-m", "max", "--ir", str(tmp_path / irp), "--vi", str(tmp_path / "vi.png"), "-o", str(tmp_path / f"o_{irp}"))
        assert proc.returncode == 0, proc.stderr
        assert read_image(tmp_path / f"o_{irp}").shape == (64, 80, 3)


def test_folder_mode_reports_skips(tmp_path):
    root = tmp_path / "set"
    for i in range(3):
        ir, vi = synthetic_pair(40, 56, seed=i)
        save_image(root / "ir" / f"{i}.png", ir)
        save_image(root / "vi" / f"{i}.jpg" if i else root / "vi" / f"{i}.png", vi)
    save_image(root / "ir" / "orphan.png", np.zeros((40, 56), np.float32))
    (root / "vi" / "broken.png").write_bytes(b"\x89PNG\r\n")
    (root / "ir" / "broken.png").write_bytes((root / "ir" / "0.png").read_bytes())
    proc = run("fuse", "--input", str(root), "-o", str(tmp_path / "out"), "-m", "max")
    assert proc.returncode == 1, proc.stderr
    assert "3 fused, 2 skipped" in proc.stdout
    assert "orphan.png: no partner" in proc.stderr and "broken.png" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]



def test_thousands_of_problems_do_not_flood_the_console(tmp_path):
    """From a folder QA pass: 5,000 unpaired files printed 5,000 lines, burying the pairs that
    failed to read. The first ones are printed, and all of them listed in a file."""
    from litefuse.cli_fuse import SKIPS_FILE, SKIPS_SHOWN

    root = tmp_path / "set"
    ir, vi = synthetic_pair(40, 56)
    save_image(root / "ir" / "pair.png", ir)
    save_image(root / "vi" / "pair.png", vi)
    for i in range(SKIPS_SHOWN + 5):
        (root / "ir" / f"orphan{i:02d}.png").write_bytes((root / "ir" / "pair.png").read_bytes())
    out = tmp_path / "out"
    proc = run("fuse", "--input", str(root), "-o", str(out), "-m", "max")
    assert proc.returncode == 1 and f"1 fused, {SKIPS_SHOWN + 5} skipped" in proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("skipped:")]
    assert len(lines) == SKIPS_SHOWN + 1 and f"5 more; all {SKIPS_SHOWN + 5} listed in" in lines[-1], proc.stderr
    listed = (out / SKIPS_FILE).read_text(encoding="utf-8").splitlines()
    assert len(listed) == SKIPS_SHOWN + 5 and all("no partner in vi/" in line for line in listed)
    # resuming the finished run: its output already there counts as fused (exit 1, not 2: "none fused")
    proc = run("fuse", "--input", str(root), "-o", str(out), "-m", "max", "--skip-existing")
    assert proc.returncode == 1 and f"0 fused, 1 already there, {SKIPS_SHOWN + 5} skipped -> {out}" in proc.stdout, proc.stderr
    for orphan in root.glob("ir/orphan*.png"):  # a later run with few problems leaves no stale list
        orphan.unlink()
    proc = run("fuse", "--input", str(root), "-o", str(out), "-m", "max", "--skip-existing")
    assert proc.returncode == 0 and not (out / SKIPS_FILE).exists(), proc.stderr

def test_a_named_a_b_task_picks_its_default_and_an_unnamed_one_is_read_from_the_pixels(tmp_path):
    """Multi-exposure pairs fuse with `laplacian` (measured ahead of aenetv2 there), named as such
    or read as such from their pixels (a note says so); pairs whose defaults differ keep aenetv2 and a note."""
    from test_tasks import exposures, scans

    under, over = exposures()
    a, b = save_image(tmp_path / "a.png", under), save_image(tmp_path / "b.png", over)
    proc = run("fuse", "--a", str(a), "--b", str(b), "-o", str(tmp_path / "mef.png"), "--task", "mef")
    assert proc.returncode == 0 and "fused (laplacian)" in proc.stdout and not proc.stderr.strip(), proc.stderr
    reference = fuse_files(a, b, tmp_path / "laplacian.png", Fuser("laplacian", task="mef"))
    assert np.array_equal(read_image(tmp_path / "mef.png"), read_image(reference))
    proc = run("fuse", "--a", str(a), "--b", str(b), "-o", str(tmp_path / "any.png"))  # no task: read
    assert proc.returncode == 0 and "fused (laplacian)" in proc.stdout, proc.stderr
    assert proc.stderr.strip() == (f"note: {a} and {b} read as multi-exposure photographs (no task named): laplacian "
                                   "fuses them; --task mef|mff|medical or -m METHOD to say otherwise")
    assert np.array_equal(read_image(tmp_path / "any.png"), read_image(reference))
    save_image(tmp_path / "set" / "A" / "p.png", under), save_image(tmp_path / "set" / "B" / "p.png", over)
    proc = run("eval", "-i", str(tmp_path / "set"), "-o", str(tmp_path / "fused"), "--metrics", "EN")  # eval fuses as fuse
    assert proc.returncode == 0 and "1 fused" in proc.stdout and "laplacian" in proc.stdout, proc.stderr
    assert "read as multi-exposure photographs (no task named): laplacian fuses them; -m METHOD to say" in proc.stderr
    save_image(tmp_path / "set" / "A" / "q.png", scans()[0]), save_image(tmp_path / "set" / "B" / "q.png", scans()[1])
    proc = run("fuse", "-i", str(tmp_path / "set"), "-o", str(tmp_path / "mixed"))  # scans beside photographs
    assert proc.returncode == 0 and "fusing (aenetv2)" in proc.stderr and "2 fused" in proc.stdout, proc.stderr
    assert (f"note: the A/B pairs of {tmp_path / 'set'} read as medical scans and multi-exposure photographs, whose default "
            "methods differ: aenetv2 fuses them all") in proc.stderr, proc.stderr
    # notes come once the checks have passed: a run that cannot start shows its error alone
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(run("fuse", "-i", str(tmp_path / "set"), "-o", str(tmp_path / "afile")), "afile")
    assert_one_line_error(run("eval", "-i", str(tmp_path / "set"), "-o", str(tmp_path / "afile"), "--metrics", "EN"), "afile")
    assert_one_line_error(run("fuse", "--a", str(a), "--b", str(b), "-o", str(tmp_path / "x.gif"), "--precision", "fp16"), "x.gif")
    proc = run("fuse", "--a", str(a), "--b", str(b), "-o", str(tmp_path / "p16.png"), "--precision", "fp16")
    assert proc.returncode == 0 and "laplacian runs in float32" in proc.stderr and "read as multi-exposure" in proc.stderr


def test_models_table():
    proc = run("models")
    assert proc.returncode == 0
    for name in ("max", "gff", "wavelet", "laplacian", "mean"):
        assert name in proc.stdout
    line = next(row for row in proc.stdout.splitlines() if "aenetv2-ivif" in row)
    assert "2,917" in line and "ivif" in line.split("2,917")[1]  # params, and the default for ivif
    line = next(row for row in proc.stdout.splitlines() if "laplacian" in row)
    assert "mff,mef" in line  # the default for named multi-focus and multi-exposure pairs
    assert "74,193" in next(row for row in proc.stdout.splitlines() if "densefuse " in row and "lwc" not in row)


@pytest.mark.parametrize("dataset, stem", SAMPLE_PAIRS)
def test_sample_pairs_fuse_with_partner_size(shared, tmp_path, dataset, stem):
    ir, vi = sample_pair_paths(shared, dataset, stem)
    proc = run("fuse", "--ir", str(ir), "--vi", str(vi), "-o", str(tmp_path / "f.png"), "-m", "gff")
    assert proc.returncode == 0, proc.stderr
    out, src_ir, src_vi = read_image(tmp_path / "f.png"), read_image(ir), read_image(vi)
    assert out.shape[:2] == src_ir.shape[:2]
    assert out.ndim == src_vi.ndim  # MSRS / RoadScene colour stays colour, TNO stays grey


def test_usage_error_names_the_command_to_ask_for_help():
    # run as `python -m litefuse`: the hint is not "litefuse python -m litefuse --help"
    assert_one_line_error(run("--no-such-option"), "(see: litefuse --help)")
    assert_one_line_error(run("fuse", "--no-such-option"), "(see: litefuse fuse --help)")


def test_version():
    import litefuse

    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"litefuse {litefuse.__version__}", proc.stderr
    # the module the `litefuse` script runs is a command too (it ran nothing and exited 0)
    proc = subprocess.run([sys.executable, "-m", "litefuse.cli", "--version"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == f"litefuse {litefuse.__version__}", proc.stderr


def test_overwrite_and_skip_existing_together_is_a_usage_error(tmp_path, pair):
    proc = run("fuse", "--input", str(tmp_path), "-o", str(tmp_path / "out"), "--overwrite", "--skip-existing")
    assert_one_line_error(proc, "--overwrite replaces existing outputs and --skip-existing keeps them")


def test_a_folder_run_that_writes_nothing_says_so(tmp_path):
    # the output folder it created is removed again: the result line must not point at it
    root = tmp_path / "set"
    save_image(root / "ir" / "p.png", synthetic_pair(40, 56)[0])
    (root / "vi").mkdir()
    (root / "vi" / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    proc = run("fuse", "--input", str(root), "-o", str(tmp_path / "out"), "-m", "max")
    assert proc.returncode == 2 and "0 fused, 1 skipped -> nothing written" in proc.stdout, proc.stderr
    assert not (tmp_path / "out").exists()


def test_legacy_console_encoding_prints_what_it_can(tmp_path):
    """Windows' cp1252 (redirected output) lacks ↑ and non-Latin letters: they print as ? instead
    of a UnicodeEncodeError ending the command with an internal error."""
    import os

    missing = tmp_path / "数据" / "ir.png"
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    proc = subprocess.run([sys.executable, "-m", "litefuse", "fuse", "--ir", str(missing), "--vi", str(missing),
                           "-o", str(tmp_path / "f.png")], capture_output=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.decode("cp1252").strip().endswith("??/ir.png: file not found")


def test_threads_help_names_the_default_in_the_order_it_is_taken():
    # runtime.set_threads: $LITEFUSE_THREADS, else a count the user gave torch (OMP_NUM_THREADS), else the load
    from litefuse.cli import THREADS_HELP

    order = [THREADS_HELP.find(key) for key in ("$LITEFUSE_THREADS", "OMP_NUM_THREADS", "load average")]
    assert -1 not in order and order == sorted(order), THREADS_HELP


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_while_the_command_imports_torch_is_one_line_not_a_traceback(tmp_path):
    """Ctrl-C in the first second or two (the package importing torch) printed a 15-25 line
    traceback from the import machinery; now ``interrupted`` and exit code 130, as during a
    command. The signal is sent once the child has imported a torch submodule (``-X importtime``
    lines on stderr), so it lands inside the import on any machine."""
    import signal

    from litefuse._interrupt import running_as_command

    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "litefuse", "demo", "-o", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.split("|")[-1].strip().startswith("torch."):  # a torch submodule done: `import torch` still running
            proc.send_signal(signal.SIGINT)
            break
    out, rest = proc.communicate(timeout=120)
    said = [line for line in ("".join(lines) + rest).splitlines() if not line.startswith("import time:")]
    assert said == ["interrupted"], said[-30:]
    assert proc.returncode in (130, -signal.SIGINT) and not list(tmp_path.iterdir())
    assert running_as_command(["/usr/bin/litefuse", "fuse"]) and running_as_command(["-m"])
    assert not running_as_command(["my_script.py"]) and not running_as_command([])
