"""Process-level runtime policy: oneDNN's instruction-set cap for float32 inference on AMD Zen 4."""

from __future__ import annotations

import json
import os
import warnings
import subprocess
import sys

import pytest
import torch

from litefuse.errors import LitefuseError
from litefuse.runtime import onednn_isa_cap

ZEN4 = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n"


@pytest.mark.parametrize(
    ("cpuinfo", "environ", "expected"),
    [
        (ZEN4, {}, "AVX2"),
        (ZEN4, {"ONEDNN_MAX_CPU_ISA": "ALL"}, None),  # the user's own choice wins
        (ZEN4.replace(" avx512f", ""), {}, None),  # Zen 3: family 19h without AVX-512
        (ZEN4.replace(": 25", ": 26"), {}, None),  # Zen 5: full-width AVX-512, not measured
        (ZEN4.replace("AuthenticAMD", "GenuineIntel").replace(": 25", ": 6"), {}, None),
        ("", {}, None),
        # only the first CPU's block counts
        ("vendor_id\t: GenuineIntel\n\n" + ZEN4, {}, None),
    ],
)
def test_cap_only_on_zen4_and_never_over_the_users_setting(cpuinfo, environ, expected):
    assert onednn_isa_cap(cpuinfo, environ) == expected


_PROBE = r"""
import json, os, sys, warnings
import numpy as np
from litefuse.api import Fuser
from litefuse.runtime import isa_capped, onednn_isa_cap
expected = onednn_isa_cap()  # before any model: the environment as the process started
pair = np.random.default_rng(0).random((2, 64, 96), dtype=np.float32)
out = {"expected": expected}
for i, precision in enumerate(sys.argv[1:]):
    print(f"MARK {i}", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Fuser("aenetv2", precision=precision, threads=1).fuse_images(pair[0], pair[1])
    out[f"capped{i}"] = isa_capped()
    out[f"warned{i}"] = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
out["env_left"] = "ONEDNN_MAX_CPU_ISA" in os.environ
print("RESULT " + json.dumps(out), flush=True)
"""


def _probe(*precisions: str, **env: str) -> tuple[dict, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "ONEDNN_VERBOSE")}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *precisions], env={**base, "ONEDNN_VERBOSE": "1", **env},
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    return result, proc.stdout


def _conv_kernels(stdout: str, after: str) -> list[str]:
    """oneDNN's convolution implementations (e.g. ``brg_conv_fwd:avx2``) run after the marker."""
    text = stdout.split(after, 1)[1]
    return [line.split(",")[6] for line in text.splitlines() if line.startswith("onednn_verbose") and ",exec,cpu,convolution," in line]


def test_float32_fuser_caps_where_measured_and_restores_the_environment():
    result, stdout = _probe("fp32")
    capped = result["expected"] is not None
    assert result["capped0"] is capped
    assert not result["env_left"]  # child processes keep the full instruction set
    kernels = _conv_kernels(stdout, "MARK 0")
    assert kernels, "oneDNN ran no convolution"
    if capped:  # every convolution of the network ran oneDNN's AVX2 kernels
        assert all("avx512" not in k for k in kernels), kernels


def test_reduced_precision_keeps_the_full_set_and_warns_after_a_cap():
    result, _ = _probe("bf16", "fp32")  # bf16 first: decided, no cap, no warning later
    assert result["capped0"] is False and result["capped1"] is False
    assert result["warned0"] == [] and result["warned1"] == []
    result, _ = _probe("fp32", "bf16")
    if result["expected"] is None:
        pytest.skip("no cap on this CPU")
    assert result["capped1"] is True
    assert len(result["warned1"]) == 1 and "ONEDNN_MAX_CPU_ISA=ALL" in result["warned1"][0]


def test_users_setting_is_kept():
    result, stdout = _probe("fp32", ONEDNN_MAX_CPU_ISA="ALL")
    assert result["expected"] is None and result["capped0"] is False
    if onednn_isa_cap(environ={}) is not None:  # a Zen 4: uncapped, its convolutions are AVX-512 ones
        assert any("avx512" in k for k in _conv_kernels(stdout, "MARK 0"))


def test_benchmark_tables_name_the_instruction_set_limit(monkeypatch):
    import litefuse.runtime as runtime
    from litefuse.bench import machine_line

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(runtime, "_ISA_CAPPED", False)
    assert "oneDNN" not in machine_line() and "ONEDNN" not in machine_line()
    monkeypatch.setattr(runtime, "_ISA_CAPPED", True)
    assert machine_line().endswith("; oneDNN capped at AVX2 (litefuse.runtime.onednn_isa_cap)")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert machine_line().endswith("; ONEDNN_MAX_CPU_ISA=ALL")


def test_default_threads_leave_busy_cores_alone(monkeypatch):
    from litefuse import runtime

    monkeypatch.delenv("LITEFUSE_THREADS", raising=False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 8)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (5.2, 0.0, 0.0))
    assert runtime.default_threads() == 3
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (30.0, 0.0, 0.0))
    assert runtime.default_threads() == 1
    monkeypatch.setenv("LITEFUSE_THREADS", "6")
    assert runtime.default_threads() == 6
    monkeypatch.setenv("LITEFUSE_THREADS", "many")
    with pytest.raises(LitefuseError, match="LITEFUSE_THREADS"):
        runtime.default_threads()


