"""The model-specific part of training: the :class:`Objective` base class and its registry.

An objective owns what differs between models — losses, optimizers (and extra networks such
as GAN critics), and how loss weights change across the stages of a schedule — while the
:class:`~.trainer.Trainer` owns what is shared. ``training_step`` does its own backward and
optimizer steps, so an objective with several optimizers (generator and critics) fits the same
loop as a plain reconstruction loss.

Which objective trains which model is a registry fact (:attr:`~litefuse.registry.ModelInfo.objective`,
an objective name). Objective ``<name>`` is registered with :func:`register_objective` by the
module ``litefuse/train/objectives/<name>.py``, which :func:`get_objective` imports on first use.
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import GreyCropDataset, PairCropDataset
from ..data.pairs import Pair
from ..errors import ModelError
from ..registry import get_model_info, list_models
from .budget import Deadline
from .config import OPTIMIZERS, ConfigError, TrainConfig

__all__ = ["Batch", "Objective", "get_objective", "list_objectives", "make_optimizer", "register_objective"]

#: one batch as the dataset yields it: a tensor, or a tuple/dict of tensors
Batch = Any


class Objective:
    """The model-specific part of training: losses, optimizers, extra nets, staged weights.

    Subclasses set :attr:`defaults` (their parameters, overridable in the config's
    ``[objective]`` table), :attr:`stage_keys` (parameters a ``[[stages]]`` row may set),
    :attr:`data` (``"grey"`` single images or ``"pair"`` registered pairs), and implement
    :meth:`training_step` and :meth:`validation_step`. ``build`` must create the optimizers in
    :attr:`optimizers` (the model's first: plateau and a stage's ``lr`` act on it) and put any
    extra network (e.g. a critic) in :attr:`nets` so that it is checkpointed and switched
    between train and eval mode with the model.
    """

    data: ClassVar[str] = "grey"
    defaults: ClassVar[dict[str, Any]] = {}
    stage_keys: ClassVar[frozenset[str]] = frozenset()
    #: optimizers that ReduceLROnPlateau acts on (``None`` = all of them)
    plateau_on: ClassVar[tuple[str, ...] | None] = None
    #: validation outputs that improve upwards (similarities, PSNR): a run monitoring one keeps
    #: its highest value, and its plateau and early stopping wait for it to rise
    higher_is_better: ClassVar[frozenset[str]] = frozenset({"ssim", "msssim", "wssim", "t_ssim", "psnr"})

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.config: TrainConfig | None = None
        self.params: dict[str, Any] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.nets: dict[str, nn.Module] = {}
        self.stage_index: int | None = None
        self.deadline: Deadline | None = None  # the run's time budget (set by the trainer): pre-passes check it
        self._trainable: dict[str, bool] = {}  # requires_grad before any freeze (set by build)
        self._initial_lrs: dict[str, list[float]] | None = None  # lrs every later stage starts from

    # -- set-up ---------------------------------------------------------------------------

    def build(self, model: nn.Module, config: TrainConfig) -> None:
        """Bind to ``model`` and check the config's objective parameters and stage rows.

        Subclasses call ``super().build(model, config)`` first, then create their optimizers.
        """
        unknown = sorted(set(config.objective) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(f"[objective]: unknown key {unknown[0]!r} for {config.model}; known keys: {known}")
        for i, row in enumerate(config.stages, 1):
            extra = sorted(set(row) - {"epochs", "lr", "freeze"} - set(self.stage_keys))
            if extra:
                known = ", ".join(["epochs", "freeze", "lr", *sorted(self.stage_keys)])
                raise ConfigError(f"[[stages]] row {i}: unknown key {extra[0]!r}; known keys: {known}")
        names = [name for name, _ in model.named_parameters()]
        for where, prefixes in [("freeze", config.freeze)] + [
            (f"[[stages]] row {i}: freeze", row["freeze"]) for i, row in enumerate(config.stages, 1) if "freeze" in row
        ]:
            if not isinstance(prefixes, list) or not all(isinstance(x, str) for x in prefixes):
                raise ConfigError(f"{where} must be a list of parameter-name prefixes, got {prefixes!r}")
            for prefix in prefixes:
                if not any(_under(name, prefix) for name in names):
                    tops = ", ".join(dict.fromkeys(name.split(".")[0] for name in names))
                    raise ConfigError(f"{where}: {prefix!r} names no parameter of {config.model}; top-level modules: {tops}")
            trainable = [name for name, p in model.named_parameters() if p.requires_grad]
            if trainable and all(any(_under(name, prefix) for prefix in prefixes) for name in trainable):
                raise ConfigError(f"{where}: freezes every parameter of {config.model}; nothing would train")
        if config.batch_size < 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ConfigError(f"batch_size must be >= 2 for {config.model}: its batch normalisation needs two samples "
                              f"per batch, got {config.batch_size}")
        self.model, self.config = model, config
        self.params = {**self.defaults, **config.objective}
        self._trainable = {name: p.requires_grad for name, p in model.named_parameters()}  # what freeze restores

    def build_datasets(
        self, train: Sequence[Pair], val: Sequence[Pair], config: TrainConfig
    ) -> tuple[Dataset, Dataset | None]:
        """Training and validation datasets from the split pairs (by :attr:`data`); the second may be empty."""
        cls = {"grey": GreyCropDataset, "pair": PairCropDataset}[self.data]
        common = dict(crop=config.crop, small=config.small_images, workers=max(2, os.cpu_count() or 1), ir_norm=config.norm)
        train_ds = cls(train, train=True, seed=config.seed, crops_per_image=config.crops_per_image, **common)
        val_ds = cls(val, train=False, **common) if val else None
        return train_ds, val_ds

    # -- schedule -------------------------------------------------------------------------

    def stage(self, epoch: int) -> int:
        """Enter the stage of ``epoch``; returns its index. Calls :meth:`on_stage` on a change."""
        assert self.config is not None, "build() first"
        index = self.config.stage_of(epoch)
        if index != self.stage_index:
            row = self.config.stages[index] if self.config.stages else {}
            self.stage_index = index
            self.on_stage(index, {**self.params, **{k: v for k, v in row.items() if k != "epochs"}})
        return index

    def on_stage(self, index: int, params: dict[str, Any]) -> None:
        """Apply a stage's parameters (the ``[objective]`` values updated by the stage row).

        The base version manages learning rates: every stage after the first starts from the
        optimizers' initial lrs (undoing plateau cuts of the previous stage), and a row's ``lr``
        sets the model optimizer's (the first one's). ``freeze`` (the row's, else the config's)
        stops updates of the model parameters under those name prefixes: they get no gradient,
        so the optimizers skip them.
        """
        if self.model is not None and self.config is not None:
            frozen = params.get("freeze", self.config.freeze)
            for name, param in self.model.named_parameters():
                param.requires_grad_(self._trainable[name] and not any(_under(name, prefix) for prefix in frozen))
        if self._initial_lrs is None:
            self._initial_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in self.optimizers.items()}
        elif index > 0:
            for key, opt in self.optimizers.items():
                for group, lr in zip(opt.param_groups, self._initial_lrs[key]):
                    group["lr"] = lr
        if "lr" in params and self.optimizers:
            for group in next(iter(self.optimizers.values())).param_groups:
                group["lr"] = float(params["lr"])

    # -- steps ----------------------------------------------------------------------------

    def training_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One optimisation step (forward, backward, optimizer steps); returns loss components."""
        raise NotImplementedError

    def validation_step(self, batch: Batch) -> dict[str, float]:
        """Loss components on a held-out batch (called under ``torch.no_grad``, nets in eval mode)."""
        raise NotImplementedError

    def optimize(self, loss: torch.Tensor, name: str | None = None) -> None:
        """zero_grad → backward → optional norm clipping (``grad_clip``) → step of one optimizer."""
        opt = self.optimizers[name] if name is not None else next(iter(self.optimizers.values()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config is not None and self.config.grad_clip > 0:
            params = [p for group in opt.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        opt.step()

    # -- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Optimizers and extra nets (the model itself is saved by the trainer)."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "nets": {k: m.state_dict() for k, m in self.nets.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        for key, net in self.nets.items():
            net.load_state_dict(state["nets"][key])


def _under(name: str, prefix: str) -> bool:
    """Whether parameter ``name`` lies under the dotted ``prefix`` (``a.b`` covers ``a.b.weight``, not ``a.bc``)."""
    return name == prefix or name.startswith(prefix + ".")


_OBJECTIVES: dict[str, type[Objective]] = {}
_PACKAGE = "litefuse.train.objectives"


def register_objective(*names: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator registering an :class:`Objective` under one or more objective names."""

    def wrap(cls: type[Objective]) -> type[Objective]:
        for name in names:
            if name in _OBJECTIVES and _OBJECTIVES[name] is not cls:
                raise ValueError(f"objective {name!r} registered twice")
            _OBJECTIVES[name] = cls
        return cls

    return wrap


def get_objective(name: str) -> type[Objective]:
    """The objective class of model ``name`` (its registry fact), or of the objective ``name`` (e.g. ``distill``)."""
    key = name
    if name in {m.name for m in list_models()}:
        key = get_model_info(name).objective
        if key is None:
            raise ModelError(f"no training objective for model {name!r}; trainable models: {', '.join(list_objectives())}")
    if key not in _OBJECTIVES and key.isidentifier():
        try:
            import_module(f"{_PACKAGE}.{key}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{_PACKAGE}.{key}":  # a real import bug inside the objective module
                raise
    try:
        return _OBJECTIVES[key]
    except KeyError:
        raise ModelError(
            f"no training objective {name!r}; trainable models: {', '.join(list_objectives())}"
        ) from None


def list_objectives() -> list[str]:
    """Names of the models that have a training objective (the trainable ones)."""
    return [m.name for m in list_models() if m.objective is not None]


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """``adam`` | ``adamw`` | ``sgd`` (momentum 0.9) | ``rmsprop``."""
    name = name.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
