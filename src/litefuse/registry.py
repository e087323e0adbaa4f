"""Model registry: every fusion method is reachable by name, and every fact about it is here.

A method registers a factory with :func:`register_model`; :func:`load_model` builds the module,
loads weights (shipped, a user path, or none) and returns it in eval mode on the requested
device. The registry is the one home of what the rest of the package needs to know about a
method (:class:`ModelInfo`), like timm's pretrained configs: its shipped weights file, tasks,
training objective, packaged training config, rank among the default choices, and the filter
that maps foreign checkpoint layouts onto its keys. Importing :mod:`litefuse` imports
:mod:`litefuse.models`, which registers every method; this module imports no model.

Every registered module follows one contract: ``forward(ir, vi)`` takes two float tensors of
shape ``(B, 1, H, W)`` in ``[0, 1]`` (infrared, visible luminance) and returns the fused
luminance with the same shape, in ``[0, 1]``.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .errors import ModelError, OptionError
from .runtime import apply_heap_policy, resolve_device

__all__ = [
    "CheckpointFilter",
    "ModelInfo",
    "add_model_facts",
    "get_model_info",
    "list_models",
    "load_model",
    "load_weights",
    "read_weights_model",
    "register_model",
    "weights_metadata",
    "weights_model",
]

#: ``filter(model, state) -> state``: a checkpoint's tensors under the model's own key names
CheckpointFilter = Callable[[nn.Module, dict], dict]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one fusion method."""

    name: str
    description: str
    factory: Callable[..., nn.Module]
    kind: str = "network"  # "network" or "classical"
    #: file name under litefuse/weights, or an absolute path (a plugin's own file), or None
    weights: str | None = None
    tasks: tuple[str, ...] = ("ivif",)
    paper: str = ""
    #: constructor arguments read off a weights file's tensor shapes (name -> shape), for
    #: files whose metadata does not carry them (e.g. trained before a default changed)
    infer_kwargs: Callable[[dict[str, tuple[int, ...]]], dict] | None = None
    #: training objective name: ``litefuse/train/objectives/<objective>.py`` (None = not trainable)
    objective: str | None = None
    #: default training config: file name under ``litefuse/configs``, or an absolute path (a plugin's)
    config: str | None = None
    #: place among the default methods (0 = first choice); the default for a task is the
    #: lowest-ranked method that ships weights and covers it; a mapping ranks the method for the
    #: tasks it names only (``{"mef": 0}``); None = never the default
    default_rank: int | Mapping[str, int] | None = None
    #: applied to every state dict loaded into the model (e.g. a published release's key layout)
    checkpoint_filter: CheckpointFilter | None = None

    @property
    def weights_path(self) -> Path | None:
        """The shipped weights file, if it is installed."""
        return _packaged("weights", self.weights)

    @property
    def has_weights(self) -> bool:
        """Whether the method runs as shipped (classical methods need no weights)."""
        return self.kind == "classical" or self.weights_path is not None

    @property
    def config_path(self) -> Path | None:
        """The packaged default training config, if the method has one."""
        return _packaged("configs", self.config)


def _packaged(folder: str, name: str | None) -> Path | None:
    """``litefuse/<folder>/<name>``, or ``name`` itself when absolute (a plugin's own file), if it is a file."""
    if name is None:
        return None
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = Path(str(resources.files("litefuse") / folder / name))
    return path if path.is_file() else None


_REGISTRY: dict[str, ModelInfo] = {}
#: the facts :func:`add_model_facts` may add to a registered method
_FACTS = ("objective", "config", "default_rank", "checkpoint_filter")


MODEL_TASKS = ("ivif", "mff", "mef", "medical")  # what a method may be made for (litefuse.tasks.TASKS adds "ab": any A/B pair)


