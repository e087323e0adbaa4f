"""benchmarks/bench_gpu.py, the script one short call on a lent GPU machine runs: a failing
section must not lose the others, ``--out`` is written as sections end, compiled cells respect
``--budget``, and nothing on its path needs PyWavelets or pypng (not installed there)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


@pytest.fixture
def bench(monkeypatch):
    for missing in ("pywt", "png", "imageio_ffmpeg"):  # absent on the GPU machine: importing them fails
        monkeypatch.setitem(sys.modules, missing, None)
    spec = importlib.util.spec_from_file_location("bench_gpu_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failing_section_keeps_the_others(bench, monkeypatch, tmp_path, one_thread):
    import litefuse.api

    class Broken(litefuse.api.Fuser):
        def __init__(self, model=None, *args, **kwargs):
            if model == "dwsfusion":
                raise RuntimeError("CUDA error: planted")
            super().__init__(model, *args, **kwargs)

    monkeypatch.setattr(litefuse.api, "Fuser", Broken)
    out = tmp_path / "deep" / "gpu.md"
    assert bench.main(["--device", "cpu", "--quick", "--networks", "aenetv2,dwsfusion", "--budget", "1e-9", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| aenetv2 |" in text and "| dwsfusion | fails: RuntimeError: CUDA error: planted" in text  # a cell of the precision table
    assert "**Section failed**: fails: RuntimeError: CUDA error: planted" in text  # the sampling section
    assert "### Folder fusion" in text and "| host (numpy, worker threads) | 3 |" in text  # the sections after it ran
    assert text.count("skipped: past the --budget") == 3  # aenetv2 (quick) and both DenseFuse rows: nothing compiled
    assert text.rstrip().splitlines()[-1].startswith("Total")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is here")
def test_no_cuda_is_one_line_and_exit_2(bench, capsys):
    """The default --device cuda on a machine without it: one line naming --device cpu --quick, not torch's AssertionError."""
    assert bench.main(["--quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device cuda needs CUDA") and "--device cpu --quick" in err and err.count("\n") == 1
