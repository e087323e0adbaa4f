"""AE-Netv2 training: saliency weights, similarity / positive-sample losses, the positive-sample
bank and its content-keyed cache, aligned (a, b, positive) crops, a tiny overfit, and the
architecture study command on two variants."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from litefuse.data import PairCropDataset, collect_pairs
from litefuse.demo import synthetic_pair
from litefuse.metrics import evaluate
from litefuse.train import ConfigError, TrainConfig, default_config_path, get_objective
from litefuse.train import positives as P
from litefuse.train import teachers as T
from litefuse.train.losses import saliency_weights, similarity_loss, teacher_loss
from litefuse.train.objectives.aenetv2 import AENetV2Objective


pytestmark = pytest.mark.usefixtures("one_thread")  # training tests: one torch thread (see conftest)


from conftest import to_u8 as _u8  # noqa: E402


@pytest.fixture(scope="module")
def small_pair() -> tuple[np.ndarray, np.ndarray]:
    ir, vi = synthetic_pair(48, 64, seed=3)
    return _u8(ir), _u8(vi.mean(axis=2))


def _write_task(root: Path, layout: tuple[str, str], n: int, h: int = 40, w: int = 56, seed: int = 0) -> Path:
    """``n`` synthetic pairs in ``root/SYN/{layout}``; returns the task root."""
    for i in range(n):
        ir, vi = synthetic_pair(h, w, seed=seed + i)
        for sub, img in zip(layout, (_u8(ir), _u8(vi))):
            (root / "SYN" / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "SYN" / sub / f"p{i:02d}.png")
    return root


# --------------------------------------------------------------------------------------------
# losses


def test_saliency_weights_sum_to_one_and_follow_activity():
    g = torch.Generator().manual_seed(0)
    textured = torch.rand(2, 1, 32, 32, generator=g)
    flat = torch.full((2, 1, 32, 32), 0.4)
    w_a, w_b = saliency_weights(textured, flat, radius=3)
    assert torch.allclose(w_a + w_b, torch.ones_like(w_a), atol=1e-6)
    assert (w_a >= 0).all() and (w_b >= 0).all()
    assert w_a[..., 4:-4, 4:-4].min() > 0.99  # the textured source owns the interior
    same_a, same_b = saliency_weights(flat, flat)
    assert torch.allclose(same_a, torch.full_like(same_a, 0.5)) and torch.allclose(same_b, torch.full_like(same_b, 0.5))
    w_ba, _ = saliency_weights(flat, textured, radius=3)
    assert torch.allclose(w_ba, 1 - w_a, atol=1e-6)  # symmetric in the sources


def test_similarity_and_positive_losses():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 1, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g)
    total, parts = similarity_loss(a, a, b, (1.0, 0.0, 0.0))
    assert 0 < parts["wssim"] < 1 and total == pytest.approx(1 - parts["wssim"].item())
    # identical sources: the fused image equal to them is a perfect answer for every term
    total, parts = similarity_loss(a, a, a.clone(), (1.0, 1.0, 1.0))
    assert parts["wssim"].item() == pytest.approx(1.0, abs=1e-5) and total.item() == pytest.approx(0.0, abs=1e-5)
    _, parts = similarity_loss(a, a, b, intensity_target="max")
    assert parts["int"].item() == pytest.approx((torch.maximum(a, b) - a).abs().mean().item(), rel=1e-5)
    loss, parts = teacher_loss(b, b)  # AE-Net's positive-sample loss: L1 + (1 - SSIM)
    assert loss.item() == pytest.approx(0.0, abs=1e-5) and parts["t_ssim"].item() == pytest.approx(1.0, abs=1e-5)
    loss, parts = teacher_loss(a, b, (1.0, 1.0, 0.5))
    expect = (a - b).abs().mean() + (1 - parts["t_ssim"]) + 0.5 * parts["t_grad"]
    assert loss.item() == pytest.approx(expect.item(), rel=1e-6) and "t_grad" in parts


# --------------------------------------------------------------------------------------------
# positive samples


def test_score_totals_normalise_per_metric():
    scores = np.array([[1.0, 10.0, 5.0], [3.0, 0.0, 5.0], [2.0, 20.0, np.nan]])
    assert np.allclose(P.score_totals(scores), [0.5, 1.0, 0.5 + 1.0])


def test_positive_is_argmax_of_the_bank_score(small_pair):
    a, b = small_pair
    pos = P.choose_positive(a, b, work_size=32)  # scored at 24x32, winner recomputed at 48x64
    small_a, small_b = (np.array(Image.fromarray(x).resize((32, 24), Image.Resampling.BOX)) for x in (a, b))
    expect = np.array([[evaluate(small_a, small_b, P._fuse_u8(name, small_a, small_b), P.SCORE_METRICS)[m]
                        for m in P.SCORE_METRICS] for name in P.BANK])
    np.testing.assert_allclose(pos.scores, expect, equal_nan=True)
    totals = P.score_totals(expect)
    assert pos.method == P.BANK[int(np.argmax(totals))]
    assert pos.image.shape == a.shape and pos.image.dtype == np.uint8
    np.testing.assert_array_equal(pos.image, P._fuse_u8(pos.method, a, b))
    # at full working size nothing is resized: the image is the scored candidate itself
    full = P.choose_positive(a, b, work_size=256)
    np.testing.assert_array_equal(full.image, P._fuse_u8(full.method, a, b))


def test_cache_hits_are_identical_and_keyed_by_content(small_pair, tmp_path, monkeypatch):
    a, b = small_pair
    bank = T.parse_teacher("bank", work_size=32)
    cache = T.TeacherCache(tmp_path / "cache")
    first = cache.get(bank, a, b)
    assert (cache.hits, cache.misses) == (0, 1)
    np.testing.assert_array_equal(first, P.choose_positive(a, b, work_size=32).image)  # "bank" = AE-Net's positive
    key = T.pair_key(a, b, bank.signature)
    again = T.TeacherCache(tmp_path / "cache").load(key, a.shape)  # a fresh process reads the file
    assert again is not None
    np.testing.assert_array_equal(again, first)
    assert cache.get(bank, a, b).tobytes() == first.tobytes() and cache.hits == 1
    files = list((tmp_path / "cache").rglob("*"))
    assert [f.name for f in files if f.is_file()] == [f"{key}.npz"]  # no temporary left behind
    # the key is the content: one changed pixel, a swapped order or another teacher setting miss
    b2 = b.copy()
    b2[5, 7] ^= 1
    sigs = {bank.signature, T.parse_teacher("bank", work_size=64).signature, T.parse_teacher("max").signature,
            T.parse_teacher("dwsfusion").signature}
    assert len(sigs) == 4
    keys = {T.pair_key(a, b, bank.signature), T.pair_key(a, b2, bank.signature), T.pair_key(b, a, bank.signature)}
    assert len(keys) == 3
    assert cache.load(T.pair_key(a, b2, bank.signature), a.shape) is None
    # a corrupt entry is recomputed, not trusted
    cache.path(key).write_bytes(b"not an npz")
    assert cache.load(key, a.shape) is None
    np.testing.assert_array_equal(cache.get(bank, a, b), first)
    # the default location follows the environment
    monkeypatch.setenv("LITEFUSE_TEACHER_CACHE", str(tmp_path / "env"))
    assert T.TeacherCache().root == tmp_path / "env"
    monkeypatch.delenv("LITEFUSE_TEACHER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert T.default_cache_dir() == tmp_path / "xdg" / "litefuse" / "teachers"


def test_pair_crops_carry_an_aligned_target(tmp_path):
    root = _write_task(tmp_path / "ivif", ("ir", "vi"), 3, h=40, w=56)
    pairs = collect_pairs([root])
    calls = []

    def targets(names, images):
        calls.append(names)
        return [np.maximum(a, b) for a, b in images]

    ds = PairCropDataset(pairs, crop=24, seed=5, crops_per_image=4, targets=targets)
    assert calls == [ds.names] and len(ds) == 12
    flipped = 0
    for epoch in range(2):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            a, b, p = ds[i]
            assert a.shape == b.shape == p.shape == (1, 24, 24)
            assert torch.equal(p, torch.maximum(a, b))  # the same window and flips for all three
            window = ds._window(i, ds.images[i % 3][0].shape)
            flipped += window[2] or window[3]
    assert flipped > 0
    plain = PairCropDataset(pairs, crop=24, seed=5)
    assert len(plain[0]) == 2
    with pytest.raises(ValueError, match="target must be uint8"):
        PairCropDataset(pairs, crop=24, targets=lambda names, imgs: [a.astype(np.float32) for a, _ in imgs])


# --------------------------------------------------------------------------------------------
# objective and training


def _tiny_config(tmp_path: Path, **extra) -> TrainConfig:
    values = dict(model="aenetv2", model_kwargs=dict(width=8, skip_width=4, num_blocks=2, fuse_at=1), max_steps=2,
                  crop=[24, 24], batch_size=2, lr=1e-2, tensorboard=False, progress=False, threads=1,
                  objective={"teacher_cache": str(tmp_path / "cache"), "bank_work_size": 32},
                  out_dir=str(tmp_path / "run"))
    values.update(extra)
    return TrainConfig.from_dict(values)


def test_objective_config_is_checked(tmp_path):
    from litefuse.registry import load_model

    assert get_objective("aenetv2") is AENetV2Objective
    model = load_model("aenetv2", pretrained=False, width=8, skip_width=4)
    with pytest.raises(ConfigError, match="unknown key 'ssim'"):
        AENetV2Objective().build(model, _tiny_config(tmp_path, objective={"ssim": 1.0}))
    with pytest.raises(ConfigError, match="intensity_target"):
        AENetV2Objective().build(model, _tiny_config(tmp_path, objective={"intensity_target": "mean"}))
    with pytest.raises(ConfigError, match="teacher_weight"):
        AENetV2Objective().build(model, _tiny_config(tmp_path, objective={"teacher_weight": -1.0}))
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        AENetV2Objective().build(model, _tiny_config(tmp_path, objective={"teachers": ["nope"]}))
    with pytest.raises(ConfigError, match="combine"):
        AENetV2Objective().build(model, _tiny_config(tmp_path, objective={"combine": "vote"}))
    cfg = TrainConfig.load(default_config_path("aenetv2"))
    assert [Path(d).name for d in cfg.data] == ["ivif", "mff", "mef", "medical"]
    AENetV2Objective().build(model, cfg.replace(out_dir=str(tmp_path / "x")))  # the packaged config is valid


def test_loss_decreases_on_a_tiny_overfit(small_pair, tmp_path):
    from litefuse.registry import load_model

    torch.manual_seed(0)
    a, b = (torch.from_numpy(x).float().div(255)[None, None, :32, :32] for x in small_pair)
    p = torch.maximum(a, b)
    batch = (a, b, p)
    model = load_model("aenetv2", pretrained=False, width=8, skip_width=4, num_blocks=2, fuse_at=1).train()
    objective = AENetV2Objective()
    objective.build(model, _tiny_config(tmp_path, lr=1e-2, grad_clip=1.0))
    first = objective.training_step(batch, 0)
    for step in range(1, 80):
        last = objective.training_step(batch, step)
    assert {"loss", "content", "teacher", "wssim", "int", "grad", "t_l1", "t_ssim"} <= set(first)
    assert last["loss"] < 0.5 * first["loss"]
    assert last["t_l1"] < first["t_l1"]


def test_stage_rows_change_the_loss_weights(tmp_path):
    from litefuse.registry import load_model

    cfg = _tiny_config(tmp_path, max_steps=None, stages=[{"epochs": 1, "teacher_weight": 2.0}, {"epochs": 1, "teacher_weight": 0.0}])
    objective = AENetV2Objective()
    objective.build(load_model("aenetv2", pretrained=False, width=8, skip_width=4), cfg)
    objective.stage(0)
    assert objective.weights["teacher_weight"] == 2.0
    objective.stage(1)
    assert objective.weights["teacher_weight"] == 0.0 and objective.weights["ssim_weight"] == 1.0


# --------------------------------------------------------------------------------------------
# the study command


def test_study_quality_and_pareto_front():
    from litefuse.train.study import StudyRow, pareto_front, quality_scores

    nan = float("nan")
    rows = [StudyRow("fast", "variant", 1, 1, 10.0, {"t": {"X": 1.0, "Y": nan}}),
            StudyRow("good", "variant", 1, 1, 20.0, {"t": {"X": 3.0, "Y": 2.0}}),
            StudyRow("worse", "variant", 1, 1, 30.0, {"t": {"X": 2.0, "Y": 2.0}})]
    quality_scores(rows)
    assert [r.quality for r in rows] == [0.0, 1.0, 0.75]  # per metric min-max, NaN = worst, then the mean
    assert [r.name for r in pareto_front(rows)] == ["fast", "good"]


def test_study_command_on_two_variants(tmp_path):
    from typer.testing import CliRunner

    from litefuse.cli import app

    ivif = _write_task(tmp_path / "data" / "ivif", ("ir", "vi"), 6, h=48)  # VIF, scored by the study, needs 41 px
    mff = _write_task(tmp_path / "data" / "mff", ("A", "B"), 6, h=48, seed=10)
    out = tmp_path / "study"
    args = ["study", "aenetv2", "--variants", "dws-pool,fire-pool", "--out", str(out), "--data", str(ivif), "--data", str(mff),
            "--max-steps", "2", "--budget-minutes", "2", "--eval-pairs", "1", "--latency-runs", "1",
            "--set", "crop=24", "--set", "batch_size=2", "--set", "val_fraction=0.34",
            "--set", f"objective.teacher_cache=\"{tmp_path / 'cache'}\"", "--set", "objective.bank_work_size=32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best quality" in result.output
    with open(out / "study.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["name"] for r in rows] == ["dws-pool", "fire-pool", "max"]
    assert {"params", "gmacs_640x480", "latency_ms", "quality", "quality_ivif", "quality_mff", "ivif.EN", "mff.Qabf"} <= set(rows[0])
    for r in rows[:2]:
        assert int(r["params"]) > 0 and float(r["gmacs_640x480"]) > 0 and float(r["latency_ms"]) > 0
        assert int(r["steps"]) == 2 and 0.0 <= float(r["quality"]) <= 1.0
    assert any(r["pareto"] == "yes" for r in rows[:2])
    md = (out / "study.md").read_text()
    assert "`dws-pool`" in md and "`fire-pool`" in md and "| method |" in md
    with Image.open(out / "pareto.png") as img:
        assert img.format == "PNG" and img.size[0] > 200
    for name in ("dws-pool", "fire-pool"):
        assert (out / "runs" / name / "model.safetensors").is_file()
    # a second invocation reuses the trained runs
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "trained already" in again.output
    # ... only when trained with these settings: another step cap would mix recipes in one table
    report = (out / "study.md").read_bytes()
    other = CliRunner().invoke(app, [("3" if a == "2" and args[i - 1] == "--max-steps" else a) for i, a in enumerate(args)])
    assert other.exit_code == 2 and "trained with a different 'max_steps' (2, now 3)" in other.output, other.output
    assert (out / "study.md").read_bytes() == report
    bad = CliRunner().invoke(app, ["study", "aenetv2", "--variants", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "unknown study variant 'nope'" in bad.output


# --------------------------------------------------------------------------------------------
# the development data


def test_multitask_data_and_colour_pairs(shared, tmp_path):
    roots = [shared / "data" / t for t in ("ivif", "mff", "mef", "medical")]
    for root in roots:
        assert root.is_dir()
    pet = collect_pairs([shared / "data" / "medical" / "MRI_PET"])[:1]  # colour PET fused on its Y
    cache = T.TeacherCache(tmp_path / "cache")
    ds = PairCropDataset(pet, crop=64, train=False, targets=cache.targets([T.parse_teacher("bank")], progress=False))
    a, b, p = ds[0]
    assert a.shape == b.shape == p.shape == (1, 64, 64)
    assert ds.images[0][1].ndim == 2  # luminance, not RGB
    assert cache.misses == 1


@pytest.mark.parametrize("option,value", [("--threads", "-1"), ("--threads", "0"), ("--eval-pairs", "0"),
                                          ("--latency-runs", "0"), ("--eval-size", "4"), ("--max-steps", "0")])
def test_study_refuses_bad_numbers_before_any_work(tmp_path, option, value):
    """From a CLI QA pass: --threads -1 was an internal error (exit 3), --eval-pairs 0 meant every
    held-out pair, --latency-runs 0 failed only after all the training."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["study", "aenetv2", "--variants", "dws-pool", "--out", str(out), option, value])
    assert result.exit_code == 2 and option in result.output, result.output
    assert not out.exists()


