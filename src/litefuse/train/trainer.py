"""The training loop shared by every litefuse network: :class:`Trainer`.

The trainer owns what is the same for all models — seeding, data loading, the step loop,
validation, ReduceLROnPlateau and early stopping on the validation loss, the time budget, a
per-component loss log (CSV, and TensorBoard when installed), checkpoints with exact resume
(:mod:`.state`), and the export of the best weights as safetensors. What differs per model is
its :class:`~.objective.Objective`.

The loop reads top-down: :meth:`Trainer.fit` sets up, then repeats :meth:`~Trainer.train_epoch`
until :meth:`~Trainer.should_stop` names a reason. :meth:`~Trainer.validate` only measures; the
loop decides what a validation means (best weights, plateau, early stopping, a stage's end).
"""

from __future__ import annotations

import json
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._files import atomic_write_text
from ..data.pairs import Pair, PairProblem
from ..errors import InputError, ModelError, OptionError, TrainingError
from ..registry import file_kwargs, get_model_info, list_models, load_model, load_weights
from ..runtime import keep_full_isa, resolve_device
from .budget import CheckpointSchedule, Deadline, require_progress, stop_on_signal
from .config import ConfigError, TrainConfig
from .objective import Objective, get_objective
from .rundir import CHECKPOINT, CONFIG, LOG, SUMMARY, TENSORBOARD, WEIGHTS, RunFolder
from .state import EarlyStopping, LossLog, TrainState, load_checkpoint, save_checkpoint, save_safetensors, seed_everything, set_rng_state
from .trainset import batch_size, build_datasets, check_same_data, data_record, epoch_loader, to_device, training_pairs

__all__ = ["Trainer", "TrainResult"]

