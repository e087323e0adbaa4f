"""Run-folder files: the weights file's bytes, the config a resume reads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from litefuse.train.state import save_safetensors


def test_equal_weights_and_metadata_give_equal_bytes(tmp_path):
    """The safetensors writer keeps metadata in a hash map: the same weights saved twice had
    different sha256s (a model card's hash could not be reproduced by rerunning its recipe)."""
    state = {"conv.weight": torch.randn(4, 1, 3, 3), "conv.bias": torch.zeros(4, dtype=torch.float16)}
    metadata = {f"key{i}": str(i) for i in range(12)}
    digests = set()
    for i in range(4):
        path = tmp_path / f"{i}.safetensors"
        save_safetensors(state, path, metadata)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    loaded = load_file(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    with safe_open(path, "pt") as fh:
        assert fh.metadata() == metadata
    assert int.from_bytes(path.read_bytes()[:8], "little") % 8 == 0  # the header stays 8-byte aligned


def test_a_plain_resume_keeps_the_length_the_last_resume_asked_for(image_root, tmp_path):
    """``--resume --max-steps 2`` then ``--resume``: the second went back to the first
    invocation's length (the config's full epochs), as config.json kept the first run's."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    run = tmp_path / "run"
    common = ["-o", str(run), "--no-progress", "--set", "tensorboard=false"]
    first = CliRunner().invoke(app, ["train", "lwc-densefuse", "-d", str(image_root / "ivif"), "--set", "crop=32",
                                     "--batch-size", "4", "--max-steps", "1", *common])
    assert first.exit_code == 0, first.output
    for argv in (["--max-steps", "2"], []):
        done = CliRunner().invoke(app, ["train", "--resume", *argv, *common])
        assert done.exit_code == 0, done.output
        assert json.loads((run / "summary.json").read_text())["steps"] == 2
    saved = json.loads((run / "config.json").read_text())
    assert saved["max_steps"] == 2 and saved["progress"] is False and saved["crop"] == [32, 32]


def test_a_checkpoint_from_before_a_config_key_existed_resumes(image_root, tmp_path):
    """A run checkpointed before ``ir_norm`` / ``val_data`` were config keys lacks them: its
    resume was refused as 'a different ir_norm (checkpoint: None, now: 'range')'."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    run = tmp_path / "run"
    common = ["-o", str(run), "--no-progress", "--set", "tensorboard=false"]
    first = CliRunner().invoke(app, ["train", "lwc-densefuse", "-d", str(image_root / "ivif"), "--set", "crop=32",
                                     "--batch-size", "4", "--max-steps", "1", *common])
    assert first.exit_code == 0, first.output
    ckpt = torch.load(run / "last.pt", weights_only=True)
    saved = json.loads((run / "config.json").read_text())
    for old in (ckpt["config"], saved):
        del old["ir_norm"], old["val_data"]
    torch.save(ckpt, run / "last.pt")
    (run / "config.json").write_text(json.dumps(saved))
    done = CliRunner().invoke(app, ["train", "--resume", "--max-steps", "2", *common])
    assert done.exit_code == 0, done.output
    assert json.loads((run / "summary.json").read_text())["steps"] == 2


def _disk_full_under(folder, monkeypatch):
    """Every file opened for writing under ``folder`` fails its first write with ENOSPC."""
    import builtins
    import errno
    import os

    real_open = builtins.open

    class Full:
        def __init__(self, fh):
            self._fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        inside = isinstance(file, (str, os.PathLike)) and str(Path(file).resolve()).startswith(str(Path(folder).resolve()))
        return Full(fh) if inside and any(c in mode for c in "wa+") else fh

    monkeypatch.setattr(builtins, "open", fake_open)


@pytest.mark.parametrize("what", ["checkpoint", "safetensors"])
def test_a_full_disk_while_saving_is_one_output_error(tmp_path, monkeypatch, what):
    """A training run's last.pt / model.safetensors on a full disk: an OutputError naming the file
    (the CLI's one line, exit 2), no temporary file left -- not torch's RuntimeError ("unexpected
    pos") or a bare OSError, which the CLI reports as an internal error."""
    import errno

    from litefuse.errors import OutputError
    from litefuse.train.state import atomic_torch_save

    state = {"w": torch.arange(64, dtype=torch.float32)}
    _disk_full_under(tmp_path, monkeypatch)
    path = tmp_path / ("last.pt" if what == "checkpoint" else "model.safetensors")
    with pytest.raises(OutputError, match=f"{path.name}: cannot write \\(No space left on device\\)") as caught:
        if what == "checkpoint":
            atomic_torch_save({"model": state}, path)
        else:
            save_safetensors(state, path, {"model": "aenetv2"})
    assert caught.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())


def test_running_means_divide_by_the_steps_accumulated():
    """Two steps with losses 1 and 3 average to 2 (not 4/3); a reset starts the next mean afresh."""
    from litefuse.train.state import TrainState

    st = TrainState()
    st.accumulate({"loss": 1.0})
    st.accumulate({"loss": 3.0})
    assert st.running_means(reset=True) == {"loss": 2.0}
    st.accumulate({"loss": 5.0})
    assert st.running_means() == {"loss": 5.0}


def test_best_weights_ignore_ties_and_nan_and_are_forgotten_by_a_new_stage():
    """``improve`` keeps the first of equal values and never a NaN one (its weights would be
    kept as the best); ``new_stage`` forgets the best value, step and weights."""
    from torch import nn

    from litefuse.train.state import EarlyStopping, TrainState

    model, st = nn.Linear(1, 1), TrainState()
    st.step = 3
    assert st.improve(0.5, model)
    st.step = 5
    assert not st.improve(0.5, model) and not st.improve(float("nan"), model)
    assert (st.best_val, st.best_step) == (0.5, 3)
    st.new_stage(EarlyStopping(2), {})
    assert (st.best_val, st.best_step, st.best_model) == (float("inf"), None, None)
    assert st.improve(0.9, model) and st.best_val == 0.9  # a worse value than the old stage's counts now


def test_early_stopping_counts_patience_exactly_and_needs_a_relative_gain():
    """patience 2, rel_delta 0.1: from 1.0, a value of 0.95 is no improvement (under 10 %), so
    the second such validation stops; 0.85 is one and resets the count."""
    from litefuse.train.state import EarlyStopping

    stopper = EarlyStopping(2, rel_delta=0.1)
    assert not stopper.update(1.0) and stopper.best == 1.0
    assert not stopper.update(0.95) and stopper.bad == 1
    assert not stopper.update(0.85) and (stopper.best, stopper.bad) == (0.85, 0)
    assert not stopper.update(0.8)
    assert stopper.update(0.8) and stopper.bad == 2


def test_a_truncated_checkpoint_is_said_without_torchs_internals(tmp_path):
    """A cut-off ``last.pt`` gave torch's zip-reader text ("... This is an internal miniz error.
    If you are seeing this error, there is a h...") in the one-line error."""
    from litefuse.train import ConfigError, TrainConfig
    from litefuse.train.state import load_checkpoint

    path = tmp_path / "last.pt"
    torch.save({"w": torch.zeros(4096)}, path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ConfigError, match=r"last\.pt: unreadable checkpoint \(corrupt or truncated file\)$"):
        load_checkpoint(path, TrainConfig())