def register_model(
    name: str,
    factory: Callable[..., nn.Module] | None = None,
    *,
    description: str,
    kind: str = "network",
    weights: str | None = None,
    tasks: tuple[str, ...] = ("ivif",),
    paper: str = "",
    infer_kwargs: Callable[[dict[str, tuple[int, ...]]], dict] | None = None,
    objective: str | None = None,
    config: str | None = None,
    default_rank: int | Mapping[str, int] | None = None,
    checkpoint_filter: CheckpointFilter | None = None,
) -> Callable[..., nn.Module]:
    """Register ``factory`` ``(**kwargs) -> nn.Module`` under ``name`` with its facts (:class:`ModelInfo`).

    Without ``factory`` this is a decorator.
    """

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        if kind not in ("network", "classical"):
            raise ValueError(f"model {name!r}: kind must be 'network' or 'classical', got {kind!r}")
        unknown = [t for t in ([tasks] if isinstance(tasks, str) else tasks) if t not in MODEL_TASKS]
        if unknown or isinstance(tasks, str) or not tasks:  # "ivif" as a string was its letters
            raise ValueError(f"model {name!r}: tasks must be a tuple of {', '.join(MODEL_TASKS)}, got {tasks!r}")
        _REGISTRY[name] = ModelInfo(
            name, description, factory, kind, weights, tuple(tasks), paper, infer_kwargs,
            objective, config, default_rank, checkpoint_filter,
        )
        return factory

    return wrap(factory) if factory is not None else wrap


def add_model_facts(name: str, **facts) -> ModelInfo:
    """Add facts (``objective``, ``config``, ``default_rank``, ``checkpoint_filter``) to a registered
    method. Each fact is stated once: one already set, by this or by :func:`register_model`, raises."""
    info = get_model_info(name)
    for key, value in facts.items():
        if key not in _FACTS:
            raise TypeError(f"add_model_facts: unknown fact {key!r}; facts: {', '.join(_FACTS)}")
        if getattr(info, key) is not None:
            raise ValueError(f"model {name!r}: {key} is already registered as {getattr(info, key)!r}")
    _REGISTRY[name] = info = dataclasses.replace(info, **facts)
    return info


def list_models(kind: str | None = None) -> list[ModelInfo]:
    """All registered methods (optionally only ``"network"`` or ``"classical"``), networks first, by name;
    another ``kind`` is an :class:`~litefuse.errors.OptionError`, not an empty list."""
    if kind not in (None, "network", "classical"):
        raise OptionError(f"kind {kind!r}: expected 'network', 'classical' or None (every method)")
    infos = sorted(_REGISTRY.values(), key=lambda m: (m.kind != "network", m.name))
    return [m for m in infos if kind is None or m.kind == kind]


def get_model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; an unknown name raises :class:`ModelError` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        from .plugins import failure_note

        raise ModelError(f"unknown model {name!r}; known models: {known}{failure_note()}") from None


def _no_weights_file(path: Path) -> ModelError:
    """The error for a ``path`` that is not a file: missing, or a folder (a training run's names
    the weights file inside it)."""
    if not path.is_dir():
        return ModelError(f"{path}: {'not a regular file' if path.exists() else 'weights file not found'}")
    inside = path / "model.safetensors"
    return ModelError(f"{path}: is a folder, not a weights file" + (f" (a training run's is {inside})" if inside.is_file() else ""))


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, without torch's note on a file that is
    not a zip checkpoint ("Detected pickle protocol 4 ... please file an issue"), which garbage
    starting with a pickle opcode also prompts: the error that follows names the file's problem."""
    if zipfile.is_zipfile(path):
        return torch.load(str(path), map_location="cpu", weights_only=True)
    with warnings.catch_warnings():  # a legacy or broken file only: the filter is swapped for that read
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(str(path), map_location="cpu", weights_only=True)


