"""The trainer: logging, atomic checkpoints, exact resume, frozen stages; configs, the ``train``
command, weights of runs and model cards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import texture as _texture

from litefuse.errors import ModelError
from litefuse.train import ConfigError, TrainConfig, Trainer, default_config_path, get_objective
from litefuse.train.state import LossLog

pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread: grouped convs thrash with two on 2 cores


# --------------------------------------------------------------------------------------------
# trainer


class TinyAE(nn.Module):
    """A 2-layer auto-encoder with the fusion-model contract, for when no AE network is registered."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv2d(1, 4, 3, padding=1)
        self.dec = nn.Conv2d(4, 1, 3, padding=1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.relu(self.enc(x)))

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return self.reconstruct((ir + vi) / 2).clamp(0, 1)


def _ae_model_name() -> str | None:
    import litefuse

    names = {m.name for m in litefuse.list_models("network")}
    for name in ("lwc-densefuse", "densefuse"):
        if name in names and hasattr(litefuse.load_model(name, pretrained=False), "reconstruct"):
            return name
    return None


AE_MODEL = _ae_model_name()


def _config(root: Path, out: Path, **kw) -> TrainConfig:
    values = dict(
        model=AE_MODEL or "densefuse", data=[str(root)], crop=[32, 32], batch_size=4, lr=3e-3, val_fraction=0.25,
        log_every=1, checkpoint_every=2, progress=False, tensorboard=False, out_dir=str(out), seed=7,
        stages=[{"epochs": 2, "ssim_weight": 1.0, "grad_weight": 0.0}, {"epochs": 2, "ssim_weight": 10.0, "grad_weight": 0.5}],
        plateau_patience=0, plateau_factor=0.5, early_stopping_patience=3,
    )
    values.update(kw)
    return TrainConfig.from_dict(values)


def _trainer(cfg: TrainConfig, objective=None) -> Trainer:
    model = None if AE_MODEL else TinyAE()
    if objective is None and model is not None:
        objective = get_objective("densefuse")()
    return Trainer(cfg, model=model, objective=objective)


def test_loss_decreases_on_a_fixed_batch(tmp_path):
    torch.manual_seed(0)
    import litefuse

    model = litefuse.load_model(AE_MODEL, pretrained=False).train() if AE_MODEL else TinyAE()
    cfg = TrainConfig.from_dict(dict(model=AE_MODEL or "densefuse", max_steps=30, lr=3e-3, objective={"ssim_weight": 1.0}))
    objective = get_objective(cfg.model)()
    objective.build(model, cfg)
    batch = torch.from_numpy(np.stack([_texture(32, 32, s) for s in range(4)])[:, None] / 255.0).float()
    losses = [objective.training_step(batch, step)["loss"] for step in range(30)]
    assert losses[-1] < 0.7 * losses[0] and all(b < a for a, b in zip(losses[:10], losses[1:11])), losses