#: stop reasons after which the run is complete (the others leave it resumable)
FINISHED = ("completed", "max_steps", "early stopping")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did."""

    out_dir: Path
    steps: int
    epochs: int
    stop_reason: str
    finished: bool  # False when a budget or a signal cut the run short (resume continues it)
    best_val: float | None
    best_step: int | None
    wall_time_s: float
    weights: Path
    summary: Path
    signal: int | None = None  # the signal (SIGINT, SIGTERM) that interrupted the run
    stage: int | None = None  # the stage it ended in (0-based), for a staged run that has validated


class Trainer:
    """Runs an :class:`~.objective.Objective` on a model under a :class:`~.config.TrainConfig`.

    ``model`` and ``objective`` are built from the registries by ``config.model`` unless given
    (tests, notebooks, architecture studies). Outputs in ``config.run_dir``: ``last.pt``
    (checkpoint), ``log.csv``, ``config.json``, ``model.safetensors`` (best validated weights,
    or the last ones without validation), ``summary.json``, and ``tb/`` when TensorBoard is
    installed.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: nn.Module | None = None,
        objective: Objective | None = None,
        console: Any = None,
    ) -> None:
        config.validate()
        if not config.model and (model is None or objective is None):
            raise ConfigError("config has no model name")
        if console is None:
            from rich.console import Console

            console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.config = _with_init_architecture(config) if model is None else config
        self.console = console
        self.out = config.run_dir
        self._given_model, self._given_objective = model, objective
        # built by fit(): the seed must be set first, and a resume builds differently
        self.device: torch.device | None = None
        self.model: nn.Module | None = None
        self.objective: Objective | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.steps_per_epoch = 0
        self.deadline: Deadline | None = None
        self.state = TrainState()
        self.log: LossLog | None = None
        self._tb: Any = None  # TensorBoard SummaryWriter, when installed and enabled
        self._checkpoints: CheckpointSchedule | None = None
        self._stop = threading.Event()  # set by SIGINT/SIGTERM: stop at the next step boundary
        self._signals: list[int] = []  # the signals received
        self._data: list | None = None  # the record of the run's pairs (trainset.data_record)
        self._start: dict[str, torch.Tensor] | None = None  # a fine-tune's starting weights

    # -- the run ------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> TrainResult:
        """Train (or continue the run in ``config.run_dir`` with ``resume=True``). A start that fails
        before the first checkpoint removes what it wrote (:class:`~.rundir.RunFolder`)."""
        start = time.monotonic()
        with RunFolder(self.out) as folder:
            fresh = self._setup(resume, folder, start)
            if fresh and self.config.init and self.val_set is not None:
                # step 0: fine-tuning never exports worse than its start. Enter the first stage
                # before (its loss weights, fresh trackers), so the loop does not reset this best.
                self._enter_epoch()
                self._record(self.validate())
            reason = self._run()
            require_progress(self.state.step, reason, self.deadline)  # no step: no weights, nothing kept
            if self.val_set is not None and self.state.last_val_step != self.state.step and reason != "interrupted":
                self._record(self.validate())
            if reason in FINISHED and self.state.running_n:
                # the steps since the last log row; a resumable stop keeps them in its checkpoint instead,
                # so that a resumed run logs exactly as an uninterrupted one
                self._write_row("train", self.state.running_means(reset=True))
            self.save_checkpoint()
            summary = self._export(reason, reason in FINISHED)
            if self._tb is not None:
                self._tb.close()
            st = self.state
            self.console.print(
                f"{self.config.model}: {reason} after {st.step} steps "
                f"({time.monotonic() - start:.0f} s); weights -> {self.out / WEIGHTS}",
                markup=False,
            )
            return TrainResult(
                self.out, st.step, st.epoch, reason, reason in FINISHED,
                self._best_value(), st.best_step,
                time.monotonic() - start, self.out / WEIGHTS, summary,
                self._signals[0] if reason == "interrupted" and self._signals else None,
                st.stage if self.config.stages and st.last_val_step >= 0 else None,
            )

    def _run(self) -> str:
        """Epochs until :meth:`should_stop` names a reason; returns it."""
        cfg, st = self.config, self.state
        total = self.steps_per_epoch * cfg.total_epochs
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        with self._progress(int(total)) as advance, stop_on_signal(self._stop, self._signals):
            while (reason := self.should_stop()) is None:
                self._enter_epoch()
                if self.train_epoch(advance):
                    continue  # early stopping ended the stage mid-epoch
                if st.batch >= self.steps_per_epoch:  # the epoch is complete (not cut by a budget)
                    st.epoch, st.batch = st.epoch + 1, 0
                    if not cfg.val_every and self._scheduled_validation():
                        self._end_stage()
        return reason

    def train_epoch(self, advance: Callable[[int, str], None] = lambda step, text: None) -> bool:
        """The remaining batches of the current epoch; stops early at a budget or a signal.

        Returns True when a validation's early stopping ended the stage (the epoch is abandoned).
        """
        cfg, st = self.config, self.state
        for batch in epoch_loader(self.train_set, cfg, st.epoch, st.batch, self.steps_per_epoch, self.device):
            losses = self.objective.training_step(to_device(batch, self.device), st.step)
            diverged = {k: v for k, v in losses.items() if not math.isfinite(v)}
            if diverged:
                raise TrainingError(
                    f"step {st.step + 1}: the training loss is {', '.join(f'{k} = {v}' for k, v in diverged.items())}; "
                    f"the run diverged and wrote no weights (lower lr={cfg.lr:g}, or set grad_clip)"
                )
            st.step += 1
            st.batch += 1
            st.accumulate(losses)
            if st.step % cfg.log_every == 0:
                self._write_row("train", st.running_means(reset=True))
            stage_over = bool(cfg.val_every) and st.step % cfg.val_every == 0 and self._scheduled_validation()
            if stage_over:
                self._end_stage()  # before a checkpoint of this step, which then resumes past it
            if self._checkpoints.due(st.step):
                self.save_checkpoint()
            advance(st.step, self._running_text())
            if stage_over:
                return True
            if self.should_stop():
                break
        return False

    def should_stop(self) -> str | None:
        """Why the run must stop now (``early stopping``, ``interrupted``, ``max_steps``,
        ``completed``, ``time budget``), or None."""
        cfg, st = self.config, self.state
        if st.early_stopped:
            return "early stopping"
        if self._stop.is_set():
            return "interrupted"
        if cfg.max_steps is not None and st.step >= cfg.max_steps:
            return "max_steps"
        if st.epoch >= cfg.total_epochs:
            return "completed"
        if self.deadline.expired():
            return "time budget"
        return None

    # -- validation -----------------------------------------------------------------------------

    def validate(self) -> dict[str, float]:
        """Mean validation outputs of the objective over the validation set (nets in eval mode)."""
        modules = [self.model, *self.objective.nets.values()]
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        sums: dict[str, float] = {}
        count = 0
        loader = DataLoader(self.val_set, batch_size=self.config.batch_size, shuffle=False)  # in-memory crops: no workers
        with torch.no_grad():
            for batch in loader:
                n = batch_size(batch)
                for k, v in self.objective.validation_step(to_device(batch, self.device)).items():
                    sums[k] = sums.get(k, 0.0) + float(v) * n
                count += n
        for m, mode in zip(modules, modes):
            m.train(mode)
        return {k: v / count for k, v in sums.items()}

    def _record(self, metrics: Mapping[str, float]) -> float:
        """Log a validation and keep the best weights; returns the monitored value as a score (lower is better)."""
        cfg, st = self.config, self.state
        if cfg.monitor not in metrics:
            raise ConfigError(f"monitor {cfg.monitor!r} is not a validation output; choose from {', '.join(metrics)}")
        score = self._sign() * metrics[cfg.monitor]  # lower is better, whatever the monitor
        st.last_val_step = st.step
        self._write_row("val", metrics)
        improved = st.improve(score, self.model)
        text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        self.console.print(f"val @ step {st.step}: {text}{' *' if improved else ''}", markup=False)
        return score

    def _sign(self) -> float:
        """-1 when the monitored output improves upwards (:attr:`~.objective.Objective.higher_is_better`), else 1."""
        return -1.0 if self.config.monitor in self.objective.higher_is_better else 1.0

    def _best_value(self) -> float | None:
        """The best monitored validation value so far, as logged (None before any validation)."""
        return None if math.isinf(self.state.best_val) else self._sign() * self.state.best_val

    def _scheduled_validation(self) -> bool:
        """A validation of the schedule (``val_every`` or epoch end): it also drives the plateau
        schedulers and early stopping. True when early stopping's patience ran out."""
        if self.val_set is None:
            return False
        value = self._record(self.validate())
        for sched in self.state.plateau.values():
            sched.step(value)
        return self.state.stopper.update(value)

    def _end_stage(self) -> None:
        """Early stopping: jump to the next stage's first epoch, or end the run after the last stage."""
        cfg, st = self.config, self.state
        starts = cfg.stage_starts()
        nxt = st.stage + 1 if st.stage is not None else len(starts)
        if nxt < len(starts) and starts[nxt] < cfg.total_epochs:
            self.console.print(f"early stopping: stage {nxt} ends at step {st.step}", markup=False)
            st.epoch, st.batch = starts[nxt], 0
        else:
            self.console.print(f"early stopping at step {st.step}", markup=False)
            st.early_stopped = True

    # -- set-up ---------------------------------------------------------------------------------

    def _setup(self, resume: bool, folder: RunFolder, start: float) -> bool:
        """Seed, build model, objective and data, restore a checkpoint; True for a fresh run."""
        cfg = self.config
        unpaired: list[PairProblem] = []
        pairs = training_pairs(cfg.data, unpaired)  # listed once: checked against the run folder, then split
        _check_not_a_data_folder(self.out, cfg.data, pairs)  # before anything is written there
        folder.create()  # and locked: what is read and checked below is not another run's half-written work
        ckpt = None
        # the pairs trained and validated on, as a checkpoint records them (val_data's listed here too)
        self._data = data_record([*pairs, *(training_pairs(cfg.val_data, [], validation=True) if cfg.val_data else [])])
        if resume:  # the config may take the model_kwargs the run adopted from its init file (load_checkpoint)
            ckpt, cfg = load_checkpoint(self.out / CHECKPOINT, cfg)
            check_same_data(ckpt.get("data"), self._data)
            self.config = cfg
        if ckpt is None and any((self.out / name).exists() for name in (CHECKPOINT, WEIGHTS, SUMMARY)):
            # a finished run whose last.pt was removed still holds weights that must not be replaced
            raise ConfigError(f"{self.out} already holds a run; pass --resume to continue it or choose another output folder")
        if ckpt is None and cfg.init not in ("", "pretrained") and not Path(cfg.init).is_file():  # a resume does not need it
            if Path(cfg.init).is_dir():
                raise ConfigError(f"init: {cfg.init} is a folder, not a weights file (a run's is {Path(cfg.init) / WEIGHTS})")
            raise ConfigError(f"init: weights file not found: {cfg.init} (use 'pretrained' for the shipped weights)")
        # the order below is the order of random draws (model init, critics, crops): keep it
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        keep_full_isa()  # the inference-only AVX2 cap (runtime.onednn_isa_cap) made lwc-densefuse's training steps slower
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.model = self._build_model(init=ckpt is None).to(self.device).train()
        # a fine-tune's starting weights, which every stage compares against (_start_as_rival); a
        # resume takes them from the checkpoint (None in one written before they were kept there)
        self._start = (ckpt.get("start") if ckpt is not None else
                       {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()} if cfg.init else None)
        given = self._given_objective
        self.objective = given if given is not None else get_objective(cfg.objective_name or cfg.model)()
        self.objective.build(self.model, cfg)
        self.deadline = self.objective.deadline = Deadline(cfg.max_minutes, start, str(self.out))
        self.train_set, self.val_set = build_datasets(self.objective, cfg, self.console, pairs, unpaired)
        self.steps_per_epoch = len(self.train_set) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise InputError(f"{len(self.train_set)} training crops is fewer than one batch of {cfg.batch_size}; "
                             "lower the batch size (--batch-size or --set batch_size=N), or raise crops_per_image (--set crops_per_image=N)")

        self.state = TrainState(started=start)
        self.state.new_stage(*self._stage_trackers())
        if note := cfg.unreached_stages():
            self.console.print(note, markup=False)
        self._checkpoints = CheckpointSchedule(cfg.checkpoint_every, cfg.checkpoint_minutes)
        if ckpt is None:
            (self.out / LOG).unlink(missing_ok=True)
        self.log = LossLog(self.out / LOG)
        if ckpt is not None:
            self._restore(ckpt)
            self.log.truncate_after(self.state.step)
        saved = self._saved_config() if ckpt is not None else {}
        # the run's length as last asked (a resume's --max-steps / --epochs), so a plain --resume
        # goes on to it rather than back to the first invocation's; per-invocation settings
        # (time budget, device, threads, progress) stay as the first run wrote them
        length = {k: v for k, v in cfg.to_dict().items() if k in ("epochs", "max_steps")}
        if ckpt is None or any(saved.get(k) != v for k, v in length.items()):
            atomic_write_text(self.out / CONFIG, json.dumps({**(saved or cfg.to_dict()), **length}, indent=2) + "\n")
        self._tb = self._tensorboard()
        return ckpt is None

    def _saved_config(self) -> dict[str, Any]:
        """The run folder's ``config.json`` (empty when missing or unreadable: then rewritten whole)."""
        try:
            saved = json.loads((self.out / CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def _build_model(self, init: bool = True) -> nn.Module:
        """The network to train; ``init`` loads ``config.init`` (a resumed run skips it: the
        checkpoint replaces every weight anyway)."""
        cfg = self.config
        model = self._given_model
        if model is None:
            if get_model_info(cfg.model).kind != "network":
                raise ModelError(f"model {cfg.model!r} is classical; there is nothing to train")
            try:
                model = load_model(cfg.model, pretrained=False, **cfg.model_kwargs)
            except OptionError as exc:  # a keyword the constructor does not take
                raise ConfigError(f"[model_kwargs] do not fit {exc}") from None
        if init and cfg.init:
            # a model given without a registered name has no registry facts (shipped weights, filter)
            info = get_model_info(cfg.model) if cfg.model in {m.name for m in list_models()} else None
            if cfg.init != "pretrained":
                source = Path(cfg.init)
            elif info is not None and info.weights_path is not None:
                source = info.weights_path
            else:
                raise ModelError(f"init = 'pretrained' but {cfg.model or 'this model'!r} ships no weights; pass a weights file")
            load_weights(model, source, checkpoint_filter=info.checkpoint_filter if info is not None else None)
            self.console.print(f"init: weights from {source}", markup=False)
        return model

    def _start_as_rival(self) -> None:
        """A fine-tune's starting weights, validated under the stage just entered, as that stage's
        first best (step 0). Each stage keeps its own best under its own loss weights, so the step-0
        validation competes in the first stage only: without this a later stage could export weights
        worse than the start. No random draw and no log row: a resumed run stays step-exact."""
        st = self.state
        if self._start is None:  # resumed from a checkpoint written before the start was kept in it
            return
        current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        try:
            self.model.load_state_dict(self._start)
            metrics = self.validate()
            improved = st.improve(self._sign() * metrics[self.config.monitor], self.model, step=0)
        finally:
            self.model.load_state_dict(current)
        text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        self.console.print(f"val of the starting weights (step 0) in stage {st.stage + 1}: {text}{' *' if improved else ''}",
                           markup=False)

    def _stage_trackers(self) -> tuple[EarlyStopping, dict[str, torch.optim.lr_scheduler.ReduceLROnPlateau]]:
        """Fresh early stopping and plateau schedulers (on the objective's ``plateau_on`` optimizers)."""
        cfg, objective = self.config, self.objective
        plateau = {}
        if cfg.plateau_patience is not None:
            for name, opt in objective.optimizers.items():
                if objective.plateau_on is not None and name not in objective.plateau_on:
                    continue
                plateau[name] = torch.optim.lr_scheduler.ReduceLROnPlateau(
                    opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
                )
        return EarlyStopping(cfg.early_stopping_patience), plateau

    def _enter_epoch(self) -> None:
        """Apply the epoch's stage (fresh plateau/early-stopping/best tracking on a change)."""
        st = self.state
        index = self.objective.stage(st.epoch)
        if index != st.stage:
            if st.stage is not None:
                self.console.print(f"stage {index + 1} from epoch {st.epoch + 1} (step {st.step})", markup=False)
            st.new_stage(*self._stage_trackers())
            entered, st.stage = st.stage is not None, index
            if entered and self.config.init and self.val_set is not None:
                self._start_as_rival()
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(st.epoch)

    def _tensorboard(self) -> Any:
        if not self.config.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ModuleNotFoundError as exc:  # optional: TensorBoard is not a dependency
            if (exc.name or "").partition(".")[0] != "tensorboard":
                raise
            self.console.print("note: no TensorBoard logs (tensorboard is not installed; log.csv holds the same numbers)",
                               markup=False)
            return None
        return SummaryWriter(str(self.out / TENSORBOARD))

    # -- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Write ``last.pt`` (between two steps; see :mod:`.state`); never of non-finite weights."""
        _require_finite(self.model.state_dict(), f"weights at step {self.state.step}")
        save_checkpoint(self.out / CHECKPOINT, model=self.model, objective=self.objective, state=self.state, config=self.config,
                        data=self._data, start=self._start)

    def _restore(self, ckpt: Mapping[str, Any]) -> None:
        st = self.state
        self.model.load_state_dict(ckpt["model"])
        st.load_state_dict(ckpt["trainer"], best_model=ckpt["best_model"])
        if st.stage is not None:
            # re-enter the saved stage (its loss weights) *before* the optimizer state restores
            # the lr; if the epoch has moved on, the loop's stage change then happens as it would have
            self.objective.stage(self.config.stage_starts()[st.stage])
        self.objective.load_state_dict(ckpt["objective"])
        set_rng_state(ckpt["rng"])
        self.console.print(f"resumed {self.out / CHECKPOINT} at step {st.step} (epoch {st.epoch + 1}, batch {st.batch})", markup=False)

    # -- logging and export ---------------------------------------------------------------------

    def _running_text(self) -> str:
        return " ".join(f"{k}={v:.4g}" for k, v in list(self.state.running_means().items())[:4])

    def _write_row(self, kind: str, metrics: Mapping[str, float]) -> None:
        st = self.state
        opts = list(self.objective.optimizers.values())
        lr = opts[0].param_groups[0]["lr"] if opts else float("nan")
        row = {"kind": kind, "step": st.step, "epoch": st.epoch, "stage": (st.stage or 0) + 1,
               "lr": lr, "time_s": round(st.elapsed_s(), 2), **metrics}
        self.log.write(row)
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"{kind}/{k}", v, st.step)
            self._tb.add_scalar("lr", lr, st.step)

    @contextmanager
    def _progress(self, total: int) -> Iterator[Callable[[int, str], None]]:
        if not self.config.progress:
            yield lambda step, text: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from rich.table import Column

        # the losses take what the bar, the step count and the clocks leave (cut with "…"): left
        # to rich, a long losses text squeezed those columns to "━━ 2… 0:…" in 80 columns
        description = f"train {self.config.model}"
        width = self.console.width
        bar_width = min(40, max(10, width - 100))
        # description, bar, 'step/total', two H:MM:SS clocks and the five spaces between columns
        fixed = len(description) + bar_width + 2 * len(str(total)) + 1 + 2 * 7 + 5
        losses = Column(no_wrap=True, overflow="ellipsis", max_width=max(12, width - fixed - 1))
        bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=bar_width), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[losses]}", table_column=losses), console=self.console,
        )
        with bar:
            task = bar.add_task(description, total=total, completed=self.state.step, losses="")
            yield lambda step, text: bar.update(task, completed=step, losses=text)

    def _export(self, stop_reason: str, finished: bool) -> Path:
        """Write ``model.safetensors`` (best validated weights, else the last) and ``summary.json``."""
        cfg, st = self.config, self.state
        chosen = "best" if st.best_model is not None else "last"
        best = self._best_value()
        _require_finite(st.best_model if chosen == "best" else self.model.state_dict(), f"{chosen} weights at step {st.step}")
        save_safetensors(st.best_model if chosen == "best" else self.model.state_dict(), self.out / WEIGHTS, {
            "model": cfg.model, "model_kwargs": json.dumps(cfg.model_kwargs), "step": str(st.best_step if chosen == "best" else st.step),
            "val_" + cfg.monitor: str(best), "seed": str(cfg.seed), "ir_norm": cfg.ir_norm,
        })
        summary = {
            "model": cfg.model,
            "model_kwargs": cfg.model_kwargs,
            "weights": WEIGHTS,
            "weights_from": chosen,
            "params": sum(p.numel() for p in self.model.parameters()),
            "seed": cfg.seed,
            "steps": st.step,
            "epochs_completed": st.epoch,
            "stage": (st.stage or 0) + 1,
            "stop_reason": stop_reason,
            "finished": finished,
            "best_val": best,
            "best_step": st.best_step,
            "monitor": cfg.monitor,
            "wall_time_s": round(st.elapsed_s(), 2),
            "train_crops": len(self.train_set),
            "val_crops": len(self.val_set) if self.val_set is not None else 0,
            "device": str(self.device),
            "torch": torch.__version__,
            "config": cfg.to_dict(),
        }
        path = self.out / SUMMARY
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
        return path