def load_weights(model: nn.Module, path: str | Path, *, checkpoint_filter: CheckpointFilter | None = None) -> nn.Module:
    """Load a safetensors or torch checkpoint into ``model`` (strict).

    ``checkpoint_filter`` (the model's registry fact, :attr:`ModelInfo.checkpoint_filter`) maps
    foreign key layouts, e.g. a published release checkpoint, onto the model's own.
    """
    path = Path(path)
    if not path.is_file():
        raise _no_weights_file(path)
    _check_weights_file(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = read_checkpoint(path)
            if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
                state = state["model"]
    except Exception as exc:  # corrupt or foreign file
        raise ModelError(f"{path}: cannot read weights ({first_line(exc)})") from None
    if checkpoint_filter is not None and isinstance(state, dict):
        state = checkpoint_filter(model, state)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: not a weights file (no tensor state dict inside)")
    problem = _state_mismatch(model, state)
    if problem:
        raise ModelError(f"{path}: weights do not fit {model.__class__.__name__}: {problem}")
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
        raise ModelError(f"{path}: weights hold NaN or infinite values ({broken[0]}{more}); every output would be garbage")
    model.load_state_dict(state, strict=True)
    return model


def first_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, without terminal colour codes, at most 160 characters."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    line = text.splitlines()[0].strip() if text else ""
    if isinstance(exc, (KeyError, EOFError)) or "Unpickl" in exc.__class__.__name__ or "magic number" in line:
        return "corrupt, or not a PyTorch/safetensors weights file"
    if (isinstance(exc, OSError) and exc.errno == errno.EINVAL) or "PytorchStreamReader" in line:  # a cut-off zip checkpoint
        return "corrupt or truncated file"
    line = line if len(line) <= 160 else line[:157] + "..."
    return f"{exc.__class__.__name__}: {line}" if line else exc.__class__.__name__


def _state_mismatch(model: nn.Module, state: dict) -> str:
    """A short description of how ``state`` differs from ``model``'s parameters, or ``""``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)):
        if keys:
            example = keys[0] if label != "of another shape" else (
                f"{keys[0]} {tuple(state[keys[0]].shape)} vs {tuple(own[keys[0]].shape)}")
            parts.append(f"{len(keys)} tensor(s) {label} (e.g. {example})")
    return "; ".join(parts) + ("; a file of another model or configuration?" if parts else "")


def _weights_header(path: Path, shapes: bool = False, strict: bool = False) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """The metadata and (with ``shapes``) tensor shapes of a weights file, from one read: a
    safetensors header, or a litefuse training checkpoint (``last.pt``), whose recorded config
    names the model and its constructor arguments as a run's safetensors metadata does.
    ``({}, {})`` for other and unreadable files (loading them reports the problem), or with
    ``strict`` a :class:`ModelError` for an unreadable one (a truncated file, said as such)."""
    if not path.is_file():
        return {}, {}
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                return meta, ({k: tuple(f.get_slice(k).get_shape()) for k in f.keys()} if shapes else {})
        if path.suffix in (".pt", ".pth"):
            ckpt = read_checkpoint(path)
            config, state = (ckpt.get("config"), ckpt.get("model")) if isinstance(ckpt, dict) else (None, None)
            if isinstance(config, dict) and isinstance(state, dict) and isinstance(config.get("model"), str):
                meta = {"model": config["model"], "model_kwargs": json.dumps(config.get("model_kwargs") or {}),
                        "ir_norm": str(config.get("ir_norm") or "range")}
                return meta, ({k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)} if shapes else {})
    except Exception as exc:  # foreign or corrupt file: load_weights reports it
        if strict:
            raise ModelError(f"{path}: cannot read weights ({first_line(exc)})") from None
    return {}, {}


def weights_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a weights file: a litefuse run's safetensors stores ``model``,
    ``model_kwargs``, ``step``, ``ir_norm``, ...; its ``last.pt`` checkpoint gives ``model``,
    ``model_kwargs`` and ``ir_norm`` from the run's config; ``{}`` for other and unreadable files."""
    return _weights_header(Path(path))[0]


def read_weights_model(path: str | Path, strict: bool = False) -> str | None:
    """The model a litefuse safetensors file was trained as (its ``model`` metadata), or ``None``;
    with ``strict`` an unreadable file is a :class:`ModelError` saying so (not a file naming none)."""
    return _weights_header(Path(path), strict=strict)[0].get("model") or None


def weights_model(path: str | Path) -> str:
    """The model a weights file names (:func:`read_weights_model`); :class:`ModelError` when the
    file is missing, unreadable, or names none (then the caller must be told the model)."""
    path = Path(path)
    if not path.is_file():
        raise _no_weights_file(path)
    name = read_weights_model(path, strict=True)  # an unreadable file: said as such, not as nameless
    if not name:
        _check_weights_file(path)
        raise ModelError(f"{path}: the file does not name its model; pass the model (-m NAME)")
    return name


def _check_weights_file(path: Path) -> None:
    """A :class:`ModelError` for a file that is no weights file at all (an image, a text file), by
    its first bytes: a safetensors file's 8-byte header length and then JSON, or a PyTorch zip or
    legacy pickle. Torch's own error on such a file is an internal one (IndexError, ...)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read weights ({exc.strerror or exc})") from None
    if not (head[8:9] == b"{" or head.startswith((b"PK\x03\x04", b"\x80"))):
        raise ModelError(f"{path}: not a weights file (a .safetensors file or a PyTorch checkpoint)")


def file_kwargs(name: str, path: str | Path, hint: str | None = None) -> dict:
    """Constructor arguments of model ``name``'s weights file ``path``, from one read of its
    header: those a litefuse training run recorded (``litefuse train --set model_kwargs=...``)
    or a shipped file records (``aenetv2``'s ``border``), so its weights load by model name
    alone, over those the model reads off the tensor shapes (:attr:`ModelInfo.infer_kwargs`,
    for files that record none). A file that names another model is a :class:`ModelError`
    ending in ``hint`` (default: use that model); ``{}`` for other files."""
    info = get_model_info(name)
    meta, shapes = _weights_header(Path(path), shapes=info.infer_kwargs is not None)
    trained = meta.get("model")
    if trained and trained != info.name:
        raise ModelError(f"{path}: weights of {trained!r}, not {info.name!r}; {hint or f'load it as {trained} (-m {trained})'}")
    try:
        kwargs = json.loads(meta.get("model_kwargs", "{}"))
    except ValueError:  # not a litefuse record: loading the file reports any problem
        kwargs = {}
    inferred = info.infer_kwargs(shapes) if info.infer_kwargs and shapes else {}
    return {**inferred, **(kwargs if isinstance(kwargs, dict) else {})}


def load_model(
    name: str | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    **kwargs,
) -> nn.Module:
    """Build a registered model, load weights and return it in eval mode.

    ``weights``: a path to load instead of the shipped weights (``name`` may then be left out when
    the file names its model, as a litefuse run's files do). A weights file (shipped or not)
    also supplies the constructor arguments it records: those a litefuse run was trained with,
    or a shipped file's run settings (``aenetv2``'s ``border``). ``pretrained=False`` skips
    loading (random initialisation, for training). Extra ``kwargs`` go to the factory; one it
    does not take is an :class:`~litefuse.errors.OptionError` naming the model. ``device``:
    where the module is placed. An unknown ``name`` or unreadable / mismatched weights raise
    :class:`~litefuse.errors.ModelError`.

    A network placed on the CPU applies litefuse's heap policy, as the CLI does for every command
    (:func:`~litefuse.runtime.apply_heap_policy`; ``LITEFUSE_RESIDENT_HEAP=0`` keeps glibc's
    default): without it each call page-faults its full-resolution maps anew, and a model called
    directly ran slower than the same model in a :class:`~litefuse.Fuser` (lwc-densefuse at
    640x480: 1.5-2x, as README says). :func:`litefuse.runtime.prepare` applies the rest of what a Fuser sets
    (threads, oneDNN's instruction set for float32 inference).
    """
    if name is None:
        if weights is None:
            raise OptionError("load_model needs a model name, or weights that name their model")
        name = weights_model(weights)
    info = get_model_info(name)
    if info.kind == "network" and (weights is not None or (pretrained and info.weights_path is not None)):
        source = Path(weights) if weights is not None else info.weights_path
        kwargs = {**file_kwargs(name, source), **kwargs}  # explicit arguments win
    try:
        model = info.factory(**kwargs)
    except OptionError:
        raise
    except (TypeError, ValueError) as exc:  # a keyword the constructor does not take, or a bad value
        if isinstance(exc, TypeError) and "argument" not in str(exc):  # a failure inside it
            raise
        raise OptionError(f"{name}: {exc}") from None
    if info.kind == "network":
        if weights is not None:
            load_weights(model, weights, checkpoint_filter=info.checkpoint_filter)
        elif pretrained:
            if info.weights_path is None:
                raise ModelError(
                    f"model {name!r} has no shipped weights yet; pass --weights PATH (weights=PATH) or pretrained=False"
                )
            load_weights(model, info.weights_path, checkpoint_filter=info.checkpoint_filter)
    elif weights is not None:
        raise ModelError(f"model {name!r} is classical and takes no weights")
    dev = resolve_device(device)
    if info.kind == "network" and dev.type == "cpu":
        apply_heap_policy()
    return model.to(dev).eval()