def test_study_stops_at_a_signal_and_the_rerun_resumes_that_variant(tmp_path, monkeypatch):
    """From a QA pass: SIGTERM during a variant's training ended that run as 'interrupted' (with a
    summary.json) and the study went on to the next variant; a rerun then took the cut-short run as
    'trained already', so the table mixed a partial run with full ones."""
    import signal

    from typer.testing import CliRunner

    from litefuse.cli import app
    from litefuse.train import study

    class SignalledAtStep1(study.Trainer):
        def should_stop(self):
            if self.state.step >= 1 and not self._signals:
                self._signals.append(signal.SIGTERM)
                self._stop.set()
            return super().should_stop()

    ivif = _write_task(tmp_path / "data" / "ivif", ("ir", "vi"), 6, h=48)
    out = tmp_path / "study"
    args = ["study", "aenetv2", "--variants", "dws-pool,fire-pool", "--output", str(out), "--data", str(ivif),
            "--max-steps", "2", "--budget-minutes", "2", "--eval-pairs", "1", "--latency-runs", "1", "--references", "",
            "--set", "crop=24", "--set", "batch_size=2", "--set", "val_fraction=0.34",
            "--set", f"objective.teacher_cache=\"{tmp_path / 'cache'}\"", "--set", "objective.bank_work_size=32"]
    monkeypatch.setattr(study, "Trainer", SignalledAtStep1)
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 143, first.output
    assert "run the same command again" in first.output
    assert not (out / "study.md").exists() and not (out / "runs" / "fire-pool").exists()  # stopped, not went on
    monkeypatch.undo()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "[dws-pool] training (resumed," in again.output and "min left" in again.output
    with open(out / "study.csv", newline="") as fh:
        assert [int(r["steps"]) for r in csv.DictReader(fh)] == [2, 2]
    third = CliRunner().invoke(app, args)  # the resumed run is of this recipe (its budget as first asked)
    assert third.exit_code == 0 and third.output.count("trained already") == 2, third.output


