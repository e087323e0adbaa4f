"""``compile=`` / ``--compile``: networks under torch.compile give the eager outputs, with
recompilation bounded when frame sizes vary.

The plumbing is tested with dynamo backends that trace without generating code (fast); the
inductor backend itself (tens of seconds to compile on 2 cores) runs only with
``LITEFUSE_SLOW_TESTS=1``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from litefuse.api import Fuser
from litefuse.demo import synthetic_pair
from litefuse.errors import OptionError

COMPILES: list[int] = []


@pytest.fixture(scope="module")
def counting_backend() -> str:
    """A dynamo backend that runs the traced graph as is and counts how often it compiles."""
    import torch._dynamo

    name = "litefuse_test_counter"
    if name not in torch._dynamo.list_backends(exclude_tags=()):
        @torch._dynamo.register_backend(name=name)
        def _counter(gm, example_inputs):
            COMPILES.append(len(example_inputs))
            return gm.forward
    return name


def test_compiled_network_matches_eager_and_recompiles_are_bounded(counting_backend, one_thread):
    torch._dynamo.reset()
    COMPILES.clear()
    fuser, eager = Fuser("aenetv2-ivif", compile=counting_backend), Fuser("aenetv2-ivif")
    assert fuser.compiled == counting_backend and isinstance(fuser.model, torch._dynamo.eval_frame.OptimizedModule)
    counts = []
    for h, w in [(64, 80), (72, 96), (64, 80), (68, 84), (88, 120), (100, 60), (90, 110)]:
        ir, vi = synthetic_pair(h, w)
        out = fuser.fuse_images(ir, vi)
        np.testing.assert_allclose(out, eager.fuse_images(ir, vi), atol=2e-6)  # traced: F.conv2d, eager: oneDNN op
        counts.append(len(COMPILES))
    # a static graph for the first size, one with dynamic height/width for the second that also
    # serves the repeat and a nearby size; crossing a size threshold torch guards on (conv
    # algorithm choice: 8·(H/2)·(W/2) <= 20480) costs one more; later sizes reuse them
    assert counts[:4] == [1, 2, 2, 2] and counts[-1] <= 3, counts


def test_a_last_smaller_batch_reuses_the_compiled_graph(counting_backend, one_thread):
    """A folder's last, smaller batch runs padded to the batch compiled at its frame size: one
    graph, not two (the second compile costs tens of seconds on a CPU, a new CUDA graph on a GPU),
    and the outputs are the pairs' own. A larger batch still compiles."""
    torch._dynamo.reset()
    COMPILES.clear()
    fuser, eager = Fuser("aenetv2-ivif", compile=counting_backend), Fuser("aenetv2-ivif")
    rng = np.random.default_rng(0)
    a, b = list(rng.random((5, 40, 56), dtype=np.float32)), list(rng.random((5, 40, 56), dtype=np.float32))
    assert len(fuser.fuse_luma_batch(a[:4], b[:4])) == 4 and len(COMPILES) == 1
    last = fuser.fuse_luma_batch(a[4:] * 2, b[4:] * 2) + fuser.fuse_luma_batch(a[:3], b[:3])
    assert len(COMPILES) == 1, COMPILES
    for got, want in zip(last, eager.fuse_luma_batch(a[4:] * 2, b[4:] * 2) + eager.fuse_luma_batch(a[:3], b[:3])):
        np.testing.assert_allclose(got, want, atol=2e-6)
    fuser.fuse_luma_batch(a, b)  # 5 > 4: a new graph (torch's dynamic batch), then any batch up to 5 reuses it
    assert len(COMPILES) == 2 and len(fuser.fuse_luma_batch(a[:2], b[:2])) == 2 and len(COMPILES) == 2


def test_dwsfusion_traces_as_one_graph(counting_backend, one_thread):
    """DWSFusion under torch.compile: the FFT masks are traced from index arithmetic (from_numpy
    in inference mode tripped a dynamo guard) and the deformable sampling takes the gather path
    (the CPU shift path's data-dependent shifts broke the graph into dozens of recompiles)."""
    torch._dynamo.reset()
    COMPILES.clear()
    ir, vi = synthetic_pair(40, 56)
    out = Fuser("dwsfusion", compile=counting_backend).fuse_images(ir, vi)
    assert len(COMPILES) == 1, COMPILES
    np.testing.assert_allclose(out, Fuser("dwsfusion").fuse_images(ir, vi), atol=2e-5)


def test_compile_option_checks_and_classical_fusers_stay_eager():
    with pytest.raises(OptionError, match="torch.compile backend"):
        Fuser("aenetv2", compile="no-such-backend")
    fuser = Fuser("max", compile=True)
    assert fuser.compiled is None and not isinstance(fuser.model, torch._dynamo.eval_frame.OptimizedModule)


def test_cli_compile_flag(tmp_path, monkeypatch, one_thread):
    from litefuse.cli import main
    from litefuse.io import read_image, save_image

    monkeypatch.setenv("LITEFUSE_COMPILE_BACKEND", "eager")  # trace only: the flag's wiring, fast
    ir, vi = synthetic_pair(48, 64)
    save_image(tmp_path / "ir.png", ir)
    save_image(tmp_path / "vi.png", vi)
    for flag, out in (("--compile", "c.png"), ("--threads", "e.png")):
        args = ["fuse", "--ir", str(tmp_path / "ir.png"), "--vi", str(tmp_path / "vi.png"), "-o", str(tmp_path / out)]
        monkeypatch.setattr("sys.argv", ["litefuse", *args, *([flag] if flag == "--compile" else [flag, "1"])])
        try:
            main()
        except SystemExit as exit_:
            assert exit_.code in (0, None)
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), read_image(tmp_path / "e.png"))


@pytest.mark.skipif(os.environ.get("LITEFUSE_SLOW_TESTS") != "1", reason="inductor compiles for ~1 min; set LITEFUSE_SLOW_TESTS=1")
def test_inductor_matches_eager(one_thread):
    ir, vi = synthetic_pair(96, 128)
    out = Fuser("aenetv2-ivif", compile=True).fuse_images(ir, vi)
    assert np.abs(out - Fuser("aenetv2-ivif").fuse_images(ir, vi)).max() < 1e-5


def test_compiling_for_the_cpu_says_it_runs_slower(counting_backend, recwarn):
    """inductor on the CPU ran every network slower than eager (docs/benchmarks.md): a Fuser asked for
    it says so (building it compiles nothing yet); other backends and classical methods say nothing."""
    from litefuse.api import CPU_COMPILE_NOTE

    said = lambda: [str(w.message) for w in recwarn.list].count(CPU_COMPILE_NOTE)  # noqa: E731
    Fuser("aenetv2-ivif", compile=True)
    assert said() == 1
    recwarn.clear()
    Fuser("aenetv2-ivif", compile=counting_backend)
    Fuser("max", compile=True)
    Fuser("aenetv2-ivif")
    assert said() == 0
