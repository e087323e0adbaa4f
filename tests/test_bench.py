"""litefuse.bench / `litefuse bench`: what is timed, the counts it reports and its errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from litefuse.bench import benchmark, interleaved_times
from litefuse.cli import app
from litefuse.errors import LitefuseError
from litefuse.models.complexity import count_macs
from litefuse.registry import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_report_counts_what_the_models_are_and_adds_max():
    report = benchmark(["aenetv2", "gff"], size=(24, 32), batch_size=2, rounds=3, warmup=1)
    assert [r.name for r in report.rows] == ["aenetv2", "gff", "max"]  # the reference joins the run
    net = report.row("aenetv2")
    assert net.params == 2843 and net.kind == "network" and report.row("gff").kind == "classical"
    pair = torch.rand(1, 1, 24, 32)
    assert net.macs == count_macs(load_model("aenetv2"), (pair, pair), method="auto")  # one fusion, not the batch
    assert len(net.times) == 3 and all(t > 0 for t in net.times)
    assert net.pairs_per_s == pytest.approx(2e3 / net.median_ms)
    assert report.speedup("aenetv2") is None  # densefuse not in the run
    text = report.markdown()
    assert "| aenetv2 | 2,843 |" in text and "time ÷ max" in text and "batch 2" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["methods"]["aenetv2"]["params"] == 2843 and data["size"] == "32x24"


def test_interleaved_rounds_call_every_method_once_per_round():
    order: list[str] = []
    times = interleaved_times({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=2, warmup=1)
    assert order == ["a", "b"] * 3 and [len(v) for v in times.values()] == [2, 2]


@pytest.mark.parametrize("kwargs, match", [
    ({"methods": ["nope"]}, "unknown model"),
    ({"size": (4, 64)}, "8 to 16384 pixels a side"),
    ({"size": (100000, 100000)}, "8 to 16384 pixels a side"),  # was an internal error from the allocator (40 GB)
    ({"precision": "int4"}, "precision"),
    ({"batch_size": 0}, "at least 1"),
    ({"batch_size": "2"}, "whole numbers"),
    ({"rounds": 1.5}, "whole numbers"),
])
def test_bad_settings_are_one_clear_error(kwargs, match):
    with pytest.raises(LitefuseError, match=match):
        benchmark(**{"methods": ["max"], "size": (16, 16), "rounds": 1, "warmup": 0, **kwargs})


def test_a_size_this_machine_cannot_hold_is_an_option_error(monkeypatch):
    """Within the side limit but beyond memory: torch's allocator raises a RuntimeError, said as one
    option error (it was an internal error, exit 3)."""
    import litefuse.bench as bench_module

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried")

    monkeypatch.setattr(bench_module, "interleaved_times", no_memory)
    with pytest.raises(LitefuseError, match=r"16×16, batch 1: more memory than this machine has .*smaller --size"):
        benchmark(methods=["max"], size=(16, 16), rounds=1, warmup=0)


def test_cli_prints_the_table_and_writes_json_atomically(tmp_path):
    runner = CliRunner()
    out = tmp_path / "b.json"
    args = ["bench", "-m", "aenetv2", "--size", "40x32", "--rounds", "2", "--warmup", "0", "--threads", "1"]
    done = runner.invoke(app, [*args, "--json", str(out)])
    assert done.exit_code == 0, done.output
    assert "| aenetv2 |" in done.output and "| max |" in done.output
    assert json.loads(out.read_text())["settings"]["threads"] == 1
    again = runner.invoke(app, [*args, "--json", str(out)])
    assert again.exit_code == 2 and "exists" in again.output  # not overwritten without --overwrite
    pytest.importorskip("matplotlib")
    png = tmp_path / "speed.png"
    drawn = runner.invoke(app, [*args, "--chart", str(png)])
    assert drawn.exit_code == 0 and png.stat().st_size > 1000, drawn.output
    bad = runner.invoke(app, ["bench", "--size", "640by480"])
    assert bad.exit_code == 2 and "WxH" in bad.output
    twice = runner.invoke(app, [*args, "-m", "aenetv2"])  # timed once, and said (was silent)
    assert twice.exit_code == 0 and "note: aenetv2 given more than once; timed once" in twice.output
    assert twice.output.count("| aenetv2 |") == 1


def _variant_run(tmp_path, groups: int):
    """A run folder holding an lwc-densefuse variant as litefuse train leaves it: model.safetensors
    with its model_kwargs in the metadata, and last.pt with them in the recorded config."""
    from safetensors.torch import save_file

    from litefuse.train.state import CHECKPOINT_FORMAT

    run = tmp_path / f"g{groups}"
    run.mkdir()
    model = load_model("lwc-densefuse", pretrained=False, groups=groups)
    meta = {"model": "lwc-densefuse", "model_kwargs": json.dumps({"groups": groups})}
    save_file(model.state_dict(), str(run / "model.safetensors"), metadata=meta)
    config = {"model": "lwc-densefuse", "model_kwargs": {"groups": groups}}
    torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "config": config}, run / "last.pt")
    return run, model


def test_runs_weights_are_timed_as_their_own_variant(tmp_path):
    run, variant = _variant_run(tmp_path, groups=8)
    shipped = load_model("lwc-densefuse")
    assert sum(p.numel() for p in variant.parameters()) != sum(p.numel() for p in shipped.parameters())
    specs = ["lwc-densefuse", f"lwc-densefuse@{run / 'model.safetensors'}", f"ckpt=lwc-densefuse@{run / 'last.pt'}"]
    report = benchmark(specs, size=(16, 24), rounds=1, warmup=0)
    assert [r.name for r in report.rows] == ["lwc-densefuse", "lwc-densefuse@g8", "ckpt", "max"]
    pair = torch.rand(1, 1, 16, 24)
    for name in ("lwc-densefuse@g8", "ckpt"):
        assert report.row(name).params == sum(p.numel() for p in variant.parameters())
        assert report.row(name).macs == count_macs(variant, (pair, pair), method="auto")
    assert report.row("lwc-densefuse").params == sum(p.numel() for p in shipped.parameters())
    with pytest.raises(LitefuseError, match="given twice"):
        benchmark(["max", "lwc-densefuse", f"lwc-densefuse=lwc-densefuse@{run / 'last.pt'}"], size=(16, 16), rounds=1)
    done = CliRunner().invoke(app, ["bench", "-m", f"mine=lwc-densefuse@{run / 'last.pt'}", "--size", "24x16",
                                    "--rounds", "1", "--warmup", "0", "--threads", "1"])
    assert done.exit_code == 0 and "| mine |" in done.output, done.output


def test_a_runs_checkpoint_names_its_model_and_arguments(tmp_path):
    """`--weights runs/x/last.pt` loads by itself, as the run's model.safetensors does."""
    import litefuse
    from litefuse.registry import weights_metadata, weights_model

    run, variant = _variant_run(tmp_path, groups=8)
    assert weights_model(run / "last.pt") == "lwc-densefuse"
    assert json.loads(weights_metadata(run / "last.pt")["model_kwargs"]) == {"groups": 8}
    fuser = litefuse.Fuser(weights=run / "last.pt")
    assert fuser.name == "lwc-densefuse"
    for a, b in zip(fuser.model.state_dict().values(), variant.state_dict().values()):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------
