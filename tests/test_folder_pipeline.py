"""Folder fusion: pipelined and batched, identical to one pair at a time, bad pairs skipped alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from litefuse.api import Fuser
from litefuse.folder import fuse_folder
from litefuse.demo import synthetic_pair
from litefuse.errors import OptionError
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


# -- colour on the device: the path a GPU takes, forced on the CPU --------------------------


@pytest.mark.parametrize("task", ["ivif", "mef"])
def test_colour_on_device_equals_host_colour(task, one_thread):
    """Whole sources split, fused and merged as tensors give the host (numpy) result."""
    host, device = Fuser("aenetv2", task=task), Fuser("aenetv2", task=task, colour_on_device=True)
    assert not host.colour_on_device and device.colour_on_device
    ir, vi = synthetic_pair(48, 64, seed=7)
    a = ir if task == "ivif" else np.clip(vi[..., ::-1] * 0.8 + 0.1, 0, 1)  # a second colour source
    for grey in (False, True):
        expected = host.fuse_images(a, vi, grey=grey)
        got = device.fuse_images(a, vi, grey=grey)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=2e-6)
    np.testing.assert_allclose(device.fuse_images(ir, vi.mean(-1)), host.fuse_images(ir, vi.mean(-1)), atol=2e-6)


def test_colour_on_device_batches_and_tiles(one_thread):
    """A batch of whole pairs equals one pair at a time; mixed shapes and tiled frames fall back."""
    device = Fuser("aenetv2", colour_on_device=True, tile=40, overlap=8)
    host = Fuser("aenetv2", tile=40, overlap=8)
    pairs = [synthetic_pair(32, 36, seed=i) for i in range(3)] + [synthetic_pair(48, 64, seed=9)]  # last: tiled
    prepared = [device.prepare(ir, vi) for ir, vi in pairs]
    assert all(p.whole for p in prepared) and prepared[0].shape == (32, 36)
    outs = device.fuse_prepared(prepared)
    for (ir, vi), p, out in zip(pairs, prepared, outs):
        assert device.finish(out, p) is out  # finished on the device
        np.testing.assert_allclose(out, host.fuse_images(ir, vi), atol=2e-6)


def test_folder_with_colour_on_device(folder, tmp_path, one_thread):
    host = fuse_folder(folder, tmp_path / "host", Fuser("aenetv2-ivif"), batch_size=3)
    dev = fuse_folder(folder, tmp_path / "dev", Fuser("aenetv2-ivif", colour_on_device=True), batch_size=3)
    assert [p.name for p in dev.fused] == [p.name for p in host.fused] and len(dev.skipped) == 1
    for a, b in zip(host.fused, dev.fused):
        assert np.abs(read_image(a) - read_image(b)).max() <= 1 / 255 + 1e-6


def test_an_output_written_between_the_two_checks_counts_as_already_there(folder, tmp_path, monkeypatch, one_thread):
    # --skip-existing: another run wrote 2.png after the is-it-there test, before the output check,
    # which then said "output exists; pass --overwrite" and skipped the pair (a flaky CI test found it)
    import litefuse.folder as folder_module

    out = tmp_path / "out"
    real = folder_module.check_output_path

    def racing(path, *args, **kwargs):
        if Path(path).name == "2.png":
            save_image(path, np.full((48, 64), 0.5, np.float32))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(folder_module, "check_output_path", racing)
    report = fuse_folder(folder, out, "max", skip_existing=True)
    assert [p.name for p in report.existing] == ["2.png"] and len(report.fused) == 4 and len(report.skipped) == 1


@pytest.mark.parametrize("mode", ["skip_existing", "neither", "overwrite"])
def test_an_output_another_run_writes_meanwhile_is_kept(folder, tmp_path, mode, one_thread):
    # two `fuse --input DIR -o OUT` at once (a job array): both found an output missing, both
    # wrote it, the second replaced the first's without --overwrite and both counted it fused
    out = tmp_path / "out"
    theirs = np.full((48, 64), 0.5, np.float32)

    class Racing(Fuser):  # the other run writes every output while this one fuses
        def fuse_prepared(self, prepared, grey=False):
            for name in ("0", "1", "2", "4"):
                if not (out / f"{name}.png").exists():
                    save_image(out / f"{name}.png", theirs)
            return super().fuse_prepared(prepared, grey)

    report = fuse_folder(folder, out, Racing("max"), skip_existing=mode == "skip_existing", overwrite=mode == "overwrite")
    ref = save_image(tmp_path / "theirs.png", theirs).read_bytes()
    kept = [(out / f"{n}.png").read_bytes() == ref for n in "0124"]
    if mode == "overwrite":
        assert len(report.fused) == 5 and not any(kept)
    else:
        assert all(kept) and [p.name for p in report.fused] == ["3.png"]
        if mode == "skip_existing":
            assert sorted(p.name for p in report.existing) == ["0.png", "1.png", "2.png", "4.png"] and len(report.skipped) == 1
        else:
            assert sum("output exists" in s for s in report.skipped) == 4 and not report.existing
    assert not list(out.glob(".*"))


def test_skip_existing_resumes_a_folder_run(folder, tmp_path, one_thread):
    out = tmp_path / "out"
    first = fuse_folder(folder, out, "max")
    kept = (out / "2.png").stat().st_mtime_ns
    (out / "4.png").unlink()  # as if the run had been interrupted before it
    again = fuse_folder(folder, out, "max")  # without the flag every existing output is a skipped pair
    assert [p.name for p in again.fused] == ["4.png"] and len(again.skipped) == len(first.skipped) + 4
    (out / "4.png").unlink()
    resumed = fuse_folder(folder, out, "max", skip_existing=True)
    assert [p.name for p in resumed.fused] == ["4.png"] and len(resumed.existing) == 4
    assert (out / "2.png").stat().st_mtime_ns == kept and resumed.summary.startswith("1 fused, 4 already there, 1 skipped")
    with pytest.raises(OptionError, match="give one"):  # from a CLI QA pass: skip_existing won in silence
        fuse_folder(folder, out, "max", skip_existing=True, overwrite=True)


def _small_pairs(root, n: int):
    """``n`` synthetic 40×32 pairs ``00.png``, ``01.png``, ... in ``root/ir`` and ``root/vi``."""
    for i in range(n):
        ir, vi = synthetic_pair(32, 40, seed=i)
        save_image(root / "ir" / f"{i:02d}.png", ir)
        save_image(root / "vi" / f"{i:02d}.png", vi)
    return root


def test_failed_writes_do_not_keep_their_images(tmp_path, monkeypatch):
    """A full disk fails every write: each failure is kept as its message, not as an exception
    whose traceback holds the pair's images to the end of the run (measured before: 1,000
    640×480 pairs grew the process by 10 GB)."""
    import weakref

    import litefuse.folder
    from litefuse.errors import OutputError

    root = _small_pairs(tmp_path / "set", 6)
    alive = []
    earlier: list[weakref.ref] = []

    def full_disk(path, image, bits=8, overwrite=True):
        alive.append(sum(ref() is not None for ref in earlier))
        earlier.append(weakref.ref(image))
        raise OutputError(f"{path}: cannot write (No space left on device)")

    monkeypatch.setattr(litefuse.folder, "save_image", full_disk)
    report = fuse_folder(root, tmp_path / "out", "max", workers=1)
    assert not report.fused and len(report.skipped) == 6 and all("No space" in s for s in report.skipped)
    assert alive == [0] * 6


@pytest.mark.parametrize("pairs, written, pause", [(20, 2, 0.0), (5, 1, 0.5)])
def test_a_full_disk_stops_the_run(tmp_path, monkeypatch, pairs, written, pause):
    """Once the disk is full no later write can succeed: the run stops with one error saying how
    many images were written, instead of decoding and fusing every remaining pair to skip it.
    Also when a fast method fused every pair before the first write failed (``pause``: the first
    write is slow): it ended "1 fused, 4 skipped", exit 1; the writes queued behind are not tried."""
    import errno
    import time

    import litefuse.folder
    from litefuse.errors import OutputError

    root = _small_pairs(tmp_path / "set", pairs)
    calls = []

    def fills_up(path, image, bits=8, overwrite=True):
        calls.append(path)
        if len(calls) <= written:
            time.sleep(pause)  # meanwhile every pair is decoded, fused and queued
            return save_image(path, image, bits=bits)
        error = OutputError(f"{path}: cannot write (No space left on device)")
        error.errno = errno.ENOSPC
        raise error

    monkeypatch.setattr(litefuse.folder, "save_image", fills_up)
    with pytest.raises(OutputError, match=rf"No space left on device\); stopped, {written} fused images written before it"):
        fuse_folder(root, tmp_path / "out", "max", workers=1)
    assert len(calls) < 10 if not pause else len(calls) == written + 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i:02d}.png" for i in range(written)]


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    """A CI timeout or `kill` mid-folder: exit 143, whole outputs only, no temporary files left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "many"
    for i in range(60):
        ir, vi = synthetic_pair(256, 320, seed=i)
        save_image(root / "ir" / f"{i:02d}.png", ir)
        save_image(root / "vi" / f"{i:02d}.png", vi)
    out = tmp_path / "out"
    env = {**os.environ, "LITEFUSE_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "litefuse", "fuse", "--input", str(root), "-o", str(out), "-m", "gff"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob("*.png"))) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    names = sorted(p.name for p in out.iterdir())
    assert names and all(n.endswith(".png") and not n.startswith(".") for n in names), names
    for n in names:
        assert read_image(out / n).shape[:2] == (256, 320)


def test_webp_pairs_and_subfolders_are_not_passed_over_in_silence(tmp_path):
    from litefuse.data import find_pairs

    root = tmp_path / "set"
    ir, vi = synthetic_pair(32, 40, seed=0)
    save_image(root / "ir" / "a.png", ir)
    (root / "vi").mkdir(parents=True)
    from PIL import Image

    Image.fromarray((np.clip(vi, 0, 1) * 255).astype(np.uint8)).save(root / "vi" / "a.webp", lossless=True)
    save_image(root / "ir" / "day" / "b.png", ir)
    pairs, problems = find_pairs(root)
    assert [p.name for p in pairs] == ["a"]
    assert len(problems) == 1 and "day: subfolder not searched" in str(problems[0])
    # a folder named like its partner file: one problem (it was two, one saying "no partner")
    save_image(root / "vi" / "c.png", vi)
    (root / "ir" / "c.png").mkdir()
    pairs, problems = find_pairs(root)
    assert [str(p) for p in problems] == [f"{root / 'vi' / 'c.png'}: no partner in ir/ (ir/c.png is a folder)",
                                          f"{root / 'ir' / 'day'}: subfolder not searched (pairs are the files directly in "
                                          "ir/; fuse it as its own pair folder)"]


def test_options_a_fuser_would_ignore_are_refused(folder, tmp_path):
    """weights=/device= beside a loaded Fuser are an error (as in fuse()), not dropped in silence;
    batch_size and workers must be whole numbers; nothing is written."""
    fuser = Fuser("mean", threads=1)
    for kwargs in ({"device": "cuda"}, {"weights": "w.safetensors"}, {"batch_size": "2"}, {"workers": 1.5}, {"batch_size": 0}):
        with pytest.raises(OptionError):
            fuse_folder(folder, tmp_path / "out", fuser, **kwargs)
    assert not (tmp_path / "out").exists()


def test_threads_apply_to_a_loaded_fuser(folder, tmp_path):
    import torch

    before = torch.get_num_threads()
    fuser = Fuser("mean", threads=2)
    try:
        fuse_folder(folder, tmp_path / "out", fuser, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_parent_of_pair_folders_fuses_each_into_its_own_output_folder(folder, tmp_path):
    """``fuse --input data/ivif`` was 'no source sub-folders found'; now each pair folder below
    goes to ``OUT/<its path>/``, as fusing it alone would."""
    import shutil

    from litefuse.errors import InputError, OutputError

    parent = tmp_path / "sets"
    shutil.copytree(folder, parent / "one")
    shutil.copytree(folder, parent / "deeper" / "two")
    report = fuse_folder(parent, tmp_path / "out", "max")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in report.fused) == sorted(
        f"{sub}/{i}.png" for sub in ("one", "deeper/two") for i in range(5))
    alone = fuse_folder(folder, tmp_path / "alone", "max")
    for path in alone.fused:
        for sub in ("one", "deeper/two"):
            np.testing.assert_array_equal(read_image(tmp_path / "out" / sub / path.name), read_image(path))
    assert len(report.skipped) == 2  # each folder's bad pair
    with pytest.raises(OutputError, match="is a source folder"):
        fuse_folder(parent / "one", parent / "one" / "ir", "max")  # results beside the sources
    for sub in ("A", "B"):
        save_image(parent / "mff" / sub / "m.png", np.zeros((16, 16), np.float32))
    with pytest.raises(InputError, match="holds both infrared/visible and A/B pair folders"):
        fuse_folder(parent, tmp_path / "mixed", "max")


def test_a_file_where_a_pair_folders_output_folder_goes_is_an_output_error(folder, tmp_path):
    """``fuse --input PARENT -o OUT`` with a file at ``OUT/<pair folder>``: an internal error
    (FileExistsError from mkdir) instead of one ``error:`` line."""
    import shutil

    from litefuse.errors import OutputError

    parent = tmp_path / "sets"
    shutil.copytree(folder, parent / "one")
    shutil.copytree(folder, parent / "two")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "two").write_text("not a folder")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        fuse_folder(parent, tmp_path / "out", "max")


