"""Training data options: validation folders of their own (``val_data``, ``train --val``) and the
infrared's scale (``ir_norm``, ``train --ir-norm``)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from litefuse.cli import app
from litefuse.data import PairCropDataset, collect_pairs
from litefuse.io import OnceWarning
from litefuse.train import ConfigError, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = "lwc-densefuse"
SMALL = ["--set", "crop=32", "--batch-size", "4", "--max-steps", "1", "--no-progress", "--set", "tensorboard=false"]


def _scored_run(tmp_path, pairs: int, seed: int):
    """A pair folder of ``pairs`` random 56x48 pairs (big enough for every core metric: VIF needs
    41 pixels a side) and a one-step run trained on it: ``(data, run)``."""
    rng = np.random.default_rng(seed)
    data = tmp_path / "big" / "SetA"
    for sub in ("ir", "vi"):
        (data / sub).mkdir(parents=True)
        for i in range(pairs):
            Image.fromarray((rng.random((48, 56)) * 255).astype(np.uint8)).save(data / sub / f"s{i}.png")
    run = tmp_path / "mine"
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(data), "--init", "pretrained", "-o", str(run), *SMALL])
    assert done.exit_code == 0, done.output
    return data, run


def test_val_folders_validate_and_every_data_pair_trains(image_root, tmp_path):
    out = tmp_path / "run"
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(image_root / "ivif"), "--val", str(image_root / "mff"),
                                    "-o", str(out), *SMALL])
    assert done.exit_code == 0, done.output
    assert "data: 8 train / 4 val pairs" in done.output  # all 8 ivif pairs train (val_fraction unused), the 4 mff validate
    saved = json.loads((out / "config.json").read_text())
    assert saved["val_data"] == [str((image_root / "mff").resolve())]
    from litefuse.train.card import model_card

    card = model_card(MODEL, out / "model.safetensors", out, "cmd", "")
    assert "validation = the pairs of `data/mff`)" in card  # not "10 % held out"
    rows = (out / "log.csv").read_text().splitlines()
    assert any(row.startswith("val,") for row in rows[1:]), rows  # validated on the mff pairs
    changed = CliRunner().invoke(app, ["train", MODEL, "--resume", "-o", str(out), "--val", str(image_root / "ivif"),
                                       "--max-steps", "2", "--no-progress"])
    assert changed.exit_code == 2 and "cannot resume with a different 'val_data'" in changed.output, changed.output
    # the card scores the pairs the trainer validated on, by the trainer's own rule (train.trainset.run_split)
    saved["val_data"] = [str(tmp_path / "moved")]
    (out / "config.json").write_text(json.dumps(saved))
    moved = CliRunner().invoke(app, ["card", str(out)])
    assert moved.exit_code == 2 and "moved: validation folder (val_data, --val) not found" in moved.output, moved.output


def test_a_validation_pair_that_also_trains_is_said(image_root, tmp_path):
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(image_root / "ivif"), "--val", str(image_root / "ivif" / "SetA"),
                                    "-o", str(tmp_path / "run"), *SMALL])
    assert done.exit_code == 0, done.output
    assert "note: 8 of the 8 validation pairs listed (before unusable ones are skipped) are also training pairs" in done.output


def test_a_missing_validation_folder_is_one_line(image_root, tmp_path):
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(image_root / "ivif"), "--val", str(tmp_path / "nope"),
                                    "-o", str(tmp_path / "run"), *SMALL])
    assert done.exit_code == 2 and "nope: validation folder (val_data, --val) not found" in done.output, done.output
    assert not (tmp_path / "run").exists()


def _twelve_bit_root(root):
    """Two pairs whose infrared is 12-bit data in 16-bit PNGs (values up to 4095)."""
    rng = np.random.default_rng(0)
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True)
    for i in range(2):
        Image.fromarray((rng.random((40, 48)) * 4095).astype(np.uint16)).save(root / "ir" / f"p{i}.png")
        Image.fromarray((rng.random((40, 48)) * 255).astype(np.uint8)).save(root / "vi" / f"p{i}.png")
    return root


def test_ir_norm_scales_the_training_infrared_as_fuse_does(tmp_path):
    """12-bit infrared in 16-bit files trained near-black (max 16 of 255): ``fuse --ir-norm 4095``
    had no counterpart in training."""
    pairs = collect_pairs([_twelve_bit_root(tmp_path / "d")])
    with pytest.warns(OnceWarning, match="12-bit data"):  # said, as fuse says it
        dark = PairCropDataset(pairs, 32, train=False)
    scaled = PairCropDataset(pairs, 32, train=False, ir_norm=4095.0)
    assert max(a.max() for a, _ in dark.images) <= 16 and min(a.max() for a, _ in scaled.images) >= 250
    assert all(np.array_equal(b1, b2) for (_, b1), (_, b2) in zip(dark.images, scaled.images))  # the visible as it was


def test_ir_norm_in_configs_and_on_the_command_line(tmp_path):
    assert TrainConfig.from_dict({"model": MODEL, "max_steps": 1, "ir_norm": 4095}).norm == 4095.0  # a TOML number
    assert TrainConfig.from_dict({"model": MODEL, "max_steps": 1, "ir_norm": "minmax"}).norm == "minmax"
    with pytest.raises(ConfigError, match="ir_norm must be 'range', 'minmax' or the sensor's peak"):
        TrainConfig.from_dict({"model": MODEL, "max_steps": 1, "ir_norm": "12bit"})
    root = _twelve_bit_root(tmp_path / "d")
    bad = CliRunner().invoke(app, ["train", MODEL, "-d", str(root), "--ir-norm", "-5", "-o", str(tmp_path / "r"), *SMALL])
    assert bad.exit_code == 2 and "--ir-norm" in bad.output and "ir_norm must be" in bad.output, bad.output
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(root), "--ir-norm", "4095", "-o", str(tmp_path / "r"), *SMALL,
                                    "--batch-size", "2"])
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "r" / "config.json").read_text())["ir_norm"] == "4095"
    from litefuse.train.card import model_card

    weights = tmp_path / "r" / "model.safetensors"
    assert "fuse with `--ir-norm 4095`" in model_card(MODEL, weights, tmp_path / "r", "cmd", "")
    pair = ["--ir", str(root / "ir" / "p0.png"), "--vi", str(root / "vi" / "p0.png"), "--weights", str(weights)]
    with pytest.warns(OnceWarning, match="12-bit data"), \
            pytest.warns(UserWarning, match="trained on infrared read with --ir-norm 4095"):  # without it: said
        plain = CliRunner().invoke(app, ["fuse", *pair, "-o", str(tmp_path / "a.png")])
    assert plain.exit_code == 0, plain.output
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # with it: nothing to say
        same = CliRunner().invoke(app, ["fuse", *pair, "-o", str(tmp_path / "b.png"), "--ir-norm", "4095"])
    assert same.exit_code == 0, same.output


def test_card_command_scores_a_run_beside_the_shipped_weights_max_and_dwsfusion(image_root, tmp_path):
    data, run = _scored_run(tmp_path, 8, seed=1)
    card = CliRunner().invoke(app, ["card", str(run), "-j", "1"])
    assert card.exit_code == 0, card.output
    text = (run / "MODEL_CARD.md").read_text()
    assert "### SetA (1 pair)" in text  # the pair the run held out, not the 7 it trained on
    for row in ("| mine (this run) |", f"| {MODEL} (shipped) |", "| max |", "| dwsfusion |"):
        assert row in text, row
    assert "| parameters | 6,883 |" in text and "litefuse train -c " in text and "the shipped weights (fine-tuned)" in text
    again = CliRunner().invoke(app, ["card", str(run), "-j", "1"])
    assert again.exit_code == 2 and "exists" in again.output, again.output
    other = CliRunner().invoke(app, ["card", str(run), "-j", "1", "--eval", str(data), "--limit", "2",
                                     "-o", str(tmp_path / "card.md")])
    assert other.exit_code == 0, other.output
    assert "### SetA (2 pairs)" in (tmp_path / "card.md").read_text()
    tiny = CliRunner().invoke(app, ["card", str(run), "-j", "1", "--eval", str(image_root / "ivif" / "SetA"), "-o", str(tmp_path / "no.md")])
    assert tiny.exit_code == 2 and "nothing could be scored" in tiny.output and "too small" in tiny.output, tiny.output
    assert not (tmp_path / "no.md").exists()
    not_a_run = CliRunner().invoke(app, ["card", str(tmp_path)])
    assert not_a_run.exit_code == 2 and "not a finished training run" in not_a_run.output
    missing = CliRunner().invoke(app, ["card", str(tmp_path / "nope")])  # was "not a finished training run (no summary.json)"
    assert missing.exit_code == 2 and f"{tmp_path / 'nope'}: folder not found" in missing.output, missing.output
    (tmp_path / "cards").mkdir()  # -o FOLDER: the card goes in it (was "not a format written here")
    into = CliRunner().invoke(app, ["card", str(run), "-j", "1", "--limit", "1", "-o", str(tmp_path / "cards")])
    assert into.exit_code == 0 and (tmp_path / "cards" / "MODEL_CARD.md").is_file(), into.output


def test_card_of_an_incomplete_run_folder_is_one_line(tmp_path):
    """A run folder without config.json (or with a damaged one) was an 'internal error'
    (FileNotFoundError / JSONDecodeError, exit 3); one without log.csv failed after scoring."""
    data, run = _scored_run(tmp_path, 3, seed=2)
    (run / "log.csv").unlink()
    card = CliRunner().invoke(app, ["card", str(run), "-j", "1", "--eval", str(data), "--limit", "1"])
    assert card.exit_code == 0, card.output
    assert "| mine (this run) |" in (run / "MODEL_CARD.md").read_text()
    (run / "config.json").write_text("{")
    damaged = CliRunner().invoke(app, ["card", str(run), "-o", str(tmp_path / "d.md")])
    assert damaged.exit_code == 2 and "config.json: unreadable (JSONDecodeError" in damaged.output, damaged.output
    (run / "config.json").unlink()
    missing = CliRunner().invoke(app, ["card", str(run), "-o", str(tmp_path / "m.md")])
    assert missing.exit_code == 2 and "config.json: not found in the run folder" in missing.output, missing.output
    assert not (tmp_path / "d.md").exists() and not (tmp_path / "m.md").exists()


def test_card_of_a_run_never_validated_says_so(tmp_path):
    """A run that held out no validation pairs has ``best_val`` null in its summary: ``card -i``
    (which its own error asks for) wrote no card but an internal error (formatting None)."""
    data, run = _scored_run(tmp_path, 3, seed=2)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "best_val": None, "best_step": None, "weights_from": "last"}))
    card = CliRunner().invoke(app, ["card", str(run), "-j", "1", "--eval", str(data), "--limit", "1", "-o", str(tmp_path / "c.md")])
    assert card.exit_code == 0, card.output
    assert f"| weights taken from | last (step {summary['steps']}; no validation loss" in (tmp_path / "c.md").read_text()


def test_card_on_ab_folders_leaves_dwsfusion_out(image_root, tmp_path, monkeypatch):
    """dwsfusion fuses infrared-visible pairs only: the card left it out of held-out A/B pairs
    but scored it on ``--eval`` A/B folders (with a 'made for ivif pairs' note). On A/B pairs
    ``laplacian``, the default for named multi-focus and multi-exposure pairs, stands beside max."""
    import litefuse.compare
    from litefuse.train.card import run_card

    run = tmp_path / "run"
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(image_root / "ivif"), "-o", str(run), *SMALL])
    assert done.exit_code == 0, done.output
    asked = []

    def record(folders, methods, **kwargs):
        asked.append([m if isinstance(m, str) else m.label for m in methods])
        raise RuntimeError("recorded")

    monkeypatch.setattr(litefuse.compare, "compare", record)
    for folders in ([image_root / "mff"], [image_root / "ivif"]):
        with pytest.raises(RuntimeError, match="recorded"):
            run_card(run, folders)
    assert asked == [["run (this run)", f"{MODEL} (shipped)", "max", "laplacian"],  # the mff/mef default is the A/B bar
                     ["run (this run)", f"{MODEL} (shipped)", "max", "dwsfusion"]]


def test_card_limit_keeps_the_first_pairs_of_each_set():
    from litefuse.train.card import _first_per_set

    work = [("A", 1), ("B", 2), ("A", 3), ("A", 4), ("B", 5)]
    assert _first_per_set(work, 2) == [("A", 1), ("B", 2), ("A", 3), ("B", 5)]
    assert _first_per_set(work, 1) == [("A", 1), ("B", 2)]


def test_card_without_matplotlib_says_the_loss_curve_was_left_out(tmp_path, monkeypatch):
    """Without the [plot] extra the card left its loss curve out in silence (compare says so
    for its chart.png): the card is still written, with one line naming the extra."""
    import litefuse.viz

    data, run = _scored_run(tmp_path, 3, seed=3)
    monkeypatch.setattr(litefuse.viz, "plotting_available", lambda: False)
    card = CliRunner().invoke(app, ["card", str(run), "-j", "1", "--eval", str(data), "--limit", "1"])
    assert card.exit_code == 0, card.output
    assert "note: no loss curve in the card (charts need matplotlib: pip install 'litefuse[plot]')" in card.output
    assert (run / "MODEL_CARD.md").is_file() and not list(run.glob("*_loss.png"))
    assert "training loss" not in (run / "MODEL_CARD.md").read_text()


def test_a_run_without_tensorboard_says_so(image_root, tmp_path, monkeypatch):
    """tensorboard=true is the default, but TensorBoard is no dependency: the run left no tb/ in silence."""
    import sys

    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as where tensorboard is not installed
    args = ["--set", "crop=32", "--batch-size", "4", "--max-steps", "1", "--no-progress"]  # SMALL, TensorBoard on
    done = CliRunner().invoke(app, ["train", MODEL, "-d", str(image_root / "ivif"), "-o", str(tmp_path / "r"), *args])
    assert done.exit_code == 0, done.output
    assert "note: no TensorBoard logs (tensorboard is not installed" in done.output and not (tmp_path / "r" / "tb").exists()


def test_card_never_replaces_a_file_named_like_its_loss_curve(tmp_path):
    """The card's loss curve (``<card>_loss.png`` beside it) replaced a file of that name in
    silence, though the card itself is refused when it exists: both need --overwrite."""
    data, run = _scored_run(tmp_path, 3, seed=4)
    mine = tmp_path / "cards" / "card_loss.png"
    mine.parent.mkdir()
    mine.write_bytes(b"someone else's file")
    args = ["card", str(run), "-j", "1", "--eval", str(data), "--limit", "1", "-o", str(tmp_path / "cards" / "card.md")]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "card_loss.png: output exists" in refused.output, refused.output
    assert mine.read_bytes() == b"someone else's file" and not (tmp_path / "cards" / "card.md").exists()
    replaced = CliRunner().invoke(app, [*args, "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert mine.read_bytes().startswith(b"\x89PNG") and "card_loss.png" in (tmp_path / "cards" / "card.md").read_text()


def test_a_crop_far_beyond_the_images_is_refused_and_a_larger_one_noted(tmp_path):
    """A 4096×4096 crop of 160×120 images took 24 GB before the system killed it, a 100000 one
    was an internal error; a crop some images cannot fill is padded, now said."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for sub in ("ir", "vi"):
        (data / sub).mkdir(parents=True)
        for i, (h, w) in enumerate([(48, 56), (48, 56), (40, 90), (64, 64)]):
            Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8)).save(data / sub / f"s{i}.png")
    common = ["train", MODEL, "-d", str(data), "--batch-size", "2", "--max-steps", "1", "--no-progress",
              "--set", "tensorboard=false", "--set", "val_fraction=0"]
    for crop, message in [("[200, 60]", "crop [200, 60] (H, W) is more than twice the largest training image (90×64 pixels)"),
                          ("100000", "crop must be at least 8×8 and at most 16384×16384")]:
        bad = CliRunner().invoke(app, [*common, "--set", f"crop={crop}", "-o", str(tmp_path / "bad")])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
        assert not (tmp_path / "bad").exists()
    ok = CliRunner().invoke(app, [*common, "--set", "crop=[50, 60]", "--epochs", "1", "-o", str(tmp_path / "ok")])
    assert ok.exit_code == 0, ok.output
    assert "note: 6 of 8 training images are smaller than the 60×50 crop: reflect-padded" in ok.output  # both sources
    # lwc-densefuse's packaged schedule has three stages: one epoch never reaches the later two
    assert "note: epochs = 1 ends in stage 1 of 3" in ok.output and "stages 2-3 never run" in ok.output