def test_a_thread_count_the_user_chose_is_kept(monkeypatch):
    """A library must not override ``torch.set_num_threads`` / ``OMP_NUM_THREADS``: Fuser() reset
    them to its load-based default; ``threads=`` and ``$LITEFUSE_THREADS`` still choose."""
    import litefuse
    from litefuse import runtime

    before = torch.get_num_threads()
    monkeypatch.delenv("LITEFUSE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "default_threads", lambda: 2)
    try:
        monkeypatch.setattr(runtime, "_LAST_SET", None)
        monkeypatch.setattr(runtime, "_IMPORT_THREADS", torch.get_num_threads())
        torch.set_num_threads(2)
        assert litefuse.Fuser("max").threads == 2  # nobody chose: the default
        torch.set_num_threads(1)  # the user's choice, after litefuse set 2
        assert litefuse.Fuser("max").threads == 1 and torch.get_num_threads() == 1
        assert litefuse.Fuser("max").threads == 1  # ... and stays the user's on later calls
        assert litefuse.Fuser("max", threads=2).threads == 2  # an explicit count wins
        assert litefuse.Fuser("max").threads == 2  # ... and is litefuse's own from then on
        monkeypatch.setattr(runtime, "_LAST_SET", None)  # a fresh process started with OMP_NUM_THREADS=1
        torch.set_num_threads(1)
        monkeypatch.setattr(runtime, "_IMPORT_THREADS", 1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert litefuse.Fuser("max").threads == 1 and litefuse.Fuser("max").threads == 1
        monkeypatch.setenv("LITEFUSE_THREADS", "2")
        monkeypatch.setattr(runtime, "default_threads", lambda: int(runtime.os.environ["LITEFUSE_THREADS"]))
        assert litefuse.Fuser("max").threads == 2  # litefuse's own setting wins over torch's
    finally:
        torch.set_num_threads(before)


def test_fusers_built_at_once_in_threads_decide_the_cap_once(monkeypatch):
    """A service building Fusers in several threads: one decides, the variable is set and removed
    once (two deciding threads both removed it: KeyError out of Fuser(...))."""
    import threading
    import time

    import litefuse.runtime as runtime

    def slow_cap():  # reading /proc/cpuinfo: the window where a second thread came in
        time.sleep(0.2)
        return "AVX2"

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(runtime, "_ISA_CAPPED", None)
    monkeypatch.setattr(runtime, "onednn_isa_cap", slow_cap)
    monkeypatch.setattr(runtime.torch, "mkldnn_convolution", lambda *args: None)  # this process keeps its set
    monkeypatch.setattr(runtime.torch.backends.mkldnn, "is_available", lambda: True)
    errors: list[BaseException] = []

    def build():
        try:
            runtime.apply_isa_policy("fp32")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert runtime.isa_capped() and "ONEDNN_MAX_CPU_ISA" not in os.environ


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_either_reduced_precision_after_a_capped_float32_model_warns(monkeypatch, precision):
    """Once float32 capped oneDNN at AVX2, an fp16 model warns just as a bf16 one does (both
    need AVX-512 kernels); float32 itself does not."""
    import warnings

    import litefuse.runtime as runtime

    monkeypatch.setattr(runtime, "_ISA_CAPPED", True)
    with pytest.warns(RuntimeWarning, match=f"{precision} on the CPU after a float32 model"):
        assert runtime.apply_isa_policy(precision) is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runtime.apply_isa_policy("fp32") is True


_HEAP_PROBE = r"""
import json, sys
import numpy as np
import litefuse

def rss_mb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024

litefuse.load_model(sys.argv[1])
a = np.ones(50_000_000, np.float32)  # 200 MB, every page touched
held = rss_mb()
del a
print("RESULT " + json.dumps({"released_mb": held - rss_mb()}), flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc heap and /proc/self/status")
@pytest.mark.parametrize(("name", "env", "kept"), [("aenetv2", {}, True), ("aenetv2", {"LITEFUSE_RESIDENT_HEAP": "0"}, False),
                                                   ("aenetv2", {"LITEFUSE_RESIDENT_HEAP": "false"}, False), ("max", {}, False)])
def test_load_model_keeps_the_heap_resident_for_cpu_networks(name, env, kept):
    """A network loaded on the CPU applies the CLI's heap policy (a freed full-resolution map stays in
    the heap for the next call instead of being unmapped and page-faulted anew); the user's opt-out and
    classical methods, which need none, leave glibc's default."""
    base = {k: v for k, v in os.environ.items() if k != "LITEFUSE_RESIDENT_HEAP"}
    proc = subprocess.run([sys.executable, "-c", _HEAP_PROBE, name], env={**base, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    released = json.loads(proc.stdout.split("RESULT ", 1)[1])["released_mb"]
    assert (released < 20) if kept else (released > 150), released


def test_a_resident_heap_setting_of_no_known_meaning_is_refused(monkeypatch):
    """``LITEFUSE_RESIDENT_HEAP=false`` kept the policy on in silence: only ``0`` turned it off."""
    from litefuse import runtime
    from litefuse.errors import OptionError

    monkeypatch.setattr(runtime, "_HEAP_DONE", None)
    monkeypatch.setenv("LITEFUSE_RESIDENT_HEAP", "maybe")
    with pytest.raises(OptionError, match="LITEFUSE_RESIDENT_HEAP='maybe': expected 1"):
        runtime.apply_heap_policy()
    monkeypatch.setenv("LITEFUSE_RESIDENT_HEAP", "Off")
    assert runtime.apply_heap_policy() is False


def test_more_threads_than_cores_is_said(monkeypatch):
    """LITEFUSE_THREADS=999 on a 2-core machine was applied in silence (2 threads on a busy 2-core
    machine already ran about 10x slower than 1)."""
    from litefuse import runtime

    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    monkeypatch.setenv("LITEFUSE_THREADS", "999")
    with pytest.warns(UserWarning, match="LITEFUSE_THREADS=999 is more threads than the 2 CPUs"):
        assert runtime.default_threads() == 999
    monkeypatch.setenv("LITEFUSE_THREADS", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runtime.default_threads() == 2
