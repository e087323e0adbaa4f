"""Training configuration: :class:`TrainConfig`, its TOML/JSON loading and value checks.

A run is a pure function of its config (and data), so the config is strict: unknown keys,
wrong types and impossible values fail at load time as :class:`ConfigError`, naming the file
and key, instead of surfacing as a confusing failure minutes into a run. The packaged default
config of a model is a registry fact (:attr:`~litefuse.registry.ModelInfo.config`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from ..errors import LitefuseError
from ..io import MAX_SIDE
from ..registry import get_model_info

if TYPE_CHECKING:
    from ..io import Norm

__all__ = ["ConfigError", "TrainConfig", "OPTIMIZERS", "default_config_path"]

#: optimizer names :func:`~.objective.make_optimizer` builds
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


class ConfigError(LitefuseError):
    """A bad training configuration: unknown key, wrong type, impossible value."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; loaded from TOML, overridable from the CLI.

    TOML format: the scalar fields below as top-level keys, plus three tables::

        model = "lwc-densefuse"
        data = ["../shared/data/ivif", "../shared/data/mff"]   # pair folders or their parents
        crop = [256, 256]                                        # H, W (an int means square)
        batch_size = 8
        lr = 1e-3
        [model_kwargs]            # passed to the model factory (e.g. variant = "dws")
        [objective]               # objective parameters (e.g. ssim_weight = 100.0)
        [[stages]]                # optional staged schedule: one row per stage
        epochs = 10               #   its length in epochs; every other key is an objective
        ssim_weight = 1.0         #   parameter for that stage ("lr" resets the model's lr)

    ``epochs`` defaults to the sum of the stages' epochs; with more epochs than the stages
    cover, the last stage continues. ``max_steps`` and ``max_minutes`` cap a run further
    (``max_minutes`` counts per invocation, data loading and pre-passes included). ``litefuse train``
    resolves a config file's relative ``data`` paths against its folder (:mod:`.trainset`).
    """

    model: str = ""
    objective_name: str = ""  # "" = the model's own objective; "distill" = teacher-student training
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    objective: dict[str, Any] = field(default_factory=dict)
    # data
    data: list[str] = field(default_factory=list)
    crop: tuple[int, int] = (256, 256)
    crops_per_image: int = 1
    small_images: str = "pad"  # images smaller than the crop: "pad" (reflect) or "skip"
    ir_norm: str = "range"  # infrared scale, as `fuse --ir-norm`: "range", "minmax" or the sensor's peak ("4095")
    val_fraction: float = 0.1  # pairs of ``data`` held out for validation (by a stable hash of their names)
    val_data: list[str] = field(default_factory=list)  # validation pair folders instead: every pair of ``data`` trains
    batch_size: int = 8
    num_workers: int = 0
    # length and budget
    epochs: int | None = None
    max_steps: int | None = None
    max_minutes: float | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    # initial weights: "" = random (from scratch), "pretrained" = the shipped weights, or a
    # weights file (safetensors / torch; a release checkpoint the model can remap) to fine-tune
    init: str = ""
    # parameters that get no updates: dotted name prefixes of the model's parameters
    # (e.g. ["alpha_net"] or ["encoder", "fusion.conv1"]); a [[stages]] row may set its own
    freeze: list[str] = field(default_factory=list)
    # optimisation
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    # validation, plateau, early stopping (patiences count validations)
    val_every: int = 0  # steps between validations; 0 = at the end of every epoch
    monitor: str = "loss"
    plateau_patience: int | None = None  # torch semantics: cut lr after > patience bad validations; unset = off
    plateau_factor: float = 0.1
    min_lr: float = 1e-6
    early_stopping_patience: int = 0  # stop (or end the stage) after this many bad validations; 0 = off
    # bookkeeping
    log_every: int = 10
    checkpoint_every: int = 200
    checkpoint_minutes: float = 5.0  # also save last.pt this long after the previous save; 0 = steps only
    seed: int = 0
    out_dir: str = ""  # default runs/<model>
    device: str = "auto"
    threads: int = 0  # CPU threads for torch (torch.set_num_threads); 0 = torch's default
    progress: bool = True
    tensorboard: bool = True

    #: fields a resumed run may change; every other field must match the checkpoint
    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"epochs", "max_steps", "max_minutes", "device", "threads", "num_workers", "progress", "tensorboard",
         "log_every", "checkpoint_every", "checkpoint_minutes", "out_dir"}
    )

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """Build from a plain mapping, checking every key and type."""
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(names)}")
        config = cls(**{k: _coerce(k, v, hints[k], source) for k, v in values.items()})
        config.validate(source)
        return config

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """Read a TOML (or JSON, e.g. a run's ``config.json``) file; ``overrides`` win (``None`` = keep)."""
        values = cls.read(path)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(values, source=str(path))

    @staticmethod
    def read(path: str | Path) -> dict[str, Any]:
        """The raw values of a TOML (or JSON) config file, unchecked."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            text = path.read_text(encoding="utf-8")
            return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a valid {'JSON' if path.suffix == '.json' else 'TOML'} file ({exc})") from None

    def replace(self, source: str = "override", **overrides: Any) -> "TrainConfig":
        """A copy with ``overrides`` applied (``None`` = keep), checked like :meth:`from_dict`;
        a problem names ``source`` (e.g. the command-line option that set the value)."""
        values = self.to_dict()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return type(self).from_dict(values, source=source)

    def apply_sets(self, assignments: Sequence[str]) -> "TrainConfig":
        """Apply ``key=value`` strings (value in TOML syntax; ``table.key=value`` for tables)."""
        values = self.to_dict()
        for item in assignments:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
            try:
                value = tomllib.loads(f"v = {raw.strip()}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw.strip()  # a bare word: take it as a string
            table, dot, sub = key.partition(".")
            if dot:
                if not isinstance(values.get(table), dict):
                    raise ConfigError(f"--set {item!r}: {table!r} is not a table (model_kwargs, objective)")
                values[table] = {**values[table], sub: value}
            else:
                values[key] = value
        return type(self).from_dict(values, source="--set")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    # -- derived --------------------------------------------------------------------------

    @property
    def norm(self) -> "Norm":
        """:attr:`ir_norm` as :func:`litefuse.io.read_image` takes it (a peak value as a number)."""
        from ..io import parse_norm

        return parse_norm(self.ir_norm)

    def validate(self, source: str = "config") -> None:
        """Check value ranges and combinations; a problem raises :class:`ConfigError` naming ``source``."""

        def bad(msg: str) -> ConfigError:
            return ConfigError(f"{source}: {msg}")

        if self.batch_size < 1:
            raise bad(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise bad(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if min(self.crop) < 8 or max(self.crop) > MAX_SIDE:
            raise bad(f"crop must be at least 8×8 and at most {MAX_SIDE}×{MAX_SIDE}, got {list(self.crop)}")
        try:
            self.norm
        except ValueError:
            raise bad(f"ir_norm must be 'range', 'minmax' or the sensor's peak value (e.g. 4095), got {self.ir_norm!r}") from None
        if self.small_images not in ("pad", "skip"):
            raise bad(f"small_images must be 'pad' or 'skip', got {self.small_images!r}")
        if self.optimizer.lower() not in OPTIMIZERS:
            raise bad(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "plateau_factor", "checkpoint_minutes", "max_minutes"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise bad(f"{name} must be a finite number, got {value}")
        if self.lr <= 0:
            raise bad(f"lr must be > 0, got {self.lr}")
        for name in ("min_lr", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise bad(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**63:
            raise bad(f"seed must be an integer in [0, 2^63), got {self.seed}")
        if not 0.0 < self.plateau_factor < 1.0:
            raise bad(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")
        for name in ("epochs", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise bad(f"{name} must be >= 1, got {value}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise bad(f"max_minutes must be > 0, got {self.max_minutes}")
        for name in ("crops_per_image", "log_every"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be >= 1")
        for name in ("val_every", "checkpoint_every", "checkpoint_minutes", "plateau_patience", "early_stopping_patience",
                     "num_workers", "threads"):
            if (getattr(self, name) or 0) < 0:
                raise bad(f"{name} must be >= 0")
        for i, row in enumerate(self.stages, 1):
            epochs = row.get("epochs")
            if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
                raise bad(f"stage {i}: 'epochs' must be an integer >= 1, got {epochs!r}")
        if self.epochs is None and not self.stages and self.max_steps is None:
            raise bad("set epochs, max_steps or a [[stages]] table")
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda"):
            raise bad(f"device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def total_epochs(self) -> float:
        """Epochs to run: ``epochs``, else the stages' sum, else unbounded (``max_steps`` ends it)."""
        if self.epochs is not None:
            return self.epochs
        if self.stages:
            return sum(row["epochs"] for row in self.stages)
        return math.inf

    def stage_starts(self) -> list[int]:
        """First epoch of every stage (``[0]`` without a stage table)."""
        starts, epoch = [], 0
        for row in self.stages or [{"epochs": 0}]:
            starts.append(epoch)
            epoch += row["epochs"]
        return starts

    def stage_of(self, epoch: int) -> int:
        """Index of the stage ``epoch`` belongs to; the last stage continues past the table."""
        return max(i for i, start in enumerate(self.stage_starts()) if start <= epoch)

    def unreached_stages(self) -> str | None:
        """A note when ``epochs`` ends the run before its last stage (None otherwise)."""
        if self.epochs is None or not self.stages:
            return None
        last, n = self.stage_of(self.epochs - 1), len(self.stages)
        if last == n - 1:
            return None
        never = f"stage {n} never runs" if last == n - 2 else f"stages {last + 2}-{n} never run"
        return (f"note: epochs = {self.epochs} ends in stage {last + 1} of {n} (the stages take "
                f"{sum(row['epochs'] for row in self.stages)} epochs): {never}")

    @property
    def run_dir(self) -> Path:
        """The run folder: ``out_dir``, else ``runs/<model>``."""
        return Path(self.out_dir or f"runs/{self.model}")


def _coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    """Check/convert one config value against its field type."""

    def bad(kind: str) -> ConfigError:
        return ConfigError(f"{source}: {name} must be {kind}, got {value!r}")

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if hint is str:
        if name == "ir_norm" and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{value:g}"  # a peak value given as a TOML number
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if origin is tuple:  # crop
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise bad("an integer or a list [H, W]")
        return (int(value[0]), int(value[1]))
    if origin is list:
        if args[0] is str:
            if isinstance(value, (str, Path)):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in value):
                raise bad("a list of paths" if name in ("data", "val_data") else "a list of strings")
            return [str(v) for v in value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, dict) for v in value):
            raise bad("an array of tables ([[stages]])")
        return [dict(v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad("a table")
        return dict(value)
    raise TypeError(f"unsupported config field type {hint}")  # pragma: no cover



def default_config_path(model: str) -> Path | None:
    """The packaged default config of ``model`` (its registry fact), or ``None`` if it has none."""
    return get_model_info(model).config_path