def _require_finite(state: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`TrainingError` when a floating tensor of ``state`` holds NaN or infinity:
    a diverged run must not leave weights that fuse every image into NaN."""
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise TrainingError(f"the {what} hold NaN or infinite values ({bad[0]}{' and more' if len(bad) > 1 else ''}); "
                            "the run diverged and wrote no weights (lower lr, or set grad_clip)")


def _check_not_a_data_folder(out: Path, roots: list[str], pairs: Sequence[Pair]) -> None:
    """Refuse a run folder that is a data root or holds training images (``pairs``): the run's
    files would land among the pairs (and a later run would read them as unpaired images)."""
    folders = {Path(r).resolve() for r in roots} | {p.parent.resolve() for pair in pairs for p in (pair.a, pair.b)}
    if Path(out).resolve() in folders:
        raise ConfigError(f"{out}: is a training data folder; write the run elsewhere (--output)")


def _with_init_architecture(config: TrainConfig) -> TrainConfig:
    """``config`` with the constructor arguments of its ``init`` weights file
    (:func:`~litefuse.registry.file_kwargs`: a litefuse run's record, the shipped file's for
    ``"pretrained"``, e.g. aenetv2's ``border``, or what its tensor shapes imply), unless the
    config sets its own: fine-tuning a run trained with ``model_kwargs`` then needs no
    repetition of them. A file that names another model is a one-line :class:`ModelError`
    here, not a tensor-shape dump at load time."""
    if not config.init or config.model not in {m.name for m in list_models()}:
        return config
    path = get_model_info(config.model).weights_path if config.init == "pretrained" else Path(config.init)
    if path is None or not path.is_file():
        return config
    recorded = file_kwargs(config.model, path, hint="train that model, or start from another file")
    return config if not recorded or config.model_kwargs else config.replace(model_kwargs=recorded)