@pytest.mark.parametrize("extra", [["--variants", ""], ["--per-variant-minutes", "inf"], ["--references", "max,nope"],
                                   ["--data", "missing-folder"], ["--set", "lr=-1"], ["--set", "batch_size=64"]])
def test_study_refuses_bad_inputs_and_leaves_no_folder(tmp_path, monkeypatch, extra):
    """From a QA pass: an unknown reference failed only after all the training; a refused study
    (missing data, bad --set, a batch larger than the data) left an empty output folder; --variants ''
    studied all 14."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITEFUSE_TEACHER_CACHE", str(tmp_path / "cache"))  # not the user's cache
    ivif = _write_task(tmp_path / "data" / "ivif", ("ir", "vi"), 3, h=48)
    out = tmp_path / "study"
    args = ["study", "aenetv2", "--output", str(out), "--data", str(ivif), "--max-steps", "1"]
    args += [] if extra[0] == "--variants" else ["--variants", "dws-pool"]
    if extra[0] == "--data":
        args = args[:args.index("--data")] + args[args.index("--data") + 2:]
    result = CliRunner().invoke(app, args + extra)
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output, result.output
    assert not out.exists()



def test_study_refuses_an_output_that_is_a_file_before_any_work(tmp_path, monkeypatch):
    """From a QA pass: `study -o afile` failed only after the teacher bank and the evaluation set
    were built, as an internal error (FileExistsError, exit 3); `train -o afile` said it at once."""
    from typer.testing import CliRunner

    from litefuse.cli import app
    from litefuse.train import study

    monkeypatch.setattr(study, "eval_set", lambda *a, **k: pytest.fail("work started before the output was checked"))
    ivif = _write_task(tmp_path / "data" / "ivif", ("ir", "vi"), 3, h=48)
    (tmp_path / "afile").write_text("not a folder")
    result = CliRunner().invoke(app, ["study", "aenetv2", "--output", str(tmp_path / "afile"), "--data", str(ivif),
                                      "--variants", "dws-pool", "--max-steps", "1", "--references", ""])
    assert result.exit_code == 2 and f"{tmp_path / 'afile'}: exists and is not a directory" in result.output, result.output
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_study_counts_functional_convs_in_macs():
    """The study counted MACs by module hooks only: DWSFusion (F.conv2d on module weights) came out
    at 0.003 GMACs at 640x480 beside 0.678 in docs/benchmarks.md."""
    from litefuse.registry import load_model
    from litefuse.train.study import complexity

    params, macs, _ = complexity(load_model("dwsfusion", pretrained=False), 1)
    assert params == 9035 and macs > 0.6e9
