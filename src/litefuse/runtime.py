"""Process-level runtime settings for CPU/GPU inference: device choice, CPU threads, heap policy,
oneDNN's instruction set.

One home for what every entry point (CLI, :class:`litefuse.Fuser`, trainers, benchmarks) applies
before running a network, so the Python API runs as fast as the command line.

Threads. torch uses one intra-op thread per core by default. On a shared machine whose cores are
already busy that oversubscribes them, and these thin, memory-bound networks then run several
times slower than with fewer threads (measured: aenetv2 326 vs 35 ms a pair with 2 threads vs 1
on a loaded 2-core host). :func:`default_threads` therefore takes the cores this process may use
minus the ones the 1-minute load average says are busy (at least 1); ``LITEFUSE_THREADS`` or an
explicit ``threads=`` / ``--threads`` overrides it.

Instruction set. On AMD Zen 4 float32 inference caps oneDNN at AVX2 (:func:`onednn_isa_cap`):
its AVX-512 kernels do up to twice the work on litefuse's thin layers there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import warnings
from functools import lru_cache

import torch

from torch import nn

from .errors import OptionError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

__all__ = ["PRECISIONS", "check_precision", "with_precision", "compile_for_inference", "compile_backend", "resolve_device", "available_cores", "free_cores", "default_threads", "user_threads", "set_threads", "keep_heap_resident", "release_free_heap", "apply_heap_policy", "parse_cpuinfo", "cpu_facts", "onednn_isa_cap", "apply_isa_policy", "keep_full_isa", "isa_capped", "prepare", "run_padded"]

_HEAP_DONE: bool | None = None
_IMPORT_THREADS = torch.get_num_threads()  # torch's count when litefuse was imported
_LAST_SET: int | None = None  # the count set_threads last applied
_LAST_WAS_USERS = False  # ... and whether it was a count the user chose (kept, not litefuse's own)
_ISA_CAPPED: bool | None = None  # None: not decided yet in this process
_ISA_ENV = "ONEDNN_MAX_CPU_ISA"
_ISA_LOCK = threading.Lock()  # one thread decides: Fusers built at once in a service's threads


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when available; anything else is passed to :class:`torch.device`."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(f"device {device!r}: expected 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("device 'cuda' requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise OptionError(f"device {device!r}: only 'cpu' and 'cuda' are supported")
    return dev


def check_precision(precision: str) -> torch.dtype:
    """The torch dtype of ``"fp32"``, ``"fp16"`` or ``"bf16"``."""
    try:
        return PRECISIONS[precision]
    except (KeyError, TypeError):
        raise OptionError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}") from None


class HalfPrecision(nn.Module):
    """Runs a fusion network in fp16 or bf16: weights cast once, inputs cast on the way in,
    the fused image returned as float32. Parts that need float32 (DWSFusion's FFT) keep it
    inside the model; submodules a model names in ``float32_modules`` keep float32 weights and
    run on float32 inputs (hooks cast on the way in and back out, so state-dict keys do not
    change). Attributes of the wrapped model stay reachable."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model.to(dtype)
        self.dtype = dtype
        for name in getattr(model, "float32_modules", ()):
            part = model.get_submodule(name).float()
            part.register_forward_pre_hook(_inputs_to_float32)
            part.register_forward_hook(lambda _m, _i, out, dtype=dtype: out.to(dtype))

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return self.model(ir.to(self.dtype), vi.to(self.dtype)).float()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)


def _inputs_to_float32(_module: nn.Module, args: tuple) -> tuple:
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