def test_a_run_that_writes_nothing_leaves_no_empty_folders(folder, tmp_path):
    """Every pair skipped (here: only the broken pair is given): the output folders the run
    created are removed again, so '0 fused' leaves nothing behind; a folder that existed stays."""
    only_bad = tmp_path / "bad"
    for side in ("ir", "vi"):
        (only_bad / side).mkdir(parents=True)
        (only_bad / side / "bad.png").write_bytes((folder / side / "bad.png").read_bytes())
    (only_bad / "vi" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    report = fuse_folder(only_bad, tmp_path / "out" / "deep", "max")
    assert not report.fused and len(report.skipped) == 1
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    fuse_folder(only_bad, tmp_path / "kept", "max")
    assert (tmp_path / "kept").is_dir()
    report = fuse_folder(folder, tmp_path / "out" / "deep", "max")  # something written: the folders stay
    assert len(report.fused) == 5 and (tmp_path / "out" / "deep" / "0.png").is_file()


def test_folder_output_suffixes():
    """8 bits: PNG by default; 16 bits: TIFF by default and only (16-bit colour is TIFF only)."""
    from litefuse.folder import output_suffix

    assert output_suffix() == ".png" and output_suffix(None, 16) == ".tif"
    assert output_suffix(".JPG") == ".jpg" and output_suffix("tif", 16) == ".tif"
    for fmt in ("png", "jpg", "bmp"):
        with pytest.raises(OptionError, match="16 bits"):
            output_suffix(fmt, 16)
