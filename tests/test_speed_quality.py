"""The speed-vs-quality chart and tools/speed_quality.py on made-up benchmark and score files."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from litefuse.viz import speed_quality_chart  # noqa: E402


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


speed_quality = _tool("speed_quality")

POINTS = [
    {"label": "max", "ms": 0.8, "kind": "classical", "MI": 2.9, "VIF": 0.70},
    {"label": "gff", "ms": 45.0, "kind": "classical", "MI": 3.1, "VIF": 0.72},
    {"label": "aenetv2", "ms": 12.0, "kind": "network", "MI": 3.4, "VIF": 0.75},
    {"label": "dwsfusion@release", "ms": 160.0, "kind": "reference", "MI": 3.6, "VIF": 0.78},
]


def test_chart_writes_a_png_with_one_panel_per_metric(tmp_path):
    out = speed_quality_chart(POINTS, tmp_path / "sub" / "sq.png", title="made up")
    assert out == tmp_path / "sub" / "sq.png"
    img = np.asarray(Image.open(out))
    h, w = img.shape[:2]
    assert 300 <= h <= 1200 and 700 <= w <= 2400 and w > h  # two panels side by side
    assert img.std() > 5  # something was drawn
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind
    one = np.asarray(Image.open(speed_quality_chart(POINTS, tmp_path / "one.png", metrics=("MI",))))
    assert one.shape[1] < w


def test_chart_rejects_unknown_kind_and_non_positive_time(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        speed_quality_chart([{**POINTS[0], "kind": "oracle"}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="positive"):
        speed_quality_chart([{**POINTS[0], "ms": 0.0}], tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    bench = {
        "machine": "- machine: test", "size": "640x480", "device": "cpu",
        "methods": {
            "max": {"params": 0, "macs": 0, "ms_median": 1.0, "ms_min": 0.9},
            "aenetv2": {"params": 1000, "macs": 10**8, "ms_median": 20.0, "ms_min": 18.0},
            "dwsfusion": {"params": 5000, "macs": 10**9, "ms_median": 100.0, "ms_min": 95.0},
        },
    }
    bench_path = tmp_path / "bench.json"
    bench_path.write_text(json.dumps(bench))
    cols = ["set", "image", "method", "EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM"]
    # (set, image, method, MI, VIF); set B rows for max pull its all-set means away from set A's
    rows = [
        ("A", "a1", "max", 2.0, 0.5), ("A", "a2", "max", 4.0, 0.7), ("B", "b1", "max", 9.0, 0.9),
        ("A", "a1", "aenetv2", 3.0, 0.6), ("A", "a2", "aenetv2", 5.0, 0.8),
        ("A", "a1", "dwsfusion@release", 6.0, 0.9), ("A", "a2", "dwsfusion@release", 4.0, 0.7),
        ("A", "a1", "mystery", 1.0, 0.1),
    ]
    scores_path = tmp_path / "scores.csv"
    with open(scores_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for s, img, method, mi, vif in rows:
            w.writerow([s, img, method, 7.0, 40.0, 10.0, mi, 1.5, vif, 0.5, 0.7])
    return bench_path, scores_path


def _table(text: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def test_tool_joins_speed_and_mean_scores(tmp_path, capsys):
    bench, scores = _inputs(tmp_path)
    out = tmp_path / "sq.png"
    rc = speed_quality.main(["--bench", str(bench), "--scores", str(scores), "--set", "A",
                             "--map", "dwsfusion@release=dwsfusion", "--reference", "dwsfusion@release",
                             "-o", str(out)])
    assert rc == 0 and out.stat().st_size > 10_000
    captured = capsys.readouterr()
    assert "| method | CPU ms | MI | VIF |" in captured.out
    table = _table(captured.out)
    assert list(table) == ["max", "aenetv2", "dwsfusion@release"]  # sorted by ms
    assert table["max"] == ["1.0", "3.000", "0.600"]
    assert table["aenetv2"] == ["20.0", "4.000", "0.700"]
    assert table["dwsfusion@release"] == ["100.0", "5.000", "0.800"]
    assert "mystery" in captured.err and "mystery" not in captured.out


def test_tool_kinds_and_all_sets(tmp_path):
    bench, scores = _inputs(tmp_path)
    means = speed_quality.mean_scores(scores, None)
    assert means["max"]["MI"] == pytest.approx(5.0) and means["max"]["VIF"] == pytest.approx(0.7)
    points = speed_quality.build_points(json.loads(bench.read_text()), means,
                                        {"dwsfusion@release": "dwsfusion"}, {"dwsfusion@release"})
    kinds = {p["label"]: p["kind"] for p in points}
    assert kinds == {"max": "classical", "aenetv2": "network", "dwsfusion@release": "reference"}
    # without the map the release checkpoint has no speed and is skipped
    points = speed_quality.build_points(json.loads(bench.read_text()), means, {}, set())
    assert "dwsfusion@release" not in {p["label"] for p in points}


def test_tool_fails_cleanly_on_an_unknown_set(tmp_path, capsys):
    bench, scores = _inputs(tmp_path)
    rc = speed_quality.main(["--bench", str(bench), "--scores", str(scores), "--set", "Z", "-o", str(tmp_path / "x.png")])
    assert rc == 1 and "no rows" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
