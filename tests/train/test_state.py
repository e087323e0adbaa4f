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
