"""A/B pairs of unnamed task: the task read from the pixels picks the default method."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

import litefuse
from litefuse.data.datasets import collect_pairs
from litefuse.demo import synthetic_pair
from litefuse.io import read_image, save_image
from litefuse.tasks import SCAN_BACKGROUND, default_model, read_ab_task, read_folder_tasks, read_pair_task, read_task_note, shared_task


def photo(seed: int = 0, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    return synthetic_pair(*size, seed=seed)[1]


def exposures(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An under- and an over-exposed shot of one scene."""
    vi = photo(seed)
    return vi * 0.3, np.clip(vi * 1.8, 0, 1)


def focus_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The scene sharp on its left half in one shot and on its right half in the other."""
    vi = photo(seed)
    blurred = (vi + np.roll(vi, 1, 0) + np.roll(vi, -1, 0) + np.roll(vi, 1, 1) + np.roll(vi, -1, 1)) / 5
    left, right = vi.copy(), vi.copy()
    left[:, 64:], right[:, :64] = blurred[:, 64:], blurred[:, :64]
    return left, right


def scans(size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """An MRI-like grey slice and a PET-like colour one: a head on a black background."""
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    head = (yy**2 + xx**2 < 0.3**2).astype(np.float32)
    mri = head * (0.5 + 0.3 * np.sin(20 * xx))
    pet = np.stack([head * 0.9, head * 0.3 * (yy > 0), head * 0.1], -1)
    return mri, pet


def test_read_ab_task_tells_scans_exposures_and_focus_apart():
    assert read_ab_task(*exposures()) == "mef"
    assert read_ab_task(*exposures()[::-1]) == "mef"  # either order
    assert read_ab_task(*focus_pair()) == "mff"
    assert read_ab_task(*scans()) == "medical"
    # a dark photograph is not a scan: the background share counts in *each* source
    dark, bright = exposures()
    dark[: int(dark.shape[0] * SCAN_BACKGROUND) + 10] = 0
    assert read_ab_task(dark, bright) == "mef"


def test_read_ab_task_names_the_task_of_every_development_pair(shared):
    """All 341 A/B pairs of the development data (MFIFB, MEFB, MRI_CT/PET/SPECT) read as their own task."""
    found = Counter()
    for task in ("mef", "mff", "medical"):
        for pair in collect_pairs([shared / "data" / task]):
            found[task, read_pair_task(pair.a, pair.b)] += 1
    assert found == {("mef", "mef"): 100, ("mff", "mff"): 105, ("medical", "medical"): 136}


def _ab_folder(root, pairs) -> None:
    for i, (a, b) in enumerate(pairs):
        save_image(root / "A" / f"p{i}.png", a)
        save_image(root / "B" / f"p{i}.png", b)


def test_read_folder_tasks_reads_each_set_and_shares_a_default_where_the_tasks_do(tmp_path):
    _ab_folder(tmp_path / "mef", [exposures(s) for s in range(3)])
    _ab_folder(tmp_path / "photos", [exposures(), focus_pair()])
    _ab_folder(tmp_path / "mixed", [exposures(), scans()])
    assert read_folder_tasks(tmp_path / "mef") == ("mef",)
    # multi-exposure beside multi-focus pairs: one default (the pyramid) fuses both
    assert read_folder_tasks(tmp_path / "photos") == ("mef", "mff") and shared_task(("mef", "mff")) in ("mef", "mff")
    assert read_folder_tasks(tmp_path / "mixed") == ("medical", "mef") and shared_task(("medical", "mef")) is None
    assert shared_task(()) is None
    (tmp_path / "mef" / "A" / "p1.png").write_bytes(b"x")  # unreadable: left to the run, the others decide
    assert read_folder_tasks(tmp_path / "mef") == ("mef",)
    # a parent: every set is read, however many pairs its neighbours hold
    parent = tmp_path / "parent"
    _ab_folder(parent / "a_day", [exposures(s) for s in range(6)])
    _ab_folder(parent / "b_scan", [scans()])
    _ab_folder(parent / "c_day", [exposures(s) for s in range(6)])
    assert read_folder_tasks(parent) == ("medical", "mef")
    note = read_task_note(("mef", "mff"), "laplacian", "the A/B pairs of x")
    assert note.startswith("note: the A/B pairs of x read as multi-exposure and multi-focus photographs (no task named): laplacian")
    note = read_task_note(("medical", "mef"), "aenetv2", "the A/B pairs of x")
    assert note.startswith("note: the A/B pairs of x read as medical scans and multi-exposure photographs, whose default methods differ")


def test_read_ab_task_measures_against_the_pair_peak():
    """12-bit data in 16-bit files reads near-black (at most 6 % grey) but is no scan."""
    under, over = exposures()
    left, right = focus_pair()
    assert read_ab_task(under * 0.0625, over * 0.0625) == "mef"
    assert read_ab_task(left * 0.0625, right * 0.0625) == "mff"
    assert read_ab_task(np.zeros((16, 16)), np.zeros((16, 16))) == "medical"  # all black: nothing to read, no error


def test_reading_a_pair_leaves_its_notes_to_the_run(tmp_path):
    """The pixels are read quietly: the once-per-process note on 12-bit data is said by the fusion's own read."""
    import warnings

    from litefuse.io import OnceWarning, unsaid_notes

    a, b = (tmp_path / n for n in ("a.png", "b.png"))
    for path, image in zip((a, b), exposures()):
        Image.fromarray((image.mean(2) * 4095).astype(np.uint16)).save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_pair_task(a, b) == "mef"
        assert not caught
        (tmp_path / "bad.png").write_bytes(b"x")
        assert read_pair_task(tmp_path / "bad.png", b) is None  # the run says what is wrong, in its order
        with unsaid_notes():
            read_image(a)
        assert not caught
        read_image(a)  # the run's read: said now
    assert any(issubclass(w.category, OnceWarning) and "-bit data?" in str(w.message) for w in caught)


