"""The evaluation engine shared by eval, compare and the tools."""

from __future__ import annotations

import math

import sys

import pytest

from litefuse.evaluation import format_value, markdown_table, parallel_map, summarise, write_scores_csv


def _square_or_problem(task: int, context: dict) -> tuple[int, float | None]:
    """Module level (pickled into spawned workers); failures come back as values."""
    return (task, None) if task < 0 else (task, context["scale"] * task * task)


@pytest.mark.parametrize("jobs", [1, 2])
def test_parallel_map_keeps_input_order_and_context(jobs):
    tasks = [3, -1, 0, 5, 2]
    out = parallel_map(_square_or_problem, tasks, jobs, {"scale": 2.0})
    assert out == [(3, 18.0), (-1, None), (0, 0.0), (5, 50.0), (2, 8.0)]


def test_parallel_map_reports_progress_over_every_item():
    seen = []

    def progress(items, total):
        seen.append(total)
        return items

    assert parallel_map(_square_or_problem, [1, 2], 1, {"scale": 1.0}, progress) == [(1, 1.0), (2, 4.0)]
    assert seen == [2]


def _sigint_ignored(task: int, context) -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_parallel_map_workers_leave_ctrl_c_to_the_parent():
    """A terminal's Ctrl-C reaches every process of the group: workers ignore it (no traceback
    from a worker still importing torch), and the parent's own handler is left as it was."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    assert parallel_map(_sigint_ignored, [1, 2], 2) == [True, True]
    assert signal.getsignal(signal.SIGINT) is before


def test_parallel_map_workers_ignore_ctrl_c_without_inheriting_it(monkeypatch):
    """On Windows a spawned worker does not inherit the parent's ignored SIGINT: simulated by a
    parent whose change never happens, the workers still ignore Ctrl-C."""
    import signal

    monkeypatch.setattr(signal, "signal", lambda signum, handler: signal.getsignal(signum))
    assert parallel_map(_sigint_ignored, [1, 2], 2) == [True, True]


class _SignalledWhilePickled:
    """A context whose pickling (the parent starting a worker) sends the process ``signum``."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __reduce__(self):
        import os

        os.kill(os.getpid(), self.signum)
        return (int, ())


@pytest.mark.skipif(sys.platform == "win32", reason="signal masks are POSIX")
def test_a_ctrl_c_while_workers_start_is_held_then_raised_not_lost():
    """Starting a worker writes the pickled context while the child imports torch (seconds with
    networks in it): a Ctrl-C then was ignored and lost (compare -j 2 ran to the end, exit 0), a
    SIGTERM cut the pickle (a worker's UnpicklingError traceback). Now it is held and raised once
    the workers are up, and the parent's handlers are as they were."""
    import signal

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        parallel_map(_sigint_ignored, [1, 2], 2, _SignalledWhilePickled(signal.SIGINT))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def _held_signals(task: int, context) -> set:
    import signal

    return {signal.SIGINT, signal.SIGTERM} & signal.pthread_sigmask(signal.SIG_BLOCK, [])


@pytest.mark.skipif(sys.platform == "win32", reason="signal masks are POSIX")
def test_workers_never_see_the_terminals_ctrl_c_or_sigterm():
    """The workers inherit the mask they were started under: a Ctrl-C or SIGTERM to the process
    group is the parent's, which ends the pool in order."""
    import signal

    assert parallel_map(_held_signals, [1, 2], 2) == [{signal.SIGINT, signal.SIGTERM}] * 2


def _touch_slowly(task: int, folder) -> int:
    import time

    time.sleep(0.2)
    (folder / str(task)).touch()
    return task


def test_parallel_map_interrupted_drops_the_items_not_started(tmp_path):
    def interrupt(items, total):
        for item in items:
            raise KeyboardInterrupt
        yield  # pragma: no cover

    with pytest.raises(KeyboardInterrupt):
        parallel_map(_touch_slowly, list(range(40)), 2, tmp_path, interrupt)
    assert len(list(tmp_path.iterdir())) < 10  # the running items ended; the queued were cancelled


