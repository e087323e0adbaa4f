"""Validation on folders of their own (``val_data``, ``train --val``) instead of a held-out share."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from litefuse.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = "lwc-densefuse"
SMALL = ["--set", "crop=32", "--batch-size", "4", "--max-steps", "1", "--no-progress", "--set", "tensorboard=false"]


def test_val_folders_validate_and_every_data_pair_trains(image_root, tmp_path):
    out = tmp_path / "run"
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(image_root / "ivif"), "--val", str(image_root / "mff"),
                                    "-o", str(out), *SMALL])
    assert done.exit_code == 0, done.output
    assert "data: 8 train / 4 val pairs" in done.output  # all 8 ivif pairs train (val_fraction unused), the 4 mff validate
    saved = json.loads((out / "config.json").read_text())
    assert saved["val_data"] == [str((image_root / "mff").resolve())]
    rows = (out / "log.csv").read_text().splitlines()
    assert any(row.startswith("val,") for row in rows[1:]), rows  # validated on the mff pairs
    changed = CliRunner().invoke(app, ["train", MODEL, "--resume", "-o", str(out), "--val", str(image_root / "ivif"),
                                       "--max-steps", "2", "--no-progress"])
    assert changed.exit_code == 2 and "cannot resume with a different 'val_data'" in changed.output, changed.output


def test_a_validation_pair_that_also_trains_is_said(image_root, tmp_path):
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(image_root / "ivif"), "--val", str(image_root / "ivif" / "SetA"),
                                    "-o", str(tmp_path / "run"), *SMALL])
    assert done.exit_code == 0, done.output
    assert "note: 8 of 8 validation pairs are also training pairs" in done.output


def test_a_missing_validation_folder_is_one_line(image_root, tmp_path):
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(image_root / "ivif"), "--val", str(tmp_path / "nope"),
                                    "-o", str(tmp_path / "run"), *SMALL])
    assert done.exit_code == 2 and "nope: validation folder (val_data, --val) not found" in done.output, done.output
    assert not (tmp_path / "run").exists()