# the scripts under benchmarks/


def _script(name: str):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(f"{name}_under_test", Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_metrics_loops_agree_with_litefuse_within_its_tolerance():
    """The float64 SSIM loop against litefuse's float32 CDDFuse SSIM (it asserted 1e-9, so the script always died)."""
    import numpy as np

    from litefuse.metrics import gradient, structural

    bm = _script("bench_metrics")
    (a, b, f), _ = bm.load_triple()
    h, w = f.shape
    ca, cb, cf = (x[h // 2 - 8: h // 2 + 8, w // 2 - 8: w // 2 + 8] for x in (a, b, f))
    s_loop = bm.loop_ssim_cddfuse(cf, ca) + bm.loop_ssim_cddfuse(cf, cb)
    s_lib = structural.ssim_fused(*(x.astype(float) for x in (ca, cb, cf)))
    assert abs(s_loop - s_lib) < bm.SSIM_RTOL * abs(s_loop)
    assert abs(bm.loop_qabf(ca, cb, cf) - gradient.qabf(*(x.astype(float) for x in (ca, cb, cf)))) < bm.QABF_TOL
    assert np.isfinite(s_loop)


@pytest.mark.parametrize("argv, match", [
    (["--size", "640"], "argument --size: invalid WxH value: '640'"),
    (["--size", "24x16", "--device", "cuda"] if not torch.cuda.is_available() else ["--size", "4x4"], "error: "),
])
def test_run_py_bad_settings_are_one_line(argv, match, capsys):
    run = _script("run")
    try:
        code = run.main([*argv, "--rounds", "1", "--warmup", "0", "--threads", "1"])
    except SystemExit as exc:  # argparse's usage error
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err, err


def test_every_benchmark_reads_size_through_one_parser(capsys):
    """A bad --size was a ValueError traceback in seven scripts (each split 'WxH' itself)."""
    from litefuse._checks import WxH, parse_wxh

    assert parse_wxh("640x480") == parse_wxh("640×480") == (640, 480) and WxH("32x24") == "32x24"
    for bad in ("640", "640x", "x480", "640by480", "-1x5"):
        with pytest.raises(ValueError):
            parse_wxh(bad)
    # a side under 8 is a usage error too (bench_inference.py and bench_onnx.py died in export_onnx's OptionError)
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--size", type=WxH)
    with pytest.raises(SystemExit) as usage:
        parser.parse_args(["--size", "4x4"])
    assert usage.value.code == 2 and "argument --size: '4x4': each side must be at least 8" in capsys.readouterr().err
    scripts = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))
    sized = [p for p in scripts if 'add_argument("--size"' in p.read_text()]
    assert len(sized) >= 8 and all('add_argument("--size", type=WxH' in p.read_text() for p in sized), sized


def test_run_py_writes_out_and_json_atomically_into_a_new_folder(tmp_path, capsys):
    """--out was a plain write_text: into a folder not made yet it died after the whole run, and a kill could leave half a file."""
    run = _script("run")
    out, js = tmp_path / "new" / "bench.md", tmp_path / "other" / "bench.json"
    assert run.main(["--size", "24x16", "--rounds", "1", "--warmup", "0", "--threads", "1", "--out", str(out), "--json", str(js)]) == 0
    text = out.read_text()
    assert text.startswith("# Benchmarks\n") and "- machine: " in text and "| densefuse |" in text
    assert "with `python benchmarks/run.py --size 24x16 --rounds 1 --device cpu --threads 1 --warmup 0`" in text  # the command that reruns it
    data = json.loads(js.read_text())["methods"]
    assert data["max"]["params"] == 0 and data["max"]["macs"] is None and data["densefuse"]["macs"] > 0  # classical: not counted
    assert sorted(p.name for p in out.parent.iterdir()) == ["bench.md"]  # no temporary file left


def test_bench_dwsfusion_names_its_machine():
    """docs/benchmarks.md quotes its tables 'on the same machine': the output said only the CPU count."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_dwsfusion.py"), "--size", "16x16", "--runs", "1",
                           "--warmup", "0", "--threads", "1", "--models", "dwsfusion"], capture_output=True, text=True, timeout=240,
                          env={**__import__("os").environ, "PYTHONPATH": str(root / "src")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("- machine: ") and "| dwsfusion |" in done.stdout


def test_max_under_a_label_still_leaves_the_reference_row():
    """`-m x=max` timed max only as x: no row was named max, so the time ÷ max column was all '–'."""
    report = benchmark(["x=max"], size=(16, 16), rounds=1, warmup=0)
    assert [r.name for r in report.rows] == ["x", "max"]
    assert "| x | - | - |" in report.markdown() and "–" not in report.markdown().split("|---|")[1]
    for spec in ("max=gff", "densefuse=lwc-densefuse"):  # a label that names another method would pose as it
        with pytest.raises(LitefuseError, match="names another method"):
            benchmark([spec], size=(16, 16), rounds=1, warmup=0)


def test_chart_puts_30_fps_where_a_call_of_the_batch_keeps_up(tmp_path, monkeypatch):
    """The bars are ms per call; at batch 4 a call fuses 4 pairs, so 30 pairs/s is 4 × 33 ms, not 33 ms."""
    import litefuse.viz

    seen = {}
    monkeypatch.setattr(litefuse.viz, "speed_chart", lambda points, path, **kw: seen.update(kw) or Path(path))
    report = benchmark(["max"], size=(16, 16), batch_size=4, rounds=1, warmup=0)
    report.chart(tmp_path / "s.png")
    assert seen["real_time_ms"] == pytest.approx(4 * 1000 / 30) and "batch 4" in seen["title"]


def test_json_names_torch_and_every_machine_line_as_the_table_does():
    """The table's notes name the torch version; the JSON left it out (and kept the GPU line's '- ')."""
    report = benchmark(["max"], size=(16, 16), rounds=1, warmup=0)
    report.machine += "\n- GPU: Some Card"
    data = report.to_dict()
    assert data["torch"] == torch.__version__ and f"torch {torch.__version__}" in report.markdown()
    assert data["machine"].endswith("\nGPU: Some Card") and not data["machine"].startswith("- ")


def test_table_says_classical_fusers_ran_in_fp32():
    """--precision bf16 timed max and gff in float32 (as the docstring says) under a 'bf16' line, unsaid."""
    report = benchmark(["aenetv2", "gff"], size=(16, 16), precision="bf16", rounds=1, warmup=0)
    assert "bf16, batch 1, 16×16 (classical fusers: fp32)" in report.markdown()
    plain = benchmark(["gff"], size=(16, 16), rounds=1, warmup=0)
    assert "classical fusers" not in plain.markdown()


def test_bench_tile_times_and_counts_the_frame_as_fuse_tile_runs_it():
    """bench --tile N as fuse --tile N: a 64×64 frame in 16-pixel tiles (with their context)
    costs more MACs than the one pass of the default tile, and the table says the tile."""
    from litefuse.api import Fuser
    from litefuse.tiling import tile_context, tiled_macs

    one = benchmark(["aenetv2"], size=(64, 64), rounds=1, warmup=0, threads=1)
    tiled = benchmark(["aenetv2"], size=(64, 64), rounds=1, warmup=0, threads=1, tile=16)
    fuser = Fuser("aenetv2", tile=16, threads=1)
    macs = {r.name: r.macs for r in tiled.rows}
    assert macs["aenetv2"] == tiled_macs(fuser.model.float(), 64, 64, 16, *tile_context(fuser.model, fuser.overlap))
    assert macs["aenetv2"] > next(r.macs for r in one.rows if r.name == "aenetv2")
    assert ", tile 16," in tiled.markdown() and ", tile " not in one.markdown()
    assert tiled.to_dict()["settings"]["tile"] == 16
    result = CliRunner().invoke(app, ["bench", "-m", "max", "--size", "16x16", "--rounds", "1", "--tile", "8"])
    assert result.exit_code == 2 and "--tile" in result.output