def with_precision(model: nn.Module, precision: str = "fp32") -> nn.Module:
    """``model`` itself for ``"fp32"``, else wrapped in :class:`HalfPrecision`."""
    dtype = check_precision(precision)
    return model if dtype == torch.float32 else HalfPrecision(model, dtype)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Intra-op threads that avoid oversubscribing busy cores: ``$LITEFUSE_THREADS`` if set, else
    the available cores minus the busy ones by the 1-minute load average, at least 1."""
    env = os.environ.get("LITEFUSE_THREADS", "").strip()
    if env:
        return _check_threads(env, "LITEFUSE_THREADS")
    return free_cores()


def free_cores() -> int:
    """The available cores minus the busy ones by the 1-minute load average, at least 1."""
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - no load average on this OS
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def _check_threads(value: object, name: str = "threads") -> int:
    try:
        n = int(str(value))
    except ValueError:
        n = 0
    if n < 1:
        raise OptionError(f"{name}={value!r}: expected a positive whole number of CPU threads")
    if n > (cores := available_cores()):  # oversubscribed: each op's threads wait on each other
        warnings.warn(f"{name}={n} is more threads than the {cores} CPU{'s' * (cores != 1)} this process may use: "
                      "slower, not faster (torch's threads wait on each other)", UserWarning, stacklevel=3)
    return n


def user_threads() -> int | None:
    """torch's intra-op thread count where the user chose it -- ``torch.set_num_threads`` called
    since litefuse was imported (a count litefuse did not set), or ``OMP_NUM_THREADS`` in the
    environment -- else ``None``."""
    now = torch.get_num_threads()
    if _LAST_SET is not None:  # changed since litefuse set it, or kept then as the user's
        return now if now != _LAST_SET or _LAST_WAS_USERS else None
    if now != _IMPORT_THREADS or os.environ.get("OMP_NUM_THREADS", "").strip():
        return now
    return None


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op CPU threads (process-wide) to ``threads``; by default
    ``$LITEFUSE_THREADS``, else a count the user gave torch (:func:`user_threads`: a library
    must not override it), else :func:`default_threads`."""
    global _LAST_SET, _LAST_WAS_USERS
    users = None
    if threads is not None:
        n = _check_threads(threads)
    elif os.environ.get("LITEFUSE_THREADS", "").strip():
        n = default_threads()
    else:
        users = user_threads()
        n = users or default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _LAST_SET, _LAST_WAS_USERS = n, users is not None
    return n


def keep_heap_resident() -> bool:
    """Ask glibc to keep freed memory instead of returning it to the OS (process-wide).

    By default glibc serves every allocation above ~32 MiB with a fresh ``mmap`` and unmaps it
    on free, so each full-resolution feature map (64 x 640 x 480 floats = 79 MB) is page-faulted
    anew on every call; for thin, memory-bound networks on CPU this can cost more than the
    arithmetic (2-3x). Setting ``M_MMAP_MAX = 0`` and a huge ``M_TRIM_THRESHOLD`` makes large
    tensors reuse heap memory (PyTorch's CPU tuning guide recommends jemalloc/tcmalloc for the
    same reason). The process keeps its peak memory. Returns ``False`` where glibc is not
    available.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4
        ok = libc.mallopt(m_mmap_max, 0) == 1
        ok &= libc.mallopt(m_trim_threshold, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return False
    return bool(ok)


def release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Under :func:`keep_heap_resident` glibc keeps every freed block, and after
    many tiles the heap is fragmented: the full-size colour planes allocated next would land on
    top of it. One trim per frame (one page-fault pass) keeps that out of the peak (measured:
    lwc-densefuse, 6000×4000, tile 512: 2.52 → 1.98 GB).
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError, TypeError):  # not glibc
        pass


def apply_heap_policy() -> bool:
    """:func:`keep_heap_resident` once per process, unless ``LITEFUSE_RESIDENT_HEAP=0`` (or
    ``false``, ``no``, ``off``); a value that is none of these nor ``1``/``true``/``yes``/``on`` is an
    :class:`~litefuse.errors.OptionError` (``false`` kept the policy on in silence)."""
    global _HEAP_DONE
    if _HEAP_DONE is None:
        value = os.environ.get("LITEFUSE_RESIDENT_HEAP", "1").strip().lower()
        if value not in ("0", "false", "no", "off", "1", "true", "yes", "on", ""):
            raise OptionError(f"LITEFUSE_RESIDENT_HEAP={value!r}: expected 1 (keep freed memory resident) or 0 (glibc's default)")
        _HEAP_DONE = value not in ("0", "false", "no", "off") and keep_heap_resident()
    return _HEAP_DONE


def parse_cpuinfo(text: str) -> dict[str, str]:
    """``key: value`` facts of the first CPU block of a /proc/cpuinfo text (``model name``,
    ``vendor_id``, ``cpu family``, ``flags``, ...)."""
    facts: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # end of the first CPU's block
        key, _, value = line.partition(":")
        facts[key.strip()] = value.strip()
    return facts


@lru_cache(maxsize=1)
def cpu_facts() -> dict[str, str]:
    """This machine's :func:`parse_cpuinfo` (empty where /proc/cpuinfo is missing: not Linux)."""
    try:
        with open("/proc/cpuinfo") as fh:
            return parse_cpuinfo(fh.read(65536))  # the first CPU's block is enough
    except OSError:
        return {}