def test_training_run_writes_log_checkpoint_and_weights(image_root, tmp_path):
    out = tmp_path / "run"
    result = _trainer(_config(image_root, out, max_steps=5)).fit()
    assert result.steps == 5 and result.stop_reason == "max_steps" and result.finished
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["config.json", "last.pt", "log.csv", "model.safetensors", "summary.json"]
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]  # no temp left
    header = (out / "log.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == list(LossLog.BASE) and {"loss", "mse", "ssim", "grad", "psnr"} <= set(header)
    rows = (out / "log.csv").read_text().splitlines()[1:]
    assert sum(r.startswith("train,") for r in rows) == 5 and any(r.startswith("val,") for r in rows)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert {"model", "objective", "trainer", "rng", "config", "best_model"} <= set(ckpt) and ckpt["trainer"]["step"] == 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["seed"] == 7 and summary["best_val"] is not None
    if AE_MODEL:
        from litefuse.registry import load_model

        fused = load_model(AE_MODEL, weights=out / "model.safetensors")(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
        assert fused.shape == (1, 1, 16, 16)
    with pytest.raises(ConfigError, match="already holds a run"):
        _trainer(_config(image_root, out, max_steps=5)).fit()
    with pytest.raises(ConfigError, match="different 'lr'"):
        _trainer(_config(image_root, out, max_steps=8, lr=1e-2)).fit(resume=True)


def _state(out: Path) -> dict:
    return torch.load(out / "last.pt", weights_only=True)


def _assert_same_run(a: Path, b: Path) -> None:
    sa, sb = _state(a), _state(b)
    assert sa["trainer"]["step"] == sb["trainer"]["step"]
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    oa, ob = sa["objective"]["optimizers"]["model"], sb["objective"]["optimizers"]["model"]
    assert oa["param_groups"] == ob["param_groups"]
    for i in oa["state"]:
        for k in oa["state"][i]:
            assert torch.equal(oa["state"][i][k], ob["state"][i][k]), (i, k)

    def train_rows(p: Path) -> list[str]:  # time column dropped
        return [",".join(r.split(",")[:5] + r.split(",")[6:]) for r in (p / "log.csv").read_text().splitlines() if r.startswith("train,")]

    assert train_rows(a) == train_rows(b)


def test_resume_after_budget_stop_matches_uninterrupted_run(image_root, tmp_path):
    # 16 train crops / batch 4 = 4 steps per epoch: step 5 stops mid-epoch, stage 2 starts at step 9
    _trainer(_config(image_root, tmp_path / "full", max_steps=10)).fit()
    _trainer(_config(image_root, tmp_path / "cut", max_steps=5)).fit()
    result = _trainer(_config(image_root, tmp_path / "cut", max_steps=10)).fit(resume=True)
    assert result.steps == 10
    _assert_same_run(tmp_path / "full", tmp_path / "cut")


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize("by", ["steps", "minutes"])
def test_resume_after_a_crash_matches_uninterrupted_run(image_root, tmp_path, by):
    """A run killed at step 6 resumes to the same weights, from its last step checkpoint (step 4)
    or from a time-based one (a tiny ``checkpoint_minutes`` saves after every step: step 5)."""
    timing = {"steps": {}, "minutes": {"checkpoint_every": 0, "checkpoint_minutes": 1e-9}}[by]
    _trainer(_config(image_root, tmp_path / "full", max_steps=9, val_every=2)).fit()

    objective = get_objective(AE_MODEL or "densefuse")()
    step_fn = objective.training_step

    def crashing(batch, step):
        if step == 5:
            raise _Crash
        return step_fn(batch, step)

    objective.training_step = crashing
    with pytest.raises(_Crash):
        _trainer(_config(image_root, tmp_path / "cut", max_steps=9, val_every=2, **timing), objective).fit()
    assert _state(tmp_path / "cut")["trainer"]["step"] == {"steps": 4, "minutes": 5}[by]
    _trainer(_config(image_root, tmp_path / "cut", max_steps=9, val_every=2)).fit(resume=True)
    _assert_same_run(tmp_path / "full", tmp_path / "cut")


def _snapshot_at_build(objective):
    """Make ``objective`` record the model's parameters as ``build`` sees them (the initial weights)."""
    seen: dict[str, torch.Tensor] = {}
    build = objective.build

    def recording(model, config):
        build(model, config)
        seen.update({k: v.detach().clone() for k, v in model.named_parameters()})

    objective.build = recording
    return seen


def test_freeze_restores_what_the_model_itself_keeps_fixed():
    model = TinyAE()
    model.dec.bias.requires_grad_(False)  # fixed by the model, not by the config
    cfg = TrainConfig.from_dict(dict(model="densefuse", stages=[{"epochs": 1, "freeze": ["enc"]}, {"epochs": 1, "freeze": []}]))
    objective = get_objective("densefuse")()
    objective.build(model, cfg)
    grads = lambda: {n: p.requires_grad for n, p in model.named_parameters()}  # noqa: E731
    objective.stage(0)
    assert grads() == {"enc.weight": False, "enc.bias": False, "dec.weight": True, "dec.bias": False}
    objective.stage(1)
    assert grads() == {"enc.weight": True, "enc.bias": True, "dec.weight": True, "dec.bias": False}


def test_every_later_stage_starts_from_the_initial_lr_or_its_row_lr():
    """Entering stage 2 and stage 3 undoes the plateau cuts of the stage before (lr back to the
    config's 3e-3), and a row's own ``lr`` overrides it; re-entering the same stage changes nothing."""
    cfg = TrainConfig.from_dict(dict(model="densefuse", lr=3e-3, stages=[
        {"epochs": 1}, {"epochs": 1}, {"epochs": 1}, {"epochs": 1, "lr": 5e-4}]))
    objective = get_objective("densefuse")()
    objective.build(TinyAE(), cfg)
    lr = lambda: objective.optimizers["model"].param_groups[0]["lr"]  # noqa: E731
    cut = lambda: objective.optimizers["model"].param_groups[0].update(lr=lr() / 10)  # noqa: E731
    seen = []
    for epoch in range(4):
        objective.stage(epoch)
        seen.append(lr())
        cut()  # a plateau cut inside the stage
        objective.stage(epoch)  # same stage again: no reset
        seen.append(lr())
    assert seen == pytest.approx([3e-3, 3e-4, 3e-3, 3e-4, 3e-3, 3e-4, 5e-4, 5e-5])


def test_frozen_parameters_get_no_updates_until_their_stage_ends(image_root, tmp_path):
    # 4 steps per epoch: stage 1 (2 epochs, first module frozen) ends at step 8
    name = AE_MODEL or "densefuse"
    top = next((TinyAE() if AE_MODEL is None else __import__("litefuse").load_model(name, pretrained=False)).named_parameters())[0].split(".")[0]
    stages = [{"epochs": 2, "freeze": [top]}, {"epochs": 2, "freeze": []}]
    kw = dict(stages=stages, plateau_patience=None, early_stopping_patience=0)
    for steps, frozen_kept in ((8, True), (10, False)):
        objective = get_objective(name)()
        start = _snapshot_at_build(objective)
        trainer = _trainer(_config(image_root, tmp_path / f"run{steps}", max_steps=steps, **kw), objective)
        trainer.fit()
        for key, value in trainer.model.named_parameters():
            unchanged = torch.equal(value.detach().cpu(), start[key])
            assert unchanged == (frozen_kept and key.split(".")[0] == top), (steps, key)
    # a run cut inside the frozen stage resumes with the freeze in force
    _trainer(_config(image_root, tmp_path / "cut", max_steps=5, **kw)).fit()
    _trainer(_config(image_root, tmp_path / "cut", max_steps=10, **kw)).fit(resume=True)
    _assert_same_run(tmp_path / "run10", tmp_path / "cut")
    with pytest.raises(ConfigError, match="'nope' names no parameter"):
        _trainer(_config(image_root, tmp_path / "bad", max_steps=1, freeze=["nope"])).fit()
    with pytest.raises(ConfigError, match="'enc' names no parameter|row 1: freeze"):
        _trainer(_config(image_root, tmp_path / "bad2", max_steps=1, stages=[{"epochs": 1, "freeze": "enc"}])).fit()


# --------------------------------------------------------------------------------------------
# configuration and command line


@pytest.mark.parametrize("model", ["densefuse", "lwc-densefuse"])
def test_packaged_configs_load(model):
    cfg = TrainConfig.load(default_config_path(model))
    # the two shipped recipes have the same length, so the constant-λ vs progressive comparison is fair
    assert cfg.model == model and cfg.total_epochs == 12 and cfg.stages
    assert get_objective(model).__name__ == "AutoEncoderObjective"


def test_config_errors_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('model = "densefuse"\nepochs = 2\nlr = 1e-3\n[objective]\nssim_weight = 10\n')
    cfg = TrainConfig.load(path, batch_size=2).apply_sets(["objective.grad_weight=0.5", "crop=64", "optimizer=adamw"])
    assert (cfg.batch_size, cfg.crop, cfg.optimizer, cfg.objective) == (2, (64, 64), "adamw", {"ssim_weight": 10, "grad_weight": 0.5})
    path.write_text('model = "densefuse"\nepochs = 2\nlearning_rate = 1\n')
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'"):
        TrainConfig.load(path)
    with pytest.raises(ConfigError, match="batch_size must be an integer"):
        TrainConfig.from_dict({"model": "densefuse", "epochs": 1, "batch_size": "8"})
    with pytest.raises(ConfigError, match="set epochs, max_steps"):
        TrainConfig.from_dict({"model": "densefuse"})


def test_train_command(image_root, tmp_path):
    from typer.testing import CliRunner

    from litefuse.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["train", "no-such-model"])
    assert bad.exit_code == 2 and "unknown model 'no-such-model'" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["train", "densefuse", "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "directory not found" in bad.output
    bad = runner.invoke(app, ["train", "densefuse", "--init", str(tmp_path / "nope.safetensors"), "-o", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "weights file not found" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "y").exists()  # nothing written for a command that cannot start
    for args, message in [([], "name the network to train"), (["densefuse", "-m", "aenetv2"], "two models named"),
                          (["lwc-densefuse", "--set", 'model="densefuse"'], "--set model=densefuse: the model is the command's argument")]:
        bad = runner.invoke(app, ["train", *args, "-o", str(tmp_path / "z")])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
    assert not (tmp_path / "z").exists()
    if AE_MODEL is None:
        return
    out = tmp_path / "cli-run"
    args = ["train", AE_MODEL, "--data", str(image_root), "-o", str(out), "--max-steps", "2", "-b", "4",
            "--set", "crop=32", "--set", "tensorboard=false", "--no-progress"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert (out / "model.safetensors").is_file()
    more = runner.invoke(app, ["train", "-m", AE_MODEL, "-o", str(out), "--resume", "--max-steps", "3", "--no-progress"])
    assert more.exit_code == 0, more.output
    assert json.loads((out / "summary.json").read_text())["steps"] == 3


@pytest.mark.skipif(AE_MODEL is None, reason="no registered auto-encoder network")
def test_train_command_takes_the_network_from_the_config_or_the_run(image_root, tmp_path):
    """``train -c FILE`` trains the network the file names, and ``train --resume -o RUN`` the
    one the run trained: neither needs the name again."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    runner = CliRunner()
    config = tmp_path / "mine.toml"
    config.write_text(f'model = "{AE_MODEL}"\ndata = ["{image_root.as_posix()}"]\ncrop = 32\nbatch_size = 4\n'
                      "max_steps = 1\ntensorboard = false\n")
    out = tmp_path / "run"
    ok = runner.invoke(app, ["train", "-c", str(config), "-o", str(out), "--no-progress"])
    assert ok.exit_code == 0 and (out / "model.safetensors").is_file(), ok.output
    more = runner.invoke(app, ["train", "--resume", "-o", str(out), "--max-steps", "2", "--no-progress"])
    assert more.exit_code == 0, more.output
    assert json.loads((out / "summary.json").read_text())["steps"] == 2
    bad = runner.invoke(app, ["train", "--resume", "-o", str(tmp_path / "no-run")])
    assert bad.exit_code == 2 and "name the network to train" in bad.output


@pytest.mark.skipif(AE_MODEL is None, reason="no registered auto-encoder network")
def test_train_command_writes_to_the_config_out_dir(image_root, tmp_path, monkeypatch):
    """A config's ``out_dir`` is the run folder when ``--out`` is not given (as :class:`Trainer` takes it),
    not ``runs/<model>``; ``--out`` still wins."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "mine.toml"
    config.write_text(f'model = "{AE_MODEL}"\ndata = ["{image_root.as_posix()}"]\ncrop = 32\nbatch_size = 4\n'
                      'max_steps = 1\ntensorboard = false\nout_dir = "runs/mine"\n')
    ok = CliRunner().invoke(app, ["train", AE_MODEL, "-c", str(config), "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "runs" / "mine" / "model.safetensors").is_file() and not (tmp_path / "runs" / AE_MODEL).exists()
    ok = CliRunner().invoke(app, ["train", AE_MODEL, "-c", str(config), "-o", "other", "--no-progress"])
    assert ok.exit_code == 0 and (tmp_path / "other" / "model.safetensors").is_file(), ok.output


def test_weights_of_a_run_with_constructor_arguments_load_by_model_name(image_root, tmp_path):
    """``--set model_kwargs=...`` changes the architecture; the exported weights carry those
    arguments, so ``fuse --model NAME --weights FILE`` rebuilds the same network; weights of
    another model are refused in one line."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    runner = CliRunner()
    run = tmp_path / "se-run"
    args = ["train", "lwc-densefuse", "--data", str(image_root), "-o", str(run), "--max-steps", "1", "-b", "4",
            "--set", "crop=32", "--set", "tensorboard=false", "--set", 'model_kwargs={attention="se"}', "--no-progress"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    pair = sorted((image_root / "ivif" / "SetA" / "ir").iterdir())[0]
    fuse = ["fuse", "--ir", str(pair), "--vi", str(pair.parent.parent / "vi" / pair.name), "--weights", str(run / "model.safetensors")]
    done = runner.invoke(app, [*fuse, "--model", "lwc-densefuse", "-o", str(tmp_path / "f.png")])
    assert done.exit_code == 0 and (tmp_path / "f.png").is_file(), done.output
    wrong = runner.invoke(app, [*fuse, "--model", "densefuse", "-o", str(tmp_path / "g.png")])
    assert wrong.exit_code == 2 and "weights of 'lwc-densefuse', not 'densefuse'" in wrong.output, wrong.output
    assert "Traceback" not in wrong.output and not (tmp_path / "g.png").exists()


@pytest.mark.skipif(AE_MODEL is None, reason="no registered auto-encoder network")
def test_fine_tuning_starts_from_the_shipped_or_given_weights(image_root, tmp_path):
    """``init`` loads weights before the first step: a pretrained auto-encoder already
    reconstructs unseen textures, so its first validation loss is far below a random start's."""
    from safetensors.torch import load_file

    import litefuse

    def first_val(run: Path) -> float:
        rows = [r.split(",") for r in (run / "log.csv").read_text().splitlines()]
        col = rows[0].index("loss")
        return float(next(r for r in rows[1:] if r[0] == "val")[col])

    common = dict(max_steps=1, lr=1e-9, stages=[], epochs=1, objective={"ssim_weight": 1.0})
    scratch = _trainer(_config(image_root, tmp_path / "scratch", **common)).fit()
    tuned = _trainer(_config(image_root, tmp_path / "tuned", init="pretrained", **common)).fit()
    assert first_val(tuned.out_dir) < 0.5 * first_val(scratch.out_dir), (first_val(tuned.out_dir), first_val(scratch.out_dir))
    shipped = litefuse.load_model(AE_MODEL).state_dict()
    after = load_file(str(tuned.weights))  # lr ~0: one step leaves the shipped weights in place
    assert all(torch.allclose(after[k], shipped[k], atol=1e-6) for k in after)

    # a step that makes things worse is not exported: the start stays the best weights
    wrecked = _trainer(_config(image_root, tmp_path / "wrecked", init="pretrained", **{**common, "lr": 10.0})).fit()
    assert wrecked.best_step == 0, wrecked.best_step
    assert all(torch.equal(v, shipped[k]) for k, v in load_file(str(wrecked.weights)).items())

    # with stages too: each stage keeps its own best, and the start competes in every one (a later
    # stage exported its own best, however bad, when the step-0 validation counted in stage 1 only)
    staged = dict(common, max_steps=None, lr=10.0, epochs=2,
                  stages=[{"epochs": 1, "ssim_weight": 1.0}, {"epochs": 1, "ssim_weight": 10.0}])
    wrecked = _trainer(_config(image_root, tmp_path / "staged", init="pretrained", **staged)).fit()
    assert (wrecked.steps > wrecked.best_step == 0 and wrecked.stage == 1), (wrecked.steps, wrecked.best_step, wrecked.stage)
    assert all(torch.equal(v, shipped[k]) for k, v in load_file(str(wrecked.weights)).items())
    # stopped in stage 1 and resumed without its init file: the checkpoint keeps the start
    (tmp_path / "start.safetensors").write_bytes(wrecked.weights.read_bytes())
    cut = _config(image_root, tmp_path / "cut", init=str(tmp_path / "start.safetensors"), **{**staged, "max_steps": 1})
    assert _trainer(cut).fit().stage == 0
    (tmp_path / "start.safetensors").unlink()
    resumed = _trainer(cut.replace(max_steps=1000)).fit(resume=True)  # the epochs end it
    assert (resumed.stage, resumed.best_step) == (1, 0), resumed
    assert all(torch.equal(v, shipped[k]) for k, v in load_file(str(resumed.weights)).items())

    # a weights file works the same way, and the card says where the run started
    again = _trainer(_config(image_root, tmp_path / "again", init=str(tuned.weights), **common)).fit()
    assert torch.allclose(load_file(str(again.weights))[next(iter(after))], after[next(iter(after))], atol=1e-6)
    with pytest.raises(ConfigError, match="weights file not found"):
        _trainer(_config(image_root, tmp_path / "bad", init=str(tmp_path / "missing.safetensors"))).fit()
    with pytest.raises(ConfigError, match=r"is a folder, not a weights file \(a run's is .*again.model\.safetensors\)"):
        _trainer(_config(image_root, tmp_path / "bad", init=str(tmp_path / "again"))).fit()
    assert not (tmp_path / "bad").exists()
    # a resumed run does not need its init file any more
    (tmp_path / "init.safetensors").write_bytes(tuned.weights.read_bytes())
    resumable = _config(image_root, tmp_path / "res", init=str(tmp_path / "init.safetensors"), **{**common, "max_steps": 1})
    _trainer(resumable).fit()
    (tmp_path / "init.safetensors").unlink()
    assert _trainer(resumable.replace(max_steps=2)).fit(resume=True).steps == 2
    with pytest.raises(ModelError, match="do not fit"):  # another architecture than the shipped one
        _trainer(_config(image_root, tmp_path / "kw", init="pretrained", model_kwargs={"attention": None})).fit()


def test_fine_tuning_the_shipped_weights_keeps_the_settings_their_file_records():
    """``init = "pretrained"`` builds the network as the shipped file runs (aenetv2's header records
    ``border = 16``), so a fine-tune runs as the weights it started from; the config's own
    ``model_kwargs`` win."""
    from litefuse.train.trainer import _with_init_architecture

    tuned = _with_init_architecture(TrainConfig(model="aenetv2", init="pretrained", max_steps=1))
    assert tuned.model_kwargs == {"border": 16}
    assert _with_init_architecture(TrainConfig(model="aenetv2", init="", max_steps=1)).model_kwargs == {}
    own = TrainConfig(model="aenetv2", init="pretrained", max_steps=1, model_kwargs={"border": 4})
    assert _with_init_architecture(own).model_kwargs == {"border": 4}


def test_fine_tuning_a_file_that_records_no_settings_takes_them_from_its_shapes(tmp_path):
    """A weights file of lwc-densefuse's old default (g = 4 pointwise groups) records no
    ``model_kwargs``: ``load_model`` reads the groups off its tensor shapes, and ``--init FILE``
    now does too (the run built the g = 2 default and failed: tensors of another shape)."""
    from safetensors.torch import save_file

    from litefuse.registry import load_model
    from litefuse.train.trainer import _with_init_architecture

    old = tmp_path / "g4.safetensors"
    save_file(load_model("lwc-densefuse", pretrained=False, groups=4).state_dict(), str(old))
    tuned = _with_init_architecture(TrainConfig(model="lwc-densefuse", init=str(old), max_steps=1))
    assert tuned.model_kwargs == {"groups": 4}
    load_model("lwc-densefuse", pretrained=False, **tuned.model_kwargs).load_state_dict(load_model("lwc-densefuse", weights=old).state_dict())
    with pytest.raises(ModelError, match="weights of 'lwc-densefuse', not 'densefuse'; train that model"):
        save_file(load_model("lwc-densefuse", pretrained=False).state_dict(), str(old), metadata={"model": "lwc-densefuse"})
        _with_init_architecture(TrainConfig(model="densefuse", init=str(old), max_steps=1))


def test_model_card_reports_measured_facts_of_the_run(image_root, tmp_path):
    import hashlib

    from litefuse.compare import compare
    from litefuse.models.complexity import count_macs, count_params
    from litefuse.train.card import loss_curve, model_card

    out = tmp_path / "run"
    name = AE_MODEL or pytest.skip("no registered auto-encoder")
    _trainer(_config(image_root, out, max_steps=3, stages=[{"epochs": 1}], freeze=["conv1"])).fit()
    result = compare([image_root / "ivif" / "SetA"], ["max", "mean"], metrics=["EN", "SF"], limit=2, preview=0)
    card = model_card(name, out / "model.safetensors", out, f"litefuse train {name}", result.markdown(), notes=["a note"])

    import litefuse

    model = litefuse.load_model(name, pretrained=False)
    x = torch.zeros(1, 1, 480, 640)
    macs = count_macs(model, (x, x), method="auto")
    assert f"| parameters | {count_params(model):,} |" in card
    assert f"{macs / 1e9:.3f} G" in card
    assert hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()[:16] in card
    assert "| seed | 7 |" in card and "3 steps" in card and "stopped by `max_steps`" in card
    assert "| frozen parameters | `conv1` |" in card
    assert f"litefuse train {name}" in card and "- a note" in card
    assert "| max |" in card and "| mean |" in card  # the results table beside the classical baseline
    assert "| initial weights | random (trained from scratch) |" in card
    # a run continued from another run's best weights names that run, not just model.safetensors
    _trainer(_config(image_root, tmp_path / "part2", max_steps=1, init=str(out / "model.safetensors"))).fit()
    part2 = model_card(name, tmp_path / "part2" / "model.safetensors", tmp_path / "part2", "cmd", result.markdown())
    assert "| initial weights | `run/model.safetensors` (fine-tuned) |" in part2
    png = loss_curve(out, tmp_path / "loss.png")
    assert png.stat().st_size > 1000


@pytest.mark.parametrize(
    "values, message",
    [
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"lr": float("inf")}, "lr must be a finite number"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"grad_clip": -1.0}, "grad_clip must be >= 0"),
        ({"min_lr": -1e-6}, "min_lr must be >= 0"),
        ({"checkpoint_minutes": float("nan")}, "checkpoint_minutes must be a finite number"),
        ({"max_minutes": float("nan")}, "max_minutes must be a finite number"),
        ({"seed": -1}, "seed must be an integer in"),
        ({"seed": 10**20}, "seed must be an integer in"),
        ({"device": "mps"}, "device must be auto, cpu or cuda"),  # a Mac's GPU: not a device litefuse runs on
    ],
)
def test_impossible_numbers_are_config_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({"model": "densefuse", "epochs": 1, **values})


def test_a_diverging_run_stops_and_writes_no_weights(image_root, tmp_path):
    out = tmp_path / "run"
    from litefuse.errors import TrainingError

    with pytest.raises(TrainingError, match=r"(training loss is .*nan|hold NaN or infinite).*wrote no weights"):
        _trainer(_config(image_root, out, max_steps=3, lr=1e30, checkpoint_every=1)).fit()
    assert not (out / "model.safetensors").exists()
    if (out / "last.pt").exists():  # a checkpoint from before the divergence holds finite weights
        state = torch.load(out / "last.pt", weights_only=True)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_training_setups_that_cannot_train_are_config_errors(image_root, tmp_path):
    import litefuse

    name = AE_MODEL or "densefuse"
    tops = sorted({k.split(".")[0] for k, _ in litefuse.load_model(name, pretrained=False).named_parameters()})
    with pytest.raises(ConfigError, match="freezes every parameter"):
        _trainer(_config(image_root, tmp_path / "a", max_steps=1, freeze=tops)).fit()
    cfg = TrainConfig.from_dict(dict(model="dwsfusion", data=[str(image_root)], crop=[32, 32], batch_size=1, max_steps=1,
                                     out_dir=str(tmp_path / "b"), progress=False, tensorboard=False))
    with pytest.raises(ConfigError, match="batch_size must be >= 2 for dwsfusion"):
        Trainer(cfg).fit()


def test_finished_weights_are_never_replaced_by_a_new_run(image_root, tmp_path):
    out = tmp_path / "run"
    _trainer(_config(image_root, out, max_steps=2)).fit()
    (out / "last.pt").unlink()  # a finished run kept only its weights, to save space
    weights = (out / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):
        _trainer(_config(image_root, out, max_steps=2)).fit()
    assert (out / "model.safetensors").read_bytes() == weights


@pytest.mark.skipif(AE_MODEL != "lwc-densefuse", reason="needs lwc-densefuse's constructor arguments")
def test_init_from_a_run_takes_the_architecture_it_records(image_root, tmp_path):
    from litefuse.errors import ModelError
    from litefuse.registry import get_model_info

    _trainer(_config(image_root, tmp_path / "a", max_steps=1, model_kwargs={"groups": 4})).fit()
    run_a = tmp_path / "a" / "model.safetensors"
    tuned = _trainer(_config(image_root, tmp_path / "b", max_steps=1, init=str(run_a)))
    assert tuned.config.model_kwargs == {"groups": 4}
    tuned.fit()
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["model_kwargs"] == {"groups": 4}
    with pytest.raises(ModelError, match="weights of 'densefuse', not 'lwc-densefuse'"):
        _trainer(_config(image_root, tmp_path / "c", max_steps=1, init=str(get_model_info("densefuse").weights_path)))


@pytest.mark.parametrize("monitor", ["psnr", "mse"])
def test_the_best_weights_are_the_best_validation_whichever_way_the_monitor_improves(image_root, tmp_path, monitor):
    import csv

    out = tmp_path / "run"
    cfg = _config(image_root, out, max_steps=12, monitor=monitor, val_every=2, stages=[], epochs=10, early_stopping_patience=0,
                  objective={"ssim_weight": 1.0, "grad_weight": 0.0})
    result = _trainer(cfg).fit()
    with (out / "log.csv").open(newline="") as fh:
        vals = [(int(r["step"]), float(r[monitor])) for r in csv.DictReader(fh) if r["kind"] == "val"]
    pick = max if monitor == "psnr" else min
    best_step, best = pick(vals, key=lambda sv: sv[1])
    assert result.best_step == best_step and result.best_val == pytest.approx(best, rel=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_step"] == best_step and summary["best_val"] == pytest.approx(best, rel=1e-5)


def test_the_log_holds_every_step_of_a_finished_run(image_root, tmp_path):
    """A run shorter than ``log_every`` (and without validation) still has its log and its train losses."""
    out = tmp_path / "run"
    _trainer(_config(image_root, out, max_steps=3, log_every=10, val_fraction=0.0)).fit()
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith(",".join(LossLog.BASE)) and [r.split(",")[:2] for r in rows[1:]] == [["train", "3"]]
    LossLog(tmp_path / "new.csv")
    assert (tmp_path / "new.csv").read_text().strip() == ",".join(LossLog.BASE)


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_at_a_step_boundary_and_the_run_resumes_exactly(image_root, tmp_path, signum):
    import os
    import signal

    sig = getattr(signal, signum)
    objective = get_objective(AE_MODEL or "densefuse")()
    step = objective.training_step

    def interrupted_step(batch, at):
        if at == 2:
            os.kill(os.getpid(), sig)  # the handler only sets a flag: this step completes
        return step(batch, at)

    objective.training_step = interrupted_step
    cut = _trainer(_config(image_root, tmp_path / "cut", max_steps=6), objective).fit()
    assert (cut.stop_reason, cut.steps, cut.finished, cut.signal) == ("interrupted", 3, False, sig)
    _trainer(_config(image_root, tmp_path / "cut", max_steps=6)).fit(resume=True)
    _trainer(_config(image_root, tmp_path / "full", max_steps=6)).fit()
    _assert_same_run(tmp_path / "cut", tmp_path / "full")


def test_the_progress_line_keeps_steps_and_clocks_whole_in_80_columns():
    """A long losses text is cut with an ellipsis; rich squeezed the step count and clocks to
    '2… 0:…' in an 80-column terminal instead."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from litefuse.train.trainer import Trainer

    buf = io.StringIO()
    trainer = object.__new__(Trainer)
    trainer.config = SimpleNamespace(progress=True, model="lwc-densefuse")
    trainer.state = SimpleNamespace(step=300)
    trainer.console = Console(width=80, file=buf, force_terminal=False)
    with trainer._progress(1236) as advance:
        advance(300, "loss=0.2134 pixel=0.01234 ssim=0.4512 grad=0.0012")
    line = buf.getvalue().splitlines()[-1]
    assert "300/1236" in line and "0:00:00" in line and "loss=0.2134" in line and len(line) <= 80, line


def test_train_and_study_take_output_as_every_other_command_does(tmp_path):
    """From a CLI QA pass: fuse, demo, export, compare and eval name their output --output; train
    and study only --out ('No such option: --output')."""
    from typer.testing import CliRunner

    from litefuse.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["train", "densefuse", "--data", str(tmp_path / "missing"), "--output", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "directory not found" in bad.output, bad.output
    bad = runner.invoke(app, ["study", "aenetv2", "--variants", "nope", "--output", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "unknown study variant 'nope'" in bad.output, bad.output


def test_a_second_run_into_a_folder_being_trained_is_refused(image_root, tmp_path):
    # two `train -o OUT` at once (a job array, a shell loop) both trained and interleaved
    # last.pt, log.csv and the weights; now the second is refused and leaves the first's files
    from litefuse.errors import OutputError
    from litefuse.train.rundir import LOCK, RunFolder

    out = tmp_path / "run"
    with RunFolder(out) as holder:  # another invocation, still before its first checkpoint
        holder.create()
        (out / "config.json").write_text("{}")
        for resume in (False, True):
            with pytest.raises(OutputError, match="another litefuse train is writing"):
                _trainer(_config(image_root, out, max_steps=2)).fit(resume=resume)
        assert (out / "config.json").read_text() == "{}" and not (out / "last.pt").exists()
    assert not (out / LOCK).exists()
    (out / "config.json").unlink()
    _trainer(_config(image_root, out, max_steps=2)).fit()  # free again once the first ended
    assert not (out / LOCK).exists()


def test_a_file_system_without_locks_still_trains(image_root, tmp_path, monkeypatch):
    """flock unsupported (some network file systems: ENOLCK/EOPNOTSUPP) is not 'another run is
    writing': the run goes on without the lock."""
    import errno

    fcntl = pytest.importorskip("fcntl")
    from litefuse.train.rundir import LOCK

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "run"
    _trainer(_config(image_root, out, max_steps=2)).fit()
    assert (out / "model.safetensors").is_file() and not (out / LOCK).exists()


def test_a_run_that_ends_never_removes_the_lock_of_the_run_that_took_the_folder_after_it(tmp_path, monkeypatch):
    """A failed run's discard removes its lock file; another run may create and lock a new one
    at once. The ending run then unlinked that path a second time, removing the new holder's
    lock file, so a third run could lock a fresh file and train beside the second."""
    fcntl = pytest.importorskip("fcntl")
    import os

    from litefuse.errors import OutputError
    from litefuse.train.rundir import LOCK, RunFolder

    out = tmp_path / "run"
    taken: list[int] = []
    discard = RunFolder.discard

    def discard_then_another_run_locks(self):
        discard(self)
        out.mkdir(exist_ok=True)  # the next run, between this one's discard and its exit
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        taken.append(fd)

    monkeypatch.setattr(RunFolder, "discard", discard_then_another_run_locks)
    with pytest.raises(RuntimeError):
        with RunFolder(out) as first:
            first.create()
            raise RuntimeError("diverged before the first checkpoint")
    try:
        assert (out / LOCK).exists() and os.stat(out / LOCK).st_ino == os.fstat(taken[0]).st_ino
        with pytest.raises(OutputError, match="another litefuse train is writing"):
            with RunFolder(out) as third:
                third.create()
    finally:
        os.close(taken[0])


def test_a_lock_file_the_run_cannot_open_is_one_line_naming_it(tmp_path):
    """A lock file left by a killed run of another user (0644: no O_RDWR here), or anything else
    in its place, escaped as a bare OSError (an internal error, exit 3)."""
    pytest.importorskip("fcntl")
    from litefuse.errors import OutputError
    from litefuse.train.rundir import LOCK, RunFolder

    out = tmp_path / "run"
    (out / LOCK).mkdir(parents=True)
    with pytest.raises(OutputError, match=r"\.litefuse-train\.lock: cannot open the run folder's lock"):
        with RunFolder(out) as folder:
            folder.create()
    assert (out / LOCK).is_dir()
