"""Python API: fuse a pair of images or arrays with any registered method (folders:
:mod:`litefuse.folder`).

>>> import litefuse
>>> fused = litefuse.fuse("ir.png", "vi.png", model="max")   # float32 in [0, 1]
>>> litefuse.save_image("fused.png", fused)

Colour: networks fuse luminance only. A colour visible image is split into BT.601 Y/Cb/Cr,
its Y fused with the infrared and the colour restored from its chroma; two colour sources
(multi-exposure, multi-focus) get saturation-weighted chroma; grey sources give a grey result.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import whole
from .colour import fuse_chroma, rgb_to_ycbcr, ycbcr_to_rgb
from .errors import InputError, OptionError
from .io import (MIN_SIDE, RESIZE_HINT, Norm, OnceWarning, check_bits, check_norm, check_output_path, equal_channels, grey_infrared, in_unit_range, parse_norm,
                 pil_array, read_image, save_image, to_float, turned_by_tag, value_range)
from .registry import get_model_info, list_models, load_model, weights_metadata, weights_model
from .runtime import check_precision, compile_backend, compile_for_inference, prepare, release_free_heap, resolve_device, run_padded, with_precision
from .tasks import check_task, default_model, folder_task, outside_task, read_ab_task  # noqa: F401  (folder_task: part of this API)
from .tiling import run_tiled as _tiled, tile_context

__all__ = ["ImageLike", "Fuser", "MethodSpec", "default_model", "folder_task", "fuse", "fuse_files"]

ImageLike = Union[str, Path, np.ndarray, torch.Tensor, "PIL.Image.Image"]  # noqa: F821

OUTPUT_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")  # what save_image writes
DEFAULT_TILE = 1024  # pixels per tile side when the model declares no ``tile_size``


@dataclass(frozen=True)
class MethodSpec:
    """A method as the command line names it: ``[label=]name[@weights]``.

    The label ends at the first ``=`` before the ``@`` (weights paths may hold ``=``, as in
    ``runs/lr=1e-4/model.safetensors``); without one, a run's ``model.safetensors`` or ``last.pt``
    is labelled by its run folder (``aenetv2@lr=1e-4``), other files by their stem, and a plain
    name by itself."""

    label: str
    name: str
    weights: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "MethodSpec":
        head, _, weights = spec.partition("@")
        label, eq, name = head.partition("=")
        if not eq:
            label, name = "", head
        name, weights = name.strip(), weights.strip()
        if not name:
            raise OptionError(f"method {spec!r}: give [label=]name[@weights], e.g. mine=aenetv2@runs/a/model.safetensors")
        if not label.strip() and weights:
            path = Path(weights)
            label = f"{name}@{path.parent.name if path.stem in ('model', 'last') and path.parent.name else path.stem}"
        if label.strip() != name and label.strip() in {m.name for m in list_models()}:  # "max=gff" would pose as max in tables
            raise OptionError(f"method {spec!r}: the label {label.strip()!r} names another method; choose another label")
        return cls(label.strip() or name, name, weights or None)


def _channels_last(x: np.ndarray) -> np.ndarray:
    """Torch's layouts as images: a batch of one ``1×C×H×W`` and ``C×H×W`` (C = 1, 3 or 4) become
    ``H×W×C``. Unambiguous: images are at least 8 pixels on each side, so ``H×W×C`` never has
    fewer than 8 rows nor more than 4 channels."""
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 3 and x.shape[0] in (1, 3, 4) and x.shape[-1] > 4:
        x = np.moveaxis(x, 0, -1)
    return x


def as_image(x: ImageLike, norm: Norm = "range", name: str | None = None) -> np.ndarray:
    """Anything image-like → float32 in [0, 1], ``H×W`` or ``H×W×3``. Arrays and tensors may be
    ``H×W``, ``H×W×C``, ``C×H×W`` or a batch of one ``1×C×H×W``, on any device."""
    if isinstance(x, (str, Path)):
        return read_image(x, norm=norm)
    if isinstance(x, torch.Tensor):
        try:
            x = x.detach().cpu()
            x = x.float() if x.is_floating_point() and x.dtype != torch.float64 else x  # fp16/bf16 too
            x = x.numpy()
        except (RuntimeError, NotImplementedError, TypeError) as exc:  # meta, sparse, complex-conj views...
            raise InputError(f"cannot read an image from this tensor ({x.layout}, {x.device}: {str(exc).splitlines()[0][:120]})", name) from None
    if isinstance(x, np.ndarray):
        return to_float(_channels_last(x), norm=norm, source=name)
    from PIL import Image

    if isinstance(x, Image.Image):  # the modes a file of it would be read in (palette, CMYK, HSV, LAB, 32-bit int)
        return to_float(pil_array(x), norm=norm, source=name)
    raise InputError(f"cannot read an image from {type(x).__name__}", name)


#: Said when a network is compiled for the CPU (measured 2026-12-07, docs/benchmarks.md "torch.compile on the CPU").
#: Said for float16 on the CPU (measured 2026-12-07, 320x240, 1 thread: aenetv2-ivif 85.6 vs 7.5 ms, lwc 2276 vs 59 ms).
CPU_FP16_NOTE = "fp16 on the CPU: torch emulates float16 on most CPUs (aenetv2-ivif ran 11-13x, lwc-densefuse 38x slower than fp32); for GPUs"
CPU_COMPILE_NOTE = ("compile on the CPU: torch.compile ran slower than eager for every litefuse network (640x480: 0.18-0.95x eager's "
                    "speed, dwsfusion slowest), after up to 2 minutes of compiling; it is meant for GPUs, where it records CUDA graphs")


class Fuser:
    """A loaded fusion method, reused across many pairs.

    ``model``: a registered name; ``None`` takes the model a litefuse ``weights`` file names,
    else :func:`default_model` for ``task``. ``weights``: a file to load instead of the shipped
    weights; ``device``: ``"cpu"``, ``"cuda[:N]"`` or ``"auto"``; ``model_kwargs`` go to the
    model's factory (:func:`~litefuse.registry.load_model`). ``task``: ``"ivif"`` (a grey infrared + a grey or
    colour visible image) or an A/B task (``"mff"``, ``"mef"``, ``"medical"``, ``"ab"``), where
    both sources may be colour (a Fuser is loaded before it sees a pair, so ``"ab"`` takes its
    default, ``aenetv2``; :func:`fuse` and :func:`~litefuse.folder.fuse_folder` without a method
    read an A/B pair's task from its pixels, :func:`~litefuse.tasks.read_ab_task`).
    ``threads``: CPU threads for torch (process-wide; default: a count you gave torch yourself
    -- ``torch.set_num_threads`` after importing litefuse, or ``OMP_NUM_THREADS`` -- else
    :func:`litefuse.runtime.default_threads`, which avoids oversubscribing busy cores).
    ``precision``: ``"fp32"``, ``"fp16"`` or ``"bf16"`` for networks (weights and activations;
    DWSFusion's FFT stays float32); classical fusers always run in float32. Half precision
    changes a fused image by at most ~0.02 (bf16) or ~0.003 (fp16) of the range (tests).
    ``compile``: run networks under ``torch.compile`` (``True``, or a backend name; see
    :func:`litefuse.runtime.compile_for_inference`): the first frame of each size compiles
    (slow), later frames run faster; classical fusers run as they are.
    Process-wide (CPU): the thread count, oneDNN's instruction set and glibc's heap policy
    (freed memory kept, not returned to the OS; ``LITEFUSE_RESIDENT_HEAP=0`` before the first
    Fuser keeps glibc's default): :func:`litefuse.runtime.prepare`. A Fuser may be shared by threads.
    ``colour_on_device``: split colour sources into YCbCr and merge the result on the model's
    device, so one upload and one download carry each image (default: on a GPU; on the CPU the
    numpy conversion runs in the folder and video pipelines' worker threads instead).
    ``stretch``: min-max stretch each fused luma to the full range, as CDDFuse's ``test_IVF.py``
    does before saving (a protocol choice that changes every metric; off by default).

    ``tile``: methods run on tiles of at most ``tile × tile`` pixels (with ``overlap``
    pixels of context on each side) when an image has more than ``tile²`` pixels, which bounds
    memory (default: the model's ``tile_size``, else 1024; the DenseFuse family, whose
    full-resolution 64-channel maps are the largest, declares 600). Methods with global
    operators (DWSFusion's FFT and global pooling) see each tile separately, so tiled output
    differs slightly from a single pass.
    """

    def __init__(
        self,
        model: str | None = None,
        weights: str | Path | None = None,
        device: str = "cpu",
        tile: int | None = None,
        overlap: int = 32,
        task: str = "ivif",
        threads: int | None = None,
        precision: str = "fp32",
        compile: bool | str = False,
        colour_on_device: bool | None = None,
        stretch: bool = False,
        **model_kwargs,
    ) -> None:
        self.task = check_task(task)
        if tile is not None and not whole(tile, 16):
            raise OptionError(f"tile must be an integer of at least 16 pixels (got {tile!r})")
        if not whole(overlap, 0):
            raise OptionError(f"overlap must be an integer >= 0 (got {overlap!r})")
        if model is not None and not str(model).strip():  # `-m ""` (an empty shell variable): not "the default"
            raise OptionError("the model name is empty; leave it out for the default method, or see `litefuse models`")
        if model is None and weights is not None:
            model = weights_model(weights)
        self.name = model or default_model(task)
        self.info = get_model_info(self.name)
        note = outside_task(self.name, self.info, self.task)
        if note:  # allowed (a researcher may try it), but said
            warnings.warn(note, UserWarning, stacklevel=2)
        self.device = resolve_device(device)
        check_precision(precision)
        self.precision = precision if self.info.kind == "network" else "fp32"  # classical fusers stay float32
        if self.precision == "fp16" and self.device.type == "cpu":  # emulated there: said
            warnings.warn(CPU_FP16_NOTE, UserWarning, stacklevel=2)
        self._threads_asked = threads  # applied again where the Fuser is unpickled (__setstate__)
        if self.device.type == "cpu":
            self.threads = prepare(threads, self.precision)
        model = load_model(self.name, weights=weights, device=self.device, **model_kwargs)
        model = with_precision(model, self.precision)
        backend = compile_backend(compile)  # checked for every method: a typo is an error, not ignored
        self.compiled = backend if self.info.kind == "network" else None
        if self.compiled == "inductor" and self.device.type == "cpu":
            warnings.warn(CPU_COMPILE_NOTE, UserWarning, stacklevel=2)
        self.model: nn.Module = compile_for_inference(model, self.device, self.compiled)
        self._batches: dict = {}  # the largest batch a compiled network ran, by frame shape (run_padded)
        self.tile = tile or getattr(model, "tile_size", DEFAULT_TILE)
        self.overlap = overlap
        self.colour_on_device = self.device.type != "cpu" if colour_on_device is None else bool(colour_on_device)
        if not isinstance(stretch, (bool, np.bool_)):  # "false" is truthy: it stretched every output
            raise OptionError(f"stretch must be True or False (got {stretch!r})")
        self.stretch = bool(stretch)
        self.label = self.name  # how reports name it (:meth:`from_spec` sets a given label)
        self.weights = None if weights is None else Path(weights)

    @cached_property
    def trained_ir_norm(self) -> str:
        """The ``--ir-norm`` the weights were trained with (``"range"``: the shipped ones), read once
        (fuse_files asks on every call; a ``last.pt`` is a whole checkpoint load)."""
        return weights_metadata(self.weights).get("ir_norm", "range").strip() if self.weights else "range"

    def __setstate__(self, state: dict) -> None:
        """Unpickled in another process (a spawn or forkserver worker), a CPU Fuser applies what
        its construction applied there: the heap, instruction-set and thread policies (``threads``)."""
        self.__dict__.update(state)
        if self.device.type == "cpu":
            self.threads = prepare(state.get("_threads_asked"), self.precision)

    @classmethod
    def from_spec(cls, spec: str | MethodSpec, **kwargs) -> "Fuser":
        """A Fuser for ``[label=]name[@weights]`` (:class:`MethodSpec`), carrying its ``label``."""
        spec = spec if isinstance(spec, MethodSpec) else MethodSpec.parse(spec)
        fuser = cls(spec.name, weights=spec.weights, **kwargs)
        fuser.label = spec.label
        return fuser

    # -- luminance -------------------------------------------------------------------------
    def _fuse_tensors(self, ta: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` luma on the device -> fused ``(B, 1, H, W)`` float32 in [0, 1].

        A frame of more than ``tile²`` pixels is fused tile by tile, whatever the method, so
        memory stays bounded (a 6000×4000 frame through ``gff`` in one pass needs ~5 GB). Each
        tile carries ``max(overlap, model.tile_context)`` pixels of context on every side and
        starts on a multiple of ``model.tile_align``: the classical fusers declare both, so
        their tiled output equals the single pass (to float rounding).
        """
        h, w = ta.shape[-2:]
        if h * w <= self.tile * self.tile:
            out = (run_padded(self.model, ta, tb, self._batches) if self.compiled else self.model(ta, tb)).clamp(0.0, 1.0).float()
        else:
            context, align = tile_context(self.model, self.overlap)
            outs = [_tiled(self.model, ta[i : i + 1], tb[i : i + 1], self.tile, context, align) for i in range(ta.shape[0])]
            release_free_heap()
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
            out = out.clamp_(0.0, 1.0).float()  # in place: no second full-size copy
        return _stretch_range(out) if self.stretch else out

    def _upload(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Equal-shape float images stacked into one tensor on the device."""
        x = images[0][None] if len(images) == 1 else np.stack(images)
        # "W": a read-only frame (np.frombuffer, a shared buffer) is copied, not handed to torch,
        # which warns on one
        return torch.from_numpy(np.require(x, np.float32, "CW")).to(self.device)

    @torch.inference_mode()
    def fuse_luma(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Fuse two grey float images of equal size; returns float32 ``H×W`` in [0, 1]
        (tiled above ``tile²`` pixels, see :meth:`_fuse_tensors`)."""
        _check_luma([a], [b])
        return self._fuse_tensors(self._upload([a])[:, None], self._upload([b])[:, None])[0, 0].cpu().numpy()

    @torch.inference_mode()
    def fuse_luma_batch(self, a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`fuse_luma` over several pairs; equal-size frames that fit one pass go through a
        network as one batch (same result as one at a time, to float rounding)."""
        _check_luma(a, b)
        if not len(a):
            return []
        if not self._batchable(a, b):
            return [self.fuse_luma(x, y) for x, y in zip(a, b)]
        return list(self._fuse_tensors(self._upload(a)[:, None], self._upload(b)[:, None])[:, 0].cpu().numpy())

    def _batchable(self, *sources: Sequence[np.ndarray]) -> bool:
        """Whether pairs can go through the method as one batch: a network, several pairs, each
        source's frames of one shape, small enough for one pass."""
        h, w = sources[0][0].shape[:2]
        return (self.info.kind == "network" and len(sources[0]) > 1 and h * w <= self.tile * self.tile
                and all(x.shape == images[0].shape for images in sources for x in images))

    @torch.inference_mode()
    def _fuse_on_device(self, batch: Sequence["Prepared"], grey: bool) -> list[np.ndarray]:
        """Whole sources in, finished images out: YCbCr split, luma fusion, chroma blend and
        RGB merge all on the device (one upload and one download per image)."""
        a, b = [p.a[0] for p in batch], [p.b[0] for p in batch]
        if len(batch) > 1 and not self._batchable(a, b):
            return [self._fuse_on_device([p], grey)[0] for p in batch]
        (ya, cba, cra), (yb, cbb, crb) = (_split(self._upload(x), colour=x[0].ndim == 3) for x in (a, b))
        y = self._fuse_tensors(ya[:, None], yb[:, None])[:, 0]
        return list(_merge_colour(y, (cba, cra), (cbb, crb), grey).cpu().numpy())

    # -- images ----------------------------------------------------------------------------
    def prepare(
        self,
        a: np.ndarray,
        b: np.ndarray,
        *,
        resize_b: bool = False,
        names: tuple[str | Path | None, str | Path | None] = (None, None),
    ) -> "Prepared":
        """Check sizes (resampling ``b`` if asked) and split both sources into luma and chroma."""
        if a.shape[:2] != b.shape[:2]:
            if not resize_b:
                (ha, wa), (hb, wb) = a.shape[:2], b.shape[:2]
                partner = "its partner" if names[0] is None else f"its partner {Path(str(names[0])).name}"
                where = "here" if names[1] is not None else "in the second image"
                turned = [Path(str(n)).name for n in names if n is not None and turned_by_tag(n)] if (wa, ha) == (hb, wb) else []
                if turned:  # resampling would squash the picture: it is turned, not smaller
                    raise InputError(
                        f"size mismatch: {wb}×{hb} {where} but {wa}×{ha} for {partner}: {' and '.join(turned)} "
                        f"{'is' if len(turned) == 1 else 'are'} turned a quarter by an orientation tag (EXIF), so the two do "
                        "not face the same way; clear the tag (e.g. exiftool -Orientation= FILE) or turn the other image; "
                        "--resize-vi would squash the picture", names[1])
                raise InputError(
                    f"size mismatch: {wb}×{hb} {where} but {wa}×{ha} for {partner}{RESIZE_HINT}",
                    names[1],
                )
            (ha, wa), (hb, wb) = a.shape[:2], b.shape[:2]
            if abs((wb / hb) / (wa / ha) - 1) > 0.01:  # resampling stretches the scene: say so
                name = str(names[1]) if names[1] is not None else "the second image"  # the path, as skip lines give it
                warnings.warn(f"{name}: resampled from {wb}×{hb} to {wa}×{ha}, which changes its aspect ratio "
                              f"({wb / hb:.3f} to {wa / ha:.3f}); crop it to the partner's field of view for a true match",
                              UserWarning, stacklevel=2)
            b = _resize(b, a.shape[:2])
        if self.colour_on_device:
            return Prepared((a, None, None), (b, None, None), whole=True)
        return Prepared(_split(a), _split(b))

    def fuse_prepared(self, batch: Sequence["Prepared"], grey: bool = False) -> list[np.ndarray]:
        """Fuse prepared pairs (batched where they allow it); pass each result with its pair to
        :meth:`finish`. Split on the host, the result is the fused luma (``finish`` adds the
        colour, e.g. in an encoding thread); left whole for the device, the finished image."""
        if batch and batch[0].whole:
            return self._fuse_on_device(batch, grey)
        return self.fuse_luma_batch([p.a[0] for p in batch], [p.b[0] for p in batch])

    @staticmethod
    def finish(fused_y: np.ndarray, prepared: "Prepared", grey: bool = False) -> np.ndarray:
        """Fused luma back to an image: grey, or colour from the sources' chroma (the result of
        :meth:`fuse_prepared` as it is for pairs fused whole on the device)."""
        if prepared.whole:
            return fused_y
        out = _merge_colour(fused_y, prepared.a[1:], prepared.b[1:], grey)
        return out if out is fused_y else out.astype(np.float32)

    def fuse_images(
        self,
        a: np.ndarray | torch.Tensor,
        b: np.ndarray | torch.Tensor,
        *,
        grey: bool = False,
        resize_b: bool = False,
        names: tuple[str | Path | None, str | Path | None] = (None, None),
    ) -> np.ndarray:
        """Fuse two images (grey or colour); the result has ``a``'s H×W, float32 in [0, 1].

        Float numpy ``H×W`` / ``H×W×3`` arrays in [0, 1] are taken as they are (the fast path:
        :func:`fuse` and the readers convert first; one min/max pass checks the range); anything
        else (other layouts too: ``C×H×W``, ``H×W×1``, RGBA) goes through the input contract
        (:func:`as_image`: uint8 / 255, uint16 / 65535; floats outside [0, 1] refused), never as
        raw 0..255 values. Colour is RGB (an OpenCV frame: ``frame[..., ::-1]``). Neither source is
        checked for its task (a colour infrared is fused as colour): calling the Fuser,
        ``fuser(ir, vi, ir_norm=...)``, checks it and scales 12/14-bit infrared."""
        a, b = (x if _unit_floats(x) else as_image(x, name=name) for x, name in zip((a, b), names))
        prepared = self.prepare(a, b, resize_b=resize_b, names=names)
        return self.finish(self.fuse_prepared([prepared], grey)[0], prepared, grey)

    def __call__(self, ir: ImageLike, vi: ImageLike, **kwargs) -> np.ndarray:
        """``fuse(ir, vi, model=self, **kwargs)``: any image-like sources, checked for this Fuser's
        task; keywords as :func:`fuse` takes them (``grey``, ``resize_vi``, ``ir_norm``, ``task``)."""
        return fuse(ir, vi, model=self, **kwargs)


def _check_luma(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> None:
    """:meth:`Fuser.fuse_luma`'s contract, said as an :class:`InputError` rather than whatever a
    network's first layer raises: as many images on each side, each pair two ``H×W`` float arrays
    of one non-empty shape in [0, 1] (0..255 values or NaN came back saturated or NaN, unsaid)."""
    if len(a) != len(b):
        raise InputError(f"{len(a)} images on one side but {len(b)} on the other")
    for i, (x, y) in enumerate(zip(a, b)):
        where = f" (pair {i})" if len(a) > 1 else ""
        if np.ndim(x) != 2 or np.ndim(y) != 2 or np.shape(x) != np.shape(y) or not np.size(x):
            raise InputError(f"expected two grey H×W images of one non-empty shape{where}, got {np.shape(x)} and {np.shape(y)}")
        for z in (x, y):
            if not (isinstance(z, np.ndarray) and np.issubdtype(z.dtype, np.floating) and in_unit_range(value_range(z))):
                got = (f"a {type(z).__name__}" if not isinstance(z, np.ndarray)
                       else f"{z.dtype} pixels" if not np.issubdtype(z.dtype, np.floating)
                       else "NaN or infinity" if value_range(z) is None else "values {:g}..{:g}".format(*value_range(z)))
                raise InputError(f"fuse_luma takes float arrays in [0, 1]{where}, got {got}; fuse_images and litefuse.fuse "
                                 "read any image as the input contract says (scaled, checked)")


def _unit_floats(x) -> bool:
    """Whether ``x`` is a float numpy array already as the input contract leaves it: ``H×W`` or
    ``H×W×3`` with distinct channels (three equal ones are grey: the contract collapses them),
    at least :data:`~litefuse.io.MIN_SIDE` on each side, in [0, 1] (to its tolerance). Other
    layouts (``C×H×W``, ``H×W×1``, RGBA) and sizes go through :func:`as_image`."""
    return (isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)
            and (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3 and not equal_channels(x)))
            and min(x.shape[:2]) >= MIN_SIDE and in_unit_range(value_range(x)))


@dataclass
class Prepared:
    """Two sources ready for fusion: ``(luma, cb, cr)`` each, chroma ``None`` for grey; or, when
    ``whole``, ``(image, None, None)`` each, split on the device by :meth:`Fuser.fuse_prepared`."""

    a: tuple
    b: tuple
    whole: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.a[0].shape[:2]


def _merge_colour(y, chroma_a: tuple, chroma_b: tuple, grey: bool = False):
    """Fused luma (numpy or torch) back to an image: as it is when ``grey`` or both sources are
    grey, else RGB with one colour source's ``(cb, cr)`` or the blend of both (:func:`fuse_chroma`)."""
    (cba, cra), (cbb, crb) = chroma_a, chroma_b
    if grey or (cba is None and cbb is None):
        return y
    if cba is not None and cbb is not None:
        cb, cr = fuse_chroma(cba, cra, cbb, crb)
    else:
        cb, cr = (cba, cra) if cba is not None else (cbb, crb)
    return ycbcr_to_rgb(y, cb, cr)


def _split(x, colour: bool | None = None):
    """A grey or colour (channels last) image, numpy or torch, -> ``(luma, cb, cr)``; ``colour``
    says which for a stack of images (default: an image is colour when it has 3 axes)."""
    if not (x.ndim == 3 if colour is None else colour):
        return x, None, None
    return rgb_to_ycbcr(x)


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(np.require(x, requirements="W")).float()  # read-only: copied (see Fuser._upload)
    t = t[None, None] if x.ndim == 2 else t.permute(2, 0, 1)[None]
    t = F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0.0, 1.0)
    out = t[0, 0] if x.ndim == 2 else t[0].permute(1, 2, 0)
    return out.contiguous().numpy()


def _stretch_range(y: torch.Tensor) -> torch.Tensor:
    """Each luma of a ``(B, 1, H, W)`` batch min-max stretched to [0, 1], as CDDFuse's ``test_IVF.py`` saves (flat: as it is)."""
    lo, hi = y.amin(dim=(1, 2, 3), keepdim=True), y.amax(dim=(1, 2, 3), keepdim=True)
    spreads = (hi - lo).flatten()
    flat = spreads[(spreads > 0) & (spreads < 2 / 255)]
    if len(flat):  # a near-flat result (a dark pair): stretched, its rounding noise fills 0..255
        levels = f"{float(flat[0]) * 255:.2g}"
        warnings.warn(f"--stretch / stretch=True: a fused image spans {levels} grey level{'' if levels == '1' else 's'}; "
                      "stretched to the full range, its rounding noise becomes the picture", OnceWarning, stacklevel=2)
    return torch.where(hi > lo, (y - lo) / (hi - lo).clamp(min=1e-12), y)


@lru_cache(maxsize=4)
def _cached_fuser(model: str | None, weights: tuple | None, device: str, task: str) -> Fuser:
    return Fuser(model, weights=None if weights is None else weights[0], device=device, task=task)


def _weights_key(weights: str | Path | None) -> tuple | None:
    """A weights file's identity for the cache: path, size and modification time, so a file
    retrained in place is loaded afresh."""
    if weights is None:
        return None
    path = Path(weights)
    try:
        st = path.stat()
    except OSError:
        return (str(path), None, None)  # the loader reports the missing file
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _is_grey(x: np.ndarray) -> bool:
    return x.ndim == 2


def fuse(
    ir: ImageLike,
    vi: ImageLike,
    model: str | Fuser | None = None,
    *,
    weights: str | Path | None = None,
    device: str = "cpu",
    grey: bool = False,
    resize_vi: bool = False,
    ir_norm: Norm = "range",
    task: str | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Fuse an infrared and a visible image (or, with an A/B ``task``, any two sources).

    ``ir``/``vi``: paths, PIL images, numpy arrays (``H×W`` or ``H×W×3``) or torch tensors (also ``C×H×W`` and ``1×C×H×W``), read by the input contract of
    :mod:`litefuse.io` (uint8, uint16, floats in [0, 1]; other integers need ``ir_norm``, which
    scales an infrared source only: with an A/B ``task`` it must stay ``"range"``).
    Returns a float32 array in [0, 1] with the first image's H×W: ``H×W×3`` when a source is
    colour (unless ``grey``), ``H×W`` otherwise. For ``task="ivif"`` the
    infrared must be grey (three identical channels count as grey); ``task="mef"``, ``"mff"``,
    ``"medical"`` or ``"ab"`` accept two colour sources (chroma weighted by saturation).
    ``task`` defaults to a given Fuser's, else ``"ivif"``; with ``task="ab"`` and no ``model`` or ``weights``,
    the pair's task is read from its pixels (:func:`~litefuse.tasks.read_ab_task`) and picks the default.
    ``model``: a registered name (default: :func:`default_model` of the task; loaded once with ``weights``
    and ``device``, then cached) or a loaded :class:`Fuser`. ``resize_vi``: resample the second
    source to the first's size (else a size mismatch is an error). ``threads``: CPU threads for
    torch (see :class:`Fuser`). Raises :class:`~litefuse.errors.InputError` for a bad source,
    :class:`~litefuse.errors.ModelError` for an unknown model or bad weights and
    :class:`~litefuse.errors.OptionError` for bad options (all :class:`~litefuse.errors.LitefuseError`).
    """
    check_loaded(model, weights, device)
    task = check_task(task or (model.task if isinstance(model, Fuser) else "ivif"))
    ir_norm = check_ir_norm(ir_norm, task)  # before loading; A/B sources are read as they are, as in fuse_files
    ir_name = ir if isinstance(ir, (str, Path)) else ("a" if task != "ivif" else "infrared")
    vi_name = vi if isinstance(vi, (str, Path)) else ("b" if task != "ivif" else "visible")
    a = as_image(ir, norm=ir_norm, name=ir_name)
    b = as_image(vi, name=vi_name)
    if task == "ab" and model is None and weights is None:  # the default of the task its pixels suggest
        task = read_ab_task(a, b)
    fuser = model if isinstance(model, Fuser) else _cached_fuser(model, _weights_key(weights), device, task)
    if threads is not None:  # after loading: a Fuser built on a cache miss sets the default count
        prepare(threads)
    a = _first_source(a, ir_name, task)
    return fuser.fuse_images(a, b, grey=grey, resize_b=resize_vi, names=(ir_name, vi_name))


def check_loaded(model: str | Fuser | None, weights: str | Path | None, device: str) -> None:
    """A loaded :class:`Fuser` has its weights and device: ``weights=`` / ``device=`` beside
    one are an :class:`~litefuse.errors.OptionError`, never ignored in silence."""
    if isinstance(model, Fuser) and (weights is not None or device != "cpu"):
        raise OptionError("weights= and device= choose what a Fuser loads; give them to Fuser(...), "
                          "or pass the model by name")


def warn_ir_norm(fuser: Fuser, ir_norm: Norm) -> None:
    """Warn (a CLI ``note:``) when ``fuser``'s weights were trained on infrared read with another
    scale than ``ir_norm`` (:func:`ir_norm_note`): allowed, but rarely meant."""
    note = ir_norm_note(fuser, ir_norm)
    if note:
        warnings.warn(note, UserWarning, stacklevel=3)


def ir_norm_note(fuser: Fuser, ir_norm: Norm) -> str | None:
    """The note for a run's weights trained on infrared read with another scale than
    ``ir_norm`` (``train --ir-norm 4095``, fused without it), or ``None``."""
    trained = fuser.trained_ir_norm
    if trained == "range":  # files' own range (the shipped weights too): any --ir-norm that maps the data to it fits
        return None
    try:
        same = parse_norm(trained) == check_norm(ir_norm)
    except ValueError:  # a value this version cannot read: say nothing rather than guess
        return None
    if same:
        return None
    return f"{fuser.label} was trained on infrared read with --ir-norm {trained}; give it the same to fuse as it learned"


def _first_source(a: np.ndarray, name, task: str) -> np.ndarray:
    """The first source as fused: for infrared-visible pairs grey (:func:`~litefuse.io.grey_infrared`)."""
    two_colour = "two colour sources: --a/--b on the command line, task='mef', 'mff' or 'medical' in Python"
    return grey_infrared(a, name, two_colour) if task == "ivif" else a


def check_ir_norm(ir_norm: Norm, task: str) -> Norm:
    """``ir_norm`` scales an infrared source; A/B pairs (two exposures, two focal planes, two
    scans) are read as they are, or one source alone would be stretched against the other."""
    ir_norm = check_norm(ir_norm)
    if ir_norm != "range" and task != "ivif":
        which = "A/B pairs" + ("" if task == "ab" else f" ({task})")  # "ab": any A/B task, not a name to show
        raise OptionError(f"ir_norm={ir_norm!r} (--ir-norm) scales an infrared source; {which} are read as they are")
    return ir_norm


def fuse_files(
    ir: str | Path,
    vi: str | Path,
    out: str | Path,
    fuser: Fuser | Callable[[np.ndarray, np.ndarray], Fuser],
    *,
    grey: bool = False,
    resize_vi: bool = False,
    ir_norm: Norm = "range",
    overwrite: bool = False,
    task: str | None = None,
    bits: int = 8,
) -> Path:
    """Fuse two files and write the result atomically (format by suffix, ``bits`` per sample:
    16 keeps a 16-bit source's precision, in PNG / TIFF; colour in TIFF); checks the output path
    first. ``task`` defaults to the fuser's (``"ivif"``: the first file must be grey). ``fuser``
    may also be a function of the two decoded sources that returns one (the command line picks
    an A/B pair's default from its pixels: the files are read once, after the output checks);
    ``task`` then defaults to ``"ab"``."""
    out = check_output_path(out, (ir, vi), overwrite=overwrite, suffixes=OUTPUT_SUFFIXES)
    check_bits(out, bits)
    task = check_task(task or (fuser.task if isinstance(fuser, Fuser) else "ab"))
    a = read_image(ir, norm=check_ir_norm(ir_norm, task))
    b = read_image(vi)
    fuser = fuser if isinstance(fuser, Fuser) else fuser(a, b)
    warn_ir_norm(fuser, ir_norm)
    a = _first_source(a, ir, task)
    check_bits(out, bits, colour=not grey and (a.ndim == 3 or b.ndim == 3))  # before the fusion, not after it
    fused = fuser.fuse_images(a, b, grey=grey, resize_b=resize_vi, names=(ir, vi))
    return save_image(out, fused, bits=bits)