def test_summarise_is_mean_and_population_std():
    rows = [{"MI": 1.0, "SD": 10.0}, {"MI": 3.0, "SD": 10.0}]
    assert summarise(rows, ["MI", "SD"]) == {"MI": (2.0, 1.0), "SD": (10.0, 0.0)}
    assert all(math.isnan(v) for v in summarise([], ["MI"])["MI"])


def test_markdown_table_bolds_the_best_by_direction():
    means = {"a": {"MI": 2.0, "Nabf": 0.002}, "b": {"MI": 3.0, "Nabf": 0.001}}
    lines = markdown_table(means, ["MI", "Nabf"]).splitlines()
    assert lines[0] == "| method | MI ↑ | Nabf ↓ |"
    assert lines[2] == "| a | 2.0000 | 0.0020 |"
    assert lines[3] == "| b | **3.0000** | **0.0010** |"  # higher MI and lower Nabf win
    one = markdown_table({"a": {"MI": 2.0}}, ["MI"], stds={"a": {"MI": 0.5}}).splitlines()
    assert one[2] == "| a | 2.0000 ± 0.5000 |"  # a single row is not bolded
    assert format_value(2.5e-6, 1e-7) == "2.500e-06 ± 1.00e-07"
    # values that print the same are tied: both bold, not whichever is larger past the 4th decimal
    tied = markdown_table({"a": {"SSIM": 0.99501}, "b": {"SSIM": 0.995012}, "c": {"SSIM": 0.99}}, ["SSIM"]).splitlines()
    assert tied[2:] == ["| a | **0.9950** |", "| b | **0.9950** |", "| c | 0.9900 |"]


def test_scores_csv_keeps_full_precision(tmp_path):
    path = tmp_path / "s.csv"
    write_scores_csv(path, [{"image": "x", "MI": 1 / 3}], ["image", "MI"])
    assert path.read_text().splitlines() == ["image,MI", f"x,{1 / 3!r}"]


def test_a_nan_mean_is_explained_under_the_table():
    table = markdown_table({"a": {"SCD": float("nan"), "EN": 6.0}, "b": {"SCD": 1.2, "EN": 7.0}}, ["SCD", "EN"])
    assert "| a | nan | 6.0000 |" in table and table.splitlines()[-1].startswith("nan: the metric is undefined")
    assert "nan:" not in markdown_table({"a": {"EN": 6.0}}, ["EN"])
    assert "nan:" not in markdown_table({"a": {"PSNR": float("inf")}, "b": {"PSNR": 60.0}}, ["PSNR"])  # MSE 0: defined
    # but said: an all-black fused image gave cddfuse's PSNR -inf with no word on what it means
    table = markdown_table({"a": {"PSNR": float("-inf")}, "b": {"PSNR": 60.0}}, ["PSNR"])
    assert "| a | -inf |" in table and table.splitlines()[-1].startswith("inf / -inf: the reference formula's limit")


def test_eval_and_compare_default_to_the_same_worker_count(monkeypatch):
    """One rule for both commands: the free cores by load average, at most 4, decided when the
    command runs (not when the CLI module was imported)."""
    from litefuse import runtime
    from litefuse.evaluation import default_jobs

    monkeypatch.setattr(runtime, "available_cores", lambda: 16)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (1.0, 0.0, 0.0))
    assert default_jobs() == 4
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (14.6, 0.0, 0.0))
    assert default_jobs() == 1
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert default_jobs() == 2


def test_worker_count_is_capped_where_windows_caps_it(monkeypatch):
    """ProcessPoolExecutor refuses more than 61 workers on Windows: -j 100 was a ValueError there."""
    import concurrent.futures

    from litefuse import evaluation

    seen = []

    class Recorder:
        def __init__(self, workers, **kwargs):
            seen.append(workers)
            raise RuntimeError("recorded")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Recorder)
    for platform, expected in (("win32", 61), ("linux", 100)):
        monkeypatch.setattr(evaluation.sys, "platform", platform)
        with pytest.raises(RuntimeError, match="recorded"):
            parallel_map(_square_or_problem, list(range(200)), 100, {"scale": 1.0})
        assert seen[-1] == expected