def onednn_isa_cap(cpuinfo: str | None = None, environ: dict | None = None) -> str | None:
    """The instruction set oneDNN should be capped at for float32 inference on this CPU, or ``None``.

    ``"AVX2"`` on AMD Zen 4 (family 19h with AVX-512), which executes 512-bit instructions as two
    256-bit halves: oneDNN's AVX-512 convolutions there gain nothing on wide layers, and they
    block output channels by 16 where its AVX2 kernels block by 8, so litefuse's 8-channel layers
    do twice the work (AE-Netv2's 1->8 stem at 640x480: 12.3 vs 2.3 ms). Capped, every network
    ran as fast or faster at inference (aenetv2-ivif 1.2-1.3x; docs/benchmarks.md). ``None``
    elsewhere (not measured there) and when ``ONEDNN_MAX_CPU_ISA`` is set: the user's choice
    (``ALL`` keeps every instruction set). ``cpuinfo`` / ``environ``: a /proc/cpuinfo text and
    the environment, for tests.
    """
    environ = os.environ if environ is None else environ
    if environ.get(_ISA_ENV, "").strip():
        return None
    facts = cpu_facts() if cpuinfo is None else parse_cpuinfo(cpuinfo)
    zen4 = facts.get("vendor_id") == "AuthenticAMD" and facts.get("cpu family") == "25"
    return "AVX2" if zen4 and "avx512f" in facts.get("flags", "").split() else None


def apply_isa_policy(precision: str = "fp32") -> bool:
    """Decide oneDNN's instruction set once per process; returns whether litefuse capped it.

    The first CPU inference entry point decides: float32 applies :func:`onednn_isa_cap`;
    fp16 / bf16 keep every instruction set, since their fast kernels need AVX-512 (BF16) --
    under an AVX2 cap they ran 10-40x slower. oneDNN reads its limit once, at its first kernel,
    so the variable is set, one tiny convolution pins it, and the environment is restored
    (child processes keep the full set); where oneDNN already ran in this process the cap has
    no effect. A reduced-precision model loaded after a capped float32 one warns. Thread-safe:
    Fusers built at once in several threads decide once (the variable is set and removed once).
    """
    with _ISA_LOCK:
        return _apply_isa_policy(precision)


def _apply_isa_policy(precision: str) -> bool:
    global _ISA_CAPPED
    if _ISA_CAPPED is None:
        cap = onednn_isa_cap() if precision == "fp32" and torch.backends.mkldnn.is_available() else None
        _ISA_CAPPED = False
        if cap is not None:
            os.environ[_ISA_ENV] = cap
            try:
                x = torch.zeros(1, 8, 4, 4).contiguous(memory_format=torch.channels_last)
                torch.mkldnn_convolution(x, torch.zeros(8, 8, 1, 1), None, [0, 0], [1, 1], [1, 1], 1)
                _ISA_CAPPED = True
            except RuntimeError:  # pragma: no cover - a build whose oneDNN refuses the call
                pass
            finally:
                del os.environ[_ISA_ENV]
    elif _ISA_CAPPED and precision != "fp32":
        warnings.warn(
            f"{precision} on the CPU after a float32 model in this process: litefuse capped oneDNN at AVX2 for "
            f"float32 speed on this CPU, and {precision} convolutions run many times slower under that cap; "
            f"use a separate process, or set {_ISA_ENV}=ALL before starting",
            RuntimeWarning,
            stacklevel=4,
        )
    return _ISA_CAPPED


