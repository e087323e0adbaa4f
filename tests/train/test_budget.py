"""``litefuse train`` under a time budget and with bad inputs (issue #23): the budget bounds the
pre-pass, a run without a step writes nothing, time-based checkpoints, no trace of a failed start,
skipped unreadable pairs, data paths from a config's folder or ``$LITEFUSE_SHARED``, and one-line
errors (exit 2) for every user-facing failure."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
from conftest import to_u8
from PIL import Image
from typer.testing import CliRunner

from litefuse.cli import app
from litefuse.demo import synthetic_pair
from litefuse.train import budget
from litefuse.train.budget import (
    CheckpointSchedule,
    Deadline,
    NoProgressError,
    TimeBudgetError,
    require_progress,
)
from litefuse.train.trainset import config_base, resolve_data_path

pytestmark = pytest.mark.usefixtures("one_thread")

GREY = "lwc-densefuse"  # a grey (auto-encoder) objective: no pre-pass
# a tiny AE-Netv2 whose "bank" pre-pass scores 32×32 pairs
TINY_AENET = ["--set", "model_kwargs.width=8", "--set", "model_kwargs.skip_width=4", "--set", "model_kwargs.num_blocks=2",
              "--set", "model_kwargs.fuse_at=1", "--set", "objective.bank_work_size=32"]


def _write_pairs(root: Path, n: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> Path:
    """``n`` synthetic 32×32 pairs in ``root/{ir,vi}``; returns ``root``."""
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ir, vi = synthetic_pair(*size, seed=seed + i)
        Image.fromarray(to_u8(ir)).save(root / "ir" / f"p{i:02d}.png")
        Image.fromarray(to_u8(vi)).save(root / "vi" / f"p{i:02d}.png")
    return root


def _train(*args: str, model: str = GREY):
    """Invoke ``litefuse train MODEL`` with tiny, quiet settings (crop 24, batch 2, no TensorBoard)."""
    base = ["train", model, "--no-progress", "-b", "2", "--set", "crop=24", "--set", "tensorboard=false",
            "--set", "threads=1", "--set", "val_fraction=0.25"]
    return CliRunner().invoke(app, [*base, *args])


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------------------------
# pure helpers


def test_deadline_and_the_no_step_errors():
    assert not Deadline(None).expired() and Deadline(None).remaining_s() == float("inf")
    spent = Deadline(1.0, start=0.0, label="runs/x")  # monotonic time is far past 60 s after 0
    assert spent.expired()
    msg = str(spent.exhausted("pre-pass: 2 of 5 pairs cached"))
    assert msg == ("runs/x: time budget ran out before the first optimisation step (pre-pass: 2 of 5 pairs cached); "
                   "run again or with a larger --max-minutes to continue")
    require_progress(1, "time budget", spent)  # a step was taken: fine
    with pytest.raises(TimeBudgetError, match="before the first optimisation step; run again"):
        require_progress(0, "time budget", spent)
    with pytest.raises(NoProgressError, match="interrupted before the first optimisation step"):
        require_progress(0, "interrupted", spent)


def test_checkpoint_schedule_by_steps_and_by_time():
    now = [0.0]
    schedule = CheckpointSchedule(every_steps=3, minutes=1.0, clock=lambda: now[0])
    assert [schedule.due(s) for s in (1, 2, 3)] == [False, False, True]
    now[0] = 59.0
    assert not schedule.due(4)
    now[0] = 61.0  # a minute since the last save (step 3, at 0 s)
    assert schedule.due(5) and not schedule.due(7)  # ... and this save restarts the timer
    now[0] = 121.0
    assert schedule.due(8)
    off = CheckpointSchedule(0, 0.0, clock=lambda: now[0])
    now[0] = 1e9
    assert not any(off.due(s) for s in range(1, 10))


def test_data_paths_resolve_against_the_config_folder_and_litefuse_shared(tmp_path, monkeypatch):
    monkeypatch.delenv("LITEFUSE_SHARED", raising=False)
    cfg_dir = tmp_path / "cfg"
    assert resolve_data_path("pairs", cfg_dir) == str(cfg_dir / "pairs")
    assert resolve_data_path("../shared/data/ivif", cfg_dir) == str(tmp_path / "shared" / "data" / "ivif")
    assert resolve_data_path(tmp_path / "abs", cfg_dir) == str(tmp_path / "abs")
    # a packaged config's paths start from the checkout it was written for (../shared beside it)
    from litefuse.train import default_config_path

    packaged = default_config_path(GREY)
    assert config_base(packaged) == packaged.resolve().parents[3] and config_base(cfg_dir / "c.toml") == cfg_dir.resolve()
    monkeypatch.setenv("LITEFUSE_SHARED", str(tmp_path / "elsewhere"))
    assert resolve_data_path("../shared/data/ivif", cfg_dir) == str(tmp_path / "elsewhere" / "data" / "ivif")
    assert resolve_data_path("../sharedX/d", cfg_dir) == str(tmp_path / "sharedX" / "d")  # only the ../shared prefix


# --------------------------------------------------------------------------------------------
# the time budget


def test_budget_bounds_the_prepass_and_the_next_run_reuses_its_cache(tmp_path, monkeypatch):
    """The pre-pass stops at the deadline (here: after two pairs), writes no weights, exits 2;
    the pairs it finished are cached and the next run reuses them."""
    monkeypatch.setenv("LITEFUSE_TEACHER_CACHE", str(tmp_path / "cache"))
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    out = tmp_path / "run"
    checks = iter(range(100))
    real = budget.Deadline.expired
    monkeypatch.setattr(budget.Deadline, "expired", lambda self: next(checks) >= 2)  # True from the third pair on
    args = ["--data", str(data), "-o", str(out), "--max-steps", "1", *TINY_AENET]
    cut = _train(*args, "--max-minutes", "30", model="aenetv2")
    assert cut.exit_code == 2, cut.output
    assert _error_lines(cut.output) == [
        f"error: {out}: time budget ran out before the first optimisation step (pre-pass: 2 of 4 pairs cached); "
        "run again or with a larger --max-minutes to continue"
    ]
    assert not out.exists()  # no weights, no half-made run folder
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2

    monkeypatch.setattr(budget.Deadline, "expired", real)
    again = _train(*args, model="aenetv2")
    assert again.exit_code == 0, again.output
    assert "2 cached, 1 computed" in again.output  # 3 training pairs, two from the cut run
    # each split's line says which it is (two alike lines, "teacher bank (mean): ...", read as one repeated)
    assert ", training: 3 pairs, 2 cached, 1 computed" in again.output and ", validation: 1 pairs, 0 cached, 1 computed" in again.output
    assert (out / "model.safetensors").is_file()


def test_a_budget_spent_before_the_first_step_writes_no_weights(tmp_path):
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    out = tmp_path / "run"
    result = _train("--data", str(data), "-o", str(out), "--max-minutes", "0.000001")
    assert result.exit_code == 2, result.output
    assert _error_lines(result.output) == [
        f"error: {out}: time budget ran out before the first optimisation step; run again or with a larger --max-minutes to continue"
    ]
    assert not out.exists() and "Traceback" not in result.output


# --------------------------------------------------------------------------------------------
# checkpoints and failed starts


def test_a_failure_before_the_first_checkpoint_leaves_no_trace(tmp_path):
    """A run that fails at its first validation (after config.json and log.csv were written)
    removes them and the folder it created; a folder that existed keeps only its own files."""
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    args = ["--data", str(data), "--max-steps", "3", "--set", "monitor='nope'"]
    fresh = tmp_path / "a" / "b" / "run"
    result = _train(*args, "-o", str(fresh))
    assert result.exit_code == 2 and "monitor 'nope'" in result.output, result.output
    assert not (tmp_path / "a").exists()  # the parents it made go too

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = _train(*args, "-o", str(mine))
    assert result.exit_code == 2
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]

    # with a checkpoint written, the run is kept (resumable)
    kept = tmp_path / "kept"
    result = _train(*args, "-o", str(kept), "--set", "checkpoint_every=1")
    assert result.exit_code == 2 and (kept / "last.pt").is_file() and not (kept / "model.safetensors").exists()


# --------------------------------------------------------------------------------------------
# bad data, bad paths, bad output folders


def test_unreadable_pairs_are_skipped_and_reported(tmp_path):
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    (data / "ir" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (data / "vi" / "bad.png").write_bytes((data / "vi" / "p00.png").read_bytes())
    ir, vi = synthetic_pair(32, 40, seed=9)
    Image.fromarray(to_u8(ir)).save(data / "ir" / "wide.png")
    Image.fromarray(to_u8(vi[:, :32])).save(data / "vi" / "wide.png")  # 32×32 partner of a 40×32 image
    out = tmp_path / "run"
    result = _train("--data", str(data), "-o", str(out), "--max-steps", "1")
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2, result.output
    assert any(line.startswith(f"skipped: {data / 'ir' / 'bad.png'}: ") for line in skipped)
    assert any(line.startswith(f"skipped: {data / 'vi' / 'wide.png'}: size mismatch") for line in skipped)
    assert "(2 skipped)" in result.output and (out / "model.safetensors").is_file()

    only_bad = tmp_path / "bad" / "SYN"
    for sub in ("ir", "vi"):
        (only_bad / sub).mkdir(parents=True)
        (only_bad / sub / "x.png").write_bytes(b"garbage")
    result = _train("--data", str(only_bad), "-o", str(tmp_path / "run2"), "--max-steps", "1")
    assert result.exit_code == 2 and _error_lines(result.output) == [f"error: no usable training pair in {only_bad} (1 skipped)"]
    assert not (tmp_path / "run2").exists()


def test_config_data_paths_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    cfg_dir = tmp_path / "project"
    _write_pairs(cfg_dir / "pairs" / "SYN", 4)
    config = cfg_dir / "tiny.toml"
    config.write_text(f'model = "{GREY}"\ndata = ["pairs"]\nmax_steps = 1\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("LITEFUSE_SHARED", raising=False)
    result = _train("-c", str(config), "-o", "run")
    assert result.exit_code == 0, result.output
    assert json.loads((elsewhere / "run" / "config.json").read_text())["data"] == [str(cfg_dir / "pairs")]

    # ../shared/... follows $LITEFUSE_SHARED
    shared = tmp_path / "my-shared"
    _write_pairs(shared / "data" / "SYN", 4)
    config.write_text(f'model = "{GREY}"\ndata = ["../shared/data"]\nmax_steps = 1\n')
    monkeypatch.setenv("LITEFUSE_SHARED", str(shared))
    result = _train("-c", str(config), "-o", "run2")
    assert result.exit_code == 0, result.output
    assert json.loads((elsewhere / "run2" / "config.json").read_text())["data"] == [str(shared / "data")]

    # a missing folder names the path tried and how to point to the data
    monkeypatch.setenv("LITEFUSE_SHARED", str(tmp_path / "nowhere"))
    result = _train("-c", str(config), "-o", "run3")
    assert result.exit_code == 2 and _error_lines(result.output) == [
        f"error: {tmp_path / 'nowhere' / 'data'}: data directory not found; point to the data with --data DIR, "
        "or set LITEFUSE_SHARED to the folder that holds data/"
    ]
    assert not (elsewhere / "run3").exists()


def test_the_packaged_config_reads_shared_data_from_litefuse_shared(tmp_path, monkeypatch):
    from litefuse.cli_train import _build_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITEFUSE_SHARED", str(tmp_path / "sh"))
    cfg = _build_config(GREY, None, None, tmp_path / "o", False, None, None, 1, None, None, None, None)
    assert cfg.data and all(Path(d).is_relative_to(tmp_path / "sh" / "data") for d in cfg.data)


def test_an_unwritable_out_folder_is_one_line_and_exit_2(tmp_path):
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, not a folder")
    for out in (blocker / "run", blocker):  # under a file (fails for root too), and a file itself
        result = _train("--data", str(data), "-o", str(out), "--max-steps", "1")
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines() == _error_lines(result.output) and len(_error_lines(result.output)) == 1
        assert str(out) in result.output and "internal error" not in result.output
    assert blocker.read_text() == "a regular file, not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_parent_is_one_line_and_exit_2(tmp_path):
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        result = _train("--data", str(data), "-o", str(parent / "run"), "--max-steps", "1")
    finally:
        parent.chmod(0o700)
    assert result.exit_code == 2 and _error_lines(result.output) == [
        f"error: {parent / 'run'}: cannot write the run folder (Permission denied); choose another --output"
    ]


def test_a_run_never_goes_into_a_data_folder(tmp_path):
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    for out in (data, data / "ir"):
        result = _train("--data", str(data), "-o", str(out), "--max-steps", "1")
        assert result.exit_code == 2 and _error_lines(result.output) == [
            f"error: {out}: is a training data folder; write the run elsewhere (--output)"], result.output
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    result = _train("--data", str(data), "--set", "val_fraction=0.99", "-o", str(tmp_path / "r"), "--max-steps", "1")
    assert result.exit_code == 2 and "val_fraction 0.99 left none of 4 pairs for training" in result.output, result.output


def test_pairs_dropped_as_too_small_are_counted_once_per_pair(tmp_path):
    """A grey (auto-encoder) run drops both images of a small pair: one skipped pair, never a negative count."""
    data = _write_pairs(tmp_path / "data" / "SYN", 4, size=(32, 32))
    _write_pairs(tmp_path / "small" / "SYN", 4, size=(16, 16), seed=10)
    for sub in ("ir", "vi"):
        for i in range(4):
            (tmp_path / "small" / "SYN" / sub / f"p{i:02d}.png").rename(data / sub / f"s{i:02d}.png")
    result = _train("--data", str(data), "-o", str(tmp_path / "run"), "--max-steps", "1", "--set", "small_images='skip'",
                    "--set", "val_fraction=0.5")
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if line.startswith("skipped: ")]) == 8, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("data: ")]
    assert line.startswith("data: ") and "-" not in line.split("->")[0], line
    train, val = (int(part.split()[0]) for part in line[len("data: "):].split(" / ")[:2])
    assert train + val == 4 and "(4 skipped)" in line, line


def test_files_without_a_partner_are_reported_as_fuse_does(tmp_path):
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    (data / "ir" / "lonely.png").write_bytes((data / "ir" / "p00.png").read_bytes())
    result = _train("--data", str(data), "-o", str(tmp_path / "run"), "--max-steps", "1")
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped: ")]
    assert skipped == [f"skipped: {data / 'ir' / 'lonely.png'}: no partner in vi/"], result.output
    assert "(1 skipped)" in result.output


@pytest.mark.parametrize("option, value, message", [
    ("--batch-size", "0", "error: --batch-size: batch_size must be >= 1, got 0"),
    ("--max-minutes", "-1", "error: --max-minutes: max_minutes must be > 0, got -1.0"),
    ("--seed", "-1", "error: --seed: seed must be an integer in [0, 2^63), got -1"),
])
def test_a_bad_option_value_names_the_option(tmp_path, option, value, message):
    data = _write_pairs(tmp_path / "data" / "SYN", 2)
    result = _train("--data", str(data), "-o", str(tmp_path / "run"), "--max-steps", "1", option, value)
    assert result.exit_code == 2 and _error_lines(result.output) == [message], result.output
    assert not (tmp_path / "run").exists()


def test_an_option_and_a_set_of_the_same_setting_are_refused(tmp_path):
    """--set data=... quietly won over --data (and so for every setting with its own option)."""
    data = _write_pairs(tmp_path / "data" / "SYN", 2)
    for extra, message in [
        (["--set", "data=['/nonexistent']"], "error: --set data=... and --data both set data; give one"),
        (["--set", "batch_size=2", "-b", "4"], "error: --set batch_size=... and --batch-size both set batch_size; give one"),
    ]:
        result = _train("--data", str(data), "-o", str(tmp_path / "run"), "--max-steps", "1", *extra)
        assert result.exit_code == 2 and _error_lines(result.output) == [message], result.output
        assert not (tmp_path / "run").exists()


def test_a_config_without_a_run_length_takes_it_from_the_command_line(tmp_path):
    _write_pairs(tmp_path / "data" / "SYN", 4)
    config = tmp_path / "my.toml"
    config.write_text(f'model = "{GREY}"\ndata = ["data/SYN"]\n')
    result = _train("-c", str(config), "-o", str(tmp_path / "run"), "--max-steps", "1")
    assert result.exit_code == 0, result.output
    result = _train("-c", str(config), "-o", str(tmp_path / "run2"), "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run2" / "summary.json").read_text())["epochs_completed"] == 1
    result = _train("-c", str(config), "-o", str(tmp_path / "run3"))
    assert result.exit_code == 2 and _error_lines(result.output) == [f"error: {config}: set epochs, max_steps or a [[stages]] table"]


@pytest.mark.parametrize("signum, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_run_exits_as_every_command_does(tmp_path, monkeypatch, signum, code):
    import signal

    from litefuse.train.objectives.autoencoder import AutoEncoderObjective

    step = AutoEncoderObjective.training_step

    def interrupted_step(self, batch, at):
        if at == 0:
            os.kill(os.getpid(), getattr(signal, signum))
        return step(self, batch, at)

    monkeypatch.setattr(AutoEncoderObjective, "training_step", interrupted_step)
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    result = _train("--data", str(data), "-o", str(tmp_path / "run"), "--max-steps", "5")
    assert result.exit_code == code, result.output
    assert (tmp_path / "run" / "last.pt").is_file() and "resumable with --resume" in result.output


def test_fewer_crops_than_a_batch_says_what_to_change(tmp_path):
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    result = _train("--data", str(data), "-o", str(tmp_path / "run"), "--max-steps", "1", "-b", "64")
    assert result.exit_code == 2 and not (tmp_path / "run").exists()
    (line,) = _error_lines(result.output)
    assert "fewer than one batch of 64" in line and "--batch-size" in line, line


def test_a_run_stopped_before_its_stage_validated_says_so(tmp_path, monkeypatch):
    """A new stage starts its best weights afresh (its losses do not compare with the last
    stage's): stopped before it validated, the run said "no validation" although stage 1 had."""
    import signal

    from litefuse.train.trainer import Trainer

    enter = Trainer._enter_epoch

    def enter_and_stop(self):
        enter(self)
        if self.state.stage == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Trainer, "_enter_epoch", enter_and_stop)
    data = _write_pairs(tmp_path / "data" / "SYN", 4)
    result = _train("--data", str(data), "-o", str(tmp_path / "run"), "--set", "stages=[{epochs=1}, {epochs=1}]")
    assert result.exit_code == 130, result.output
    assert "val @ step" in result.output  # stage 1 validated
    assert "not yet validated in stage 2 (each stage keeps its own best weights), so the last weights" in result.output


def test_a_deadline_counts_minutes_as_sixty_seconds():
    """``Deadline(1)`` started 30 s ago has about 30 s left; one started 61 s ago has expired."""
    from litefuse.train.budget import Deadline

    assert Deadline(1.0, start=time.monotonic() - 30).remaining_s() == pytest.approx(30, abs=2)
    assert Deadline(1.0, start=time.monotonic() - 61).expired()
    assert Deadline(None).remaining_s() == math.inf