def test_a_resume_on_other_data_is_refused(tmp_path):
    """Removing a pair between a run and its --resume changed the split and mixed two validation
    sets in one best-val comparison, in silence."""
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    for sub in ("ir", "vi"):
        (data / sub).mkdir(parents=True)
        for i in range(6):
            Image.fromarray((rng.random((40, 48)) * 255).astype(np.uint8)).save(data / sub / f"s{i}.png")
    run = tmp_path / "run"
    args = ["train", MODEL, "-d", str(data), "-o", str(run), "--set", "crop=32", "-b", "4", "--no-progress"]
    assert CliRunner().invoke(app, [*args, "--max-steps", "1"]).exit_code == 0
    kept = (data / "ir" / "s0.png").read_bytes()
    (data / "ir" / "s0.png").unlink()
    (data / "vi" / "s0.png").rename(tmp_path / "s0.png")
    more = ["--resume", "--max-steps", "2"]
    bad = CliRunner().invoke(app, [*args, *more])
    assert bad.exit_code == 2 and "cannot resume: the training data changed since the checkpoint (6 pairs then, 5 now; ir/s0.png gone)" in bad.output, bad.output
    (data / "ir" / "s0.png").write_bytes(kept + b"\0")  # the same names, another file
    (tmp_path / "s0.png").rename(data / "vi" / "s0.png")
    bad = CliRunner().invoke(app, [*args, *more])
    assert bad.exit_code == 2 and "(6 pairs then, 6 now; ir/s0.png changed)" in bad.output, bad.output
    (data / "ir" / "s0.png").write_bytes(kept)
    ok = CliRunner().invoke(app, [*args, *more])
    assert ok.exit_code == 0 and "resumed" in ok.output, ok.output