def keep_full_isa() -> bool:
    """Decide, before any model runs, that this process keeps every oneDNN instruction set: for
    processes that mix float32 with fp16 / bf16 models (precision benchmarks, the test suite).
    Returns ``False``, or ``True`` when the cap was already applied (too late to lift)."""
    global _ISA_CAPPED
    with _ISA_LOCK:
        if _ISA_CAPPED is None:
            _ISA_CAPPED = False
        return _ISA_CAPPED


def isa_capped() -> bool:
    """Whether :func:`apply_isa_policy` capped oneDNN's instruction set in this process."""
    return bool(_ISA_CAPPED)


def prepare(threads: int | None = None, precision: str = "fp32") -> int:
    """What every CPU inference entry point applies: the heap policy, the instruction-set policy
    for ``precision`` (:func:`apply_isa_policy`) and the thread count (``threads`` or
    :func:`default_threads`). Returns the threads in use."""
    apply_heap_policy()
    apply_isa_policy(precision)
    return set_threads(threads)


def compile_backend(compile: bool | str | None) -> str | None:
    """The ``torch.compile`` backend ``compile`` asks for, or ``None`` for eager execution.

    ``True`` means ``$LITEFUSE_COMPILE_BACKEND`` or ``"inductor"`` (generated C++/OpenMP code on
    CPU, Triton kernels on GPU); a string names any backend of ``torch._dynamo.list_backends()``
    (``"eager"`` and ``"aot_eager"`` trace without generating code: quick, for debugging).
    """
    if compile is None or compile is False:
        return None
    backend = os.environ.get("LITEFUSE_COMPILE_BACKEND", "inductor") if compile is True else compile
    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if not isinstance(backend, str) or backend not in known:
        raise OptionError(f"compile={backend!r}: expected True, False or a torch.compile backend ({', '.join(known)})")
    return backend


def compile_for_inference(model: nn.Module, device: torch.device, compile: bool | str | None) -> nn.Module:
    """``model`` under ``torch.compile`` for repeated inference (see :func:`compile_backend`).

    The first call at a new frame size compiles (tens of seconds on a small CPU), later calls at
    that size run the compiled graph. Recompilation is bounded when sizes vary: the first size
    gets a static graph, the second a graph with dynamic height and width (torch's automatic
    dynamic shapes) that serves later sizes, plus one more graph each time a frame crosses a
    size threshold torch guards on (e.g. its convolution algorithm choice; 3 graphs for 7 sizes
    from 64×80 to 100×60 in the tests); ``torch._dynamo.config.recompile_limit`` (8) caps the
    total, after which new sizes run eagerly. Fusing a folder or video of one size compiles once:
    :class:`~litefuse.Fuser` pads a last, smaller batch to the compiled one (:func:`run_padded`).
    On CUDA the inductor backend uses ``mode="reduce-overhead"``, which replays
    the frame as one CUDA graph (one recorded graph per distinct size). Parameters are shared
    with ``model``; attribute access falls through to it.
    """
    backend = compile_backend(compile)
    if backend is None:
        return model
    mode = "reduce-overhead" if device.type == "cuda" and backend == "inductor" else None
    return torch.compile(model, backend=backend, mode=mode)


def run_padded(model: nn.Module, ta: torch.Tensor, tb: torch.Tensor, largest: dict) -> torch.Tensor:
    """``model(ta, tb)`` for a compiled network: a batch smaller than the largest run at its frame
    shape goes through padded with copies of its last pair, the extra outputs dropped, so a
    folder's or video's last, smaller batch reuses the compiled graph instead of compiling
    another (tens of seconds on a small CPU; a new CUDA graph on a GPU). Batch items are
    independent, so the outputs are the pairs' own. ``largest``: the caller's record, by shape."""
    n, key = ta.shape[0], (tuple(ta.shape[1:]), ta.dtype, ta.device)
    full = largest.get(key, 0)
    if n >= full:
        largest[key] = n
        return model(ta, tb)
    pad = [n - 1] * (full - n)  # the last pair, repeated
    return model(torch.cat([ta, ta[pad]]), torch.cat([tb, tb[pad]]))[:n]
