"""benchmarks/bench_pipeline.py (docs/benchmarks.md: ``--pairs N``): the per-pair time is
(T_n − T_1) / (n − 1), so fewer than 2 pairs is a usage error, not a ZeroDivisionError at the end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pipeline.py"


@pytest.mark.parametrize("pairs", ["1", "0"])
def test_fewer_than_two_pairs_is_a_usage_error(monkeypatch, tmp_path, capsys, pairs):
    spec = importlib.util.spec_from_file_location("bench_pipeline_under_test", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "_subset", lambda *a: pytest.fail("ran before checking --pairs"))
    monkeypatch.setattr(sys, "argv", ["bench_pipeline.py", "--pairs", pairs, "--data", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        bench.main()
    assert exit_info.value.code == 2 and "--pairs must be at least 2" in capsys.readouterr().err