def test_a_quiet_read_in_one_thread_leaves_other_threads_notes_said(tmp_path):
    """A task read in one thread (a Fuser shared by threads) does not silence another thread's read."""
    import threading
    import warnings

    from litefuse.io import OnceWarning, unsaid_notes

    path = tmp_path / "a.png"
    Image.fromarray((exposures()[0].mean(2) * 4095).astype(np.uint16)).save(path)
    entered, done = threading.Event(), threading.Event()

    def quiet_reader() -> None:
        with unsaid_notes():
            read_image(path)
            entered.set()
            done.wait(30)

    worker = threading.Thread(target=quiet_reader)
    worker.start()
    try:
        assert entered.wait(30)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            read_image(path)  # this thread's read, while the other is inside unsaid_notes
    finally:
        done.set()
        worker.join()
    assert any(issubclass(w.category, OnceWarning) and "-bit data?" in str(w.message) for w in caught)


def test_fuse_and_fuse_folder_read_an_unnamed_a_b_task(tmp_path):
    """Without a task or a method, A/B pairs fuse with the default of the task their pixels show:
    the same output as naming it."""
    under, over = exposures()
    got = litefuse.fuse(under, over, task="ab")
    assert default_model("mef") != default_model("ab")  # else this test shows nothing
    assert np.array_equal(got, litefuse.fuse(under, over, model=default_model("mef"), task="mef"))
    mri, pet = scans()
    assert np.array_equal(litefuse.fuse(mri, pet, task="ab"), litefuse.fuse(mri, pet, model=default_model("medical"), task="medical"))
    # a named method is kept
    assert np.array_equal(litefuse.fuse(under, over, model="aenetv2", task="ab"), litefuse.fuse(under, over, model="aenetv2", task="mef"))
    _ab_folder(tmp_path / "set", [exposures(s) for s in range(2)])
    report = litefuse.fuse_folder(tmp_path / "set", tmp_path / "out")
    assert len(report.fused) == 2
    for i in range(2):
        expected = litefuse.fuse(tmp_path / "set" / "A" / f"p{i}.png", tmp_path / "set" / "B" / f"p{i}.png",
                                 model=default_model("mef"), task="mef")
        assert np.abs(read_image(tmp_path / "out" / f"p{i}.png") - expected).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("task", ["mef", "mff", "medical"])
def test_every_read_task_has_a_default(task):
    assert default_model(task)


def test_fuse_files_picks_the_method_from_the_sources_it_reads_after_its_checks(tmp_path):
    """The command line's A/B default: one read of each file, and none where the output is refused first."""
    from litefuse import Fuser
    from litefuse.api import fuse_files
    from litefuse.errors import OutputError

    under, over = exposures()
    a, b = save_image(tmp_path / "a.png", under), save_image(tmp_path / "b.png", over)
    seen = []

    def pick(x, y):
        seen.append((x.shape, y.shape))
        return Fuser(default_model(read_ab_task(x, y)), task="mef")

    out = fuse_files(a, b, tmp_path / "f.png", pick)
    assert len(seen) == 1 and np.array_equal(read_image(out), read_image(fuse_files(a, b, tmp_path / "g.png", Fuser("laplacian", task="mef"))))
    with pytest.raises(OutputError, match="output exists"):
        fuse_files(a, b, out, pick)
    assert len(seen) == 1  # refused before reading
