"""tools/positive_ceiling.py: the per-pair oracle of the positive-sample rule, on a hand-made table."""

import csv
import importlib.util
from pathlib import Path

import pytest

from litefuse.metrics import CORE_METRICS
from litefuse.train.positives import BANK

spec = importlib.util.spec_from_file_location("positive_ceiling", Path(__file__).parents[1] / "tools" / "positive_ceiling.py")
ceiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ceiling)


def _write(path: Path, table: dict[str, dict[str, float]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["set", "image", "method", *CORE_METRICS])
        for image, per_method in table.items():
            for method, v in per_method.items():
                w.writerow(["S", image, method, *([v] * len(CORE_METRICS))])


def test_oracle_takes_each_pairs_winner_and_counts_strict_wins(tmp_path):
    # pair a: gff wins every metric (value 5), pair b: max wins (value 7); the rest score 1
    table = {img: {m: 1.0 for m in (*BANK, "net")} for img in ("a", "b")}
    table["a"]["gff"], table["b"]["max"], table["a"]["net"], table["b"]["net"] = 5.0, 7.0, 3.0, 3.0
    path = tmp_path / "scores.csv"
    _write(path, table)
    out = ceiling.oracle_table(path, "net")
    assert "gff 1, max 1" in out
    rows = {line.split(" | ")[0].lstrip("| "): line for line in out.splitlines() if line.startswith("| ")}
    assert rows["oracle"].startswith("| oracle | 6.000")  # mean of 5 and 7
    assert rows["gff"].endswith("| 8/8 | 0/8 |")  # gff mean 3.0 ties the net: a tie is not a win
    assert rows["mean"].endswith("| 8/8 | 8/8 |")


def test_a_pair_missing_a_bank_fuser_is_one_line_error(tmp_path):
    table = {"a": {m: 1.0 for m in (*BANK, "net")}}
    del table["a"]["wavelet"]
    path = tmp_path / "scores.csv"
    _write(path, table)
    with pytest.raises(SystemExit, match="pair S/a has no rows for wavelet"):
        ceiling.oracle_table(path, "net")
