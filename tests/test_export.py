"""ONNX export: onnxruntime reproduces PyTorch, dynamic axes hold at odd sizes, bad requests fail cleanly."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

import litefuse  # noqa: E402
from litefuse.errors import ModelError, OutputError  # noqa: E402
from litefuse.export import export_onnx  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(path, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"ir": ir[None, None], "vi": vi[None, None]})[0][0, 0]


def test_dynamic_export_matches_pytorch_at_any_size_and_batch(tmp_path):
    report = export_onnx("aenetv2", tmp_path / "a.onnx", size=None, batch=None)
    assert report.max_abs_error is not None and report.max_abs_error < 1e-4
    assert (75, 101) in report.checked  # odd sizes exercise the pad in front of the stride-2 pool
    assert report.checked_batches == [1, 3] and "batch dynamic" in report.summary()
    assert "at 96×64, 101×75 (batch 1 and 3) and a white 640×480 frame;" in report.summary()  # every size it was checked at
    onnx.checker.check_model(str(report.path))
    # no in-place update of the cropped up-sampled map: scattered back whole, 3x the graph's time
    assert not {n.op_type for n in onnx.load(str(report.path)).graph.node} & {"ScatterND", "Transpose"}
    # an independent size and batch, real-looking content, through the public Fuser
    rng = np.random.default_rng(0)
    ir, vi = rng.random((2, 4, 57, 83), dtype=np.float32)
    fuser = litefuse.Fuser("aenetv2")
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"ir": ir[:, None], "vi": vi[:, None]})[0]
    assert got.shape == (4, 1, 57, 83)
    for i in range(4):  # each pair of the batch fused as if alone
        np.testing.assert_allclose(got[i, 0], fuser.fuse_luma(ir[i], vi[i]), atol=1e-4)


def test_densefuse_family_exports_a_dynamic_batch(tmp_path):
    report = export_onnx("lwc-densefuse", tmp_path / "l.onnx", size=(48, 64), batch=None)
    assert report.max_abs_error < 1e-4 and report.checked_batches == [1, 3]
    fixed = export_onnx("densefuse", tmp_path / "d.onnx", size=(48, 64), batch=2, check=True)
    assert fixed.checked_batches == [2] and "batch 2" in fixed.summary()
    with pytest.raises(Exception):  # a fixed batch is a fixed batch
        _run(fixed.path, *np.zeros((2, 48, 64), np.float32))
    for bad in (0, 1.5, True):
        with pytest.raises(litefuse.errors.OptionError, match="batch"):
            export_onnx("densefuse", tmp_path / "x.onnx", batch=bad)


def test_fixed_size_export_of_the_densefuse_family(tmp_path):
    report = export_onnx("lwc-densefuse", tmp_path / "l.onnx", size=(48, 64))
    assert report.size == (48, 64) and report.max_abs_error < 1e-4
    assert report.path.stat().st_mode & 0o044  # readable by others, like any written file
    with pytest.raises(Exception):  # the graph is fixed-size: another size is refused by onnxruntime
        _run(report.path, *np.zeros((2, 40, 64), np.float32))


def test_bad_exports_fail_with_one_line_and_write_nothing(tmp_path):
    with pytest.raises(ModelError, match="DFT ops"):
        export_onnx("dwsfusion", tmp_path / "d.onnx")
    with pytest.raises(ModelError, match="classical"):
        export_onnx("max", tmp_path / "m.onnx")
    with pytest.raises(OutputError, match=r"\.onnx"):
        export_onnx("aenetv2", tmp_path / "a.png")
    existing = tmp_path / "keep.onnx"
    existing.write_bytes(b"not yours")
    with pytest.raises(OutputError, match="exists"):
        export_onnx("aenetv2", existing)
    assert existing.read_bytes() == b"not yours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.onnx"]  # no temporary left


def test_a_failed_export_leaves_no_folder_behind(tmp_path, monkeypatch):
    import litefuse.export as export

    monkeypatch.setattr(export, "check_onnx", lambda *args, **kwargs: (1.0, 0.0))  # a graph that differs
    (tmp_path / "kept").mkdir()
    for out in (tmp_path / "new" / "sub" / "a.onnx", tmp_path / "kept" / "a.onnx"):
        with pytest.raises(ModelError, match="differs from PyTorch"):
            export_onnx("aenetv2", out, size=(16, 16))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]  # the folders made for it removed, no file


def test_export_command(tmp_path):
    from typer.testing import CliRunner

    from litefuse.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["export", "densefuse", "-o", str(tmp_path / "d.onnx"), "--size", "64x48"])
    assert ok.exit_code == 0, ok.output
    assert "64×48" in ok.output and "48×64" not in ok.output and "max |Δ|" in ok.output and (tmp_path / "d.onnx").is_file()
    bad = runner.invoke(app, ["export", "densefuse", "-o", str(tmp_path / "e.onnx"), "--size", "64by48"])
    assert bad.exit_code == 2 and "expected WxH" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["export", "densefuse", "-o", str(tmp_path / "e.onnx"), "--batch-size", "none"])
    assert bad.exit_code == 2 and "'dynamic'" in bad.output and "Traceback" not in bad.output
    batched = runner.invoke(app, ["export", "aenetv2", "-o", str(tmp_path / "b.onnx"), "--size", "64x48", "--batch-size", "dynamic"])
    assert batched.exit_code == 0 and "batch dynamic" in batched.output and "(batch 1 and 3)" in batched.output, batched.output
    assert not (tmp_path / "e.onnx").exists()


def test_export_command_takes_the_network_as_fuse_does(tmp_path):
    """``-m NAME`` (as ``fuse`` and ``bench`` take it) or a run's weights file that names it."""
    from safetensors.torch import save_file
    from typer.testing import CliRunner

    from litefuse.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["export", "-m", "aenetv2", "-o", str(tmp_path / "a.onnx"), "--size", "64x48"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("aenetv2 ->") and (tmp_path / "a.onnx").is_file()
    run_weights = tmp_path / "model.safetensors"  # a training run's file: tensors + the model's name
    state = litefuse.load_model("aenetv2").state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(run_weights), metadata={"model": "aenetv2"})
    named = runner.invoke(app, ["export", "--weights", str(run_weights), "-o", str(tmp_path / "w.onnx"), "--size", "64x48", "--no-check"])
    assert named.exit_code == 0 and named.output.startswith("aenetv2 ->"), named.output
    for args, message in [
        ([], "name the network to export"),
        (["aenetv2", "-m", "densefuse"], "two models named"),
        (["--weights", str(tmp_path / "missing.safetensors")], "missing.safetensors: weights file not found"),
    ]:
        bad = runner.invoke(app, ["export", *args, "-o", str(tmp_path / "x.onnx")])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
    assert not (tmp_path / "x.onnx").exists()


def test_graphs_hold_no_whole_map_scatters_transposes_or_where(tmp_path):
    """What made onnxruntime 3-14x slower than PyTorch: the eager border fix-ups exported as
    ScatterND between layout Transposes, and lerp's Where-based decomposition."""
    for name in ("lwc-densefuse", "aenetv2-ivif"):
        report = export_onnx(name, tmp_path / f"{name}.onnx", size=(48, 64))
        nodes = onnx.load(str(report.path)).graph.node
        ops = {node.op_type for node in nodes}
        assert not ops & {"ScatterND", "Transpose", "Where"}, (name, ops)
        assert report.max_abs_error < 1e-4
    # AE-Netv2 runs its full-resolution layers per source: no stacked copy of the inputs
    assert not any(node.op_type == "Concat" and {"ir", "vi"} & set(node.input) for node in nodes)
    assert sum(node.op_type in ("Concat", "Split") for node in nodes) <= 4  # quarter-size maps only


def test_densefuse_family_graphs_carry_padded_pieces_not_concatenations(tmp_path):
    """Each dense-block piece is padded once and read by later layers as it is; the fusion rule
    and C2 work piece by piece: after onnxruntime's optimisation no feature-map Concat or Split
    is left (the old graphs held 4-22, plus a Pad of every layer's whole input)."""
    from litefuse.export import ort_session

    for name in ("densefuse", "lwc-densefuse"):
        report = export_onnx(name, tmp_path / f"{name}.onnx", size=(48, 64))
        assert report.max_abs_error < 1e-4
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"{name}-opt.onnx")
        ort_session(report.path, threads=1, options=options)
        nodes = onnx.load(options.optimized_model_filepath).graph.node
        ops = [node.op_type for node in nodes]
        assert "Concat" not in ops and "Split" not in ops, (name, sorted(set(ops)))
        # pads: the stem input and the 4 pieces per source, the fusion weight, C3-C5's inputs
        assert ops.count("Pad") == 2 + 2 * 4 + 1 + 3, (name, ops.count("Pad"))


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("rule", ["addition", "mean"])
def test_exported_fusion_rules_match_pytorch(tmp_path, rule):
    import torch

    from litefuse.registry import load_model

    net = load_model("densefuse").eval()
    net.fusion_rule = rule
    ir, vi = np.random.default_rng(1).random((2, 1, 1, 24, 40), dtype=np.float32)
    path = tmp_path / "d.onnx"
    with torch.no_grad():
        torch.onnx.export(net, (torch.from_numpy(ir), torch.from_numpy(vi)), str(path), input_names=["ir", "vi"],
                          output_names=["fused"], dynamo=True, external_data=False, verbose=False)
        expected = net(torch.from_numpy(ir), torch.from_numpy(vi)).numpy()
    np.testing.assert_allclose(_run(path, ir[0, 0], vi[0, 0]), expected[0, 0], atol=1e-5)


def test_session_options(tmp_path):
    import torch

    from litefuse.export import ort_session

    path = export_onnx("densefuse", tmp_path / "d.onnx", size=(16, 16), check=False).path
    options = ort_session(path, threads=1).get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert ort_session(path).get_session_options().intra_op_num_threads == torch.get_num_threads()


def test_nchwc_layout_where_convs_fill_a_block(tmp_path):
    """ORT's blocked layout (16 channels on AVX-512F, 8 elsewhere) only where the widest conv fills a block."""
    from litefuse.export import nchwc_block, ort_session, widest_conv

    assert nchwc_block("fpu sse2 avx2 avx512f avx512bw") == 16
    assert nchwc_block("fpu sse2 avx2 fma") == 8
    thin = export_onnx("aenetv2", tmp_path / "a.onnx", size=(16, 16), check=False).path
    wide = export_onnx("densefuse", tmp_path / "d.onnx", size=(16, 16), check=False).path
    assert (widest_conv(thin), widest_conv(wide)) == (8, 64)
    assert widest_conv(tmp_path / "missing.onnx") is None

    def blocked_ops(path, nchwc):
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"opt-{path.stem}-{nchwc}.onnx")
        ort_session(path, threads=1, nchwc=nchwc, options=options)
        graph = onnx.load(options.optimized_model_filepath).graph
        return sum(node.domain == "com.microsoft.nchwc" for node in graph.node)

    assert blocked_ops(wide, None) > 0  # 64 channels fill a block of 8 or 16
    assert blocked_ops(thin, False) == 0
    assert blocked_ops(thin, True) > 0
    assert (blocked_ops(thin, None) > 0) == (nchwc_block() == 8)  # 8 channels fill only an AVX2 block


def test_opset_is_the_one_asked_for_or_refused(tmp_path, capsys):
    from litefuse.errors import OptionError

    report = export_onnx("aenetv2", tmp_path / "a20.onnx", size=(16, 16), opset=20, check=False)
    assert report.opset == 20
    assert [o.version for o in onnx.load(str(report.path)).opset_import if o.domain in ("", "ai.onnx")] == [20]
    with pytest.raises(OptionError, match="opset 18 or newer"):
        export_onnx("aenetv2", tmp_path / "a13.onnx", size=(16, 16), opset=13)  # was written as 18, labelled 13
    assert not (tmp_path / "a13.onnx").exists()


def test_graphs_declare_the_oldest_ir_version_their_opset_allows(tmp_path):
    """torch writes IR 10, which onnxruntime 1.17 and older refuse ("max supported IR version: 9");
    opset 18 needs only IR 8."""
    report = export_onnx("aenetv2", tmp_path / "a.onnx", size=(16, 16), batch=None)
    model = onnx.load(str(report.path))
    assert model.ir_version == 8
    onnx.checker.check_model(model, full_check=True)
    assert report.max_abs_error < 1e-4
    newer = onnx.load(str(export_onnx("aenetv2", tmp_path / "a21.onnx", size=(16, 16), opset=21, check=False).path))
    assert newer.ir_version == 10  # what opset 21 needs


def test_graphs_carry_their_contract(tmp_path):
    """A deployer reads from the file what to feed and what comes back (it said nothing: no doc
    string, no metadata), and two exports of one network are the same bytes."""
    from litefuse.export import CONTRACT

    paths = [export_onnx("densefuse", tmp_path / f"d{i}.onnx", size=(16, 16), check=False).path for i in (1, 2)]
    model = onnx.load(str(paths[0]))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["litefuse.model"] == "densefuse" and props["litefuse.weights"] == "shipped"
    assert props["litefuse.version"] == litefuse.__version__
    assert {props[f"litefuse.{key}"] for key in CONTRACT} == set(CONTRACT.values())
    assert "BT.601" in props["litefuse.inputs"] and "[0, 1]" in props["litefuse.output"] and "Cb" in props["litefuse.colour"]
    assert "luminance" in model.doc_string and all(v.doc_string for v in (*model.graph.input, *model.graph.output))
    meta = ort.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert meta.custom_metadata_map["litefuse.model"] == "densefuse" and "BT.601" in meta.description
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_only_a_graph_that_fuses_ab_pairs_describes_them(tmp_path):
    """aenetv2 also fuses A/B pairs (exposures, focal planes, scans): its contract says how they
    are fed; an infrared-visible network's graph says nothing about A/B."""
    from litefuse.export import AB_CONTRACT, CONTRACT

    def props(name: str) -> dict:
        graph = onnx.load(str(export_onnx(name, tmp_path / f"{name}.onnx", size=(16, 16), check=False).path))
        return {p.key: p.value for p in graph.metadata_props} | {"doc": graph.doc_string}

    ivif, ab = props("aenetv2-ivif"), props("aenetv2")
    assert "A/B" not in ivif["doc"] and not any("A/B" in v for v in ivif.values())
    assert ivif["litefuse.inputs"] == CONTRACT["inputs"]
    assert ab["litefuse.inputs"] == f"{CONTRACT['inputs']}; {AB_CONTRACT['inputs']}" and "A as ir" in ab["doc"]
    assert ab["litefuse.colour"].endswith(AB_CONTRACT["colour"]) and "fuse_chroma" in ab["doc"]


def test_a_graph_whose_output_is_not_finite_fails_the_check(tmp_path):
    """max(0.0, nan) is 0.0 in Python: a NaN output passed the check as 'max |Δ| 0'."""
    import torch

    from litefuse.export import check_onnx

    export_onnx("aenetv2", tmp_path / "a.onnx", size=(48, 64))
    net = litefuse.load_model("aenetv2")

    class Broken(torch.nn.Module):
        def forward(self, ir, vi):
            return net(ir, vi) * float("nan")

    worst, _ = check_onnx(tmp_path / "a.onnx", Broken(), [(48, 64)])
    assert np.isnan(worst)


def test_lwc_graph_matches_pytorch_on_a_white_frame(tmp_path):
    """The channel gates' global means: onnxruntime summed a whole map in one float32 run, 2.8e-5
    off PyTorch on a white 640×480 frame (2.8e-4 at 1280×1024); row means first (the check
    now feeds a white frame too)."""
    import torch

    report = export_onnx("lwc-densefuse", tmp_path / "l.onnx", size=(480, 640))
    white = np.ones((480, 640), np.float32)
    with torch.no_grad():
        ref = litefuse.load_model("lwc-densefuse")(*(torch.from_numpy(white)[None, None],) * 2)[0, 0].numpy()
    assert np.abs(_run(report.path, white, white) - ref).max() < 2e-6 and report.max_abs_error < 2e-6


def test_a_dynamic_graph_is_checked_on_a_large_white_frame(tmp_path, monkeypatch):
    # the gate-mean drift grows with the frame: a white 96×64 frame could not show it
    import litefuse.export as export

    sizes = []
    real = export.check_onnx

    def spy(path, net, checked, batches, white=None):
        sizes.append(white)
        return real(path, net, checked, batches, white=white)

    monkeypatch.setattr(export, "check_onnx", spy)
    export_onnx("lwc-densefuse", tmp_path / "l.onnx", size=None)
    export_onnx("aenetv2", tmp_path / "a.onnx", size=(48, 64))
    assert sizes == [(480, 640), (48, 64)]


def test_dynamic_graphs_name_the_output_axes_as_the_inputs(tmp_path):
    # AE-Netv2's even-size pad and crop named the output height Min(height, 2*((height + Mod(height, 2))//2))
    report = export_onnx("aenetv2", tmp_path / "a.onnx", size=None, batch=None)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape == session.get_inputs()[0].shape == ["batch", 1, "height", "width"]
    onnx.checker.check_model(onnx.load(str(report.path)), full_check=True)


def test_export_bounds_and_memory_are_one_line(tmp_path, monkeypatch):
    import litefuse.export as export
    from litefuse.errors import OptionError

    with pytest.raises(OptionError, match="8 to 16384 pixels a side, got 20000×20000"):
        export_onnx("aenetv2", tmp_path / "a.onnx", size=(20000, 20000))
    with pytest.raises(OptionError, match="at most 4096 pairs"):
        export_onnx("aenetv2", tmp_path / "a.onnx", size=(16, 16), batch=10**20)
    with pytest.raises(OptionError, match=r"--opset 18.0: .* \(a whole number\)"):
        export_onnx("aenetv2", tmp_path / "a.onnx", size=(16, 16), opset=18.0)

    def no_memory(*args, **kwargs):  # onnxruntime's arena failing, as on a 10 GB machine at 1920x1080 batch 16
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : BFCArena::AllocateRawInternal Failed to allocate memory")

    monkeypatch.setattr(export, "check_onnx", no_memory)
    with pytest.raises(ModelError, match=r"aenetv2: not enough memory checking the graph \(at 16×16, batch 1\); "
                                         r"export a smaller --size or --batch-size, or --no-check writes the graph unchecked"):
        export_onnx("aenetv2", tmp_path / "a.onnx", size=(16, 16))
    with pytest.raises(ModelError, match=r"checking the graph \(at 96×64, 101×75, 640×480, batch 1 and 3\); --no-check writes"):
        export_onnx("aenetv2", tmp_path / "a.onnx", size=None, batch=None)  # sizes litefuse chose: no --size advice
    monkeypatch.setattr(export, "_example", lambda *a: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(ModelError, match="not enough memory exporting at 16×16, batch 2"):
        export_onnx("aenetv2", tmp_path / "a.onnx", size=(16, 16), batch=2)
    assert list(tmp_path.iterdir()) == []


def test_the_contract_says_how_these_weights_take_the_infrared(tmp_path, monkeypatch):
    import litefuse.registry as registry

    shipped = export_onnx("aenetv2", tmp_path / "a.onnx", size=(16, 16), check=False).path
    props = {p.key: p.value for p in onnx.load(str(shipped)).metadata_props}
    assert "both of one size, each side at least 8 pixels" in props["litefuse.inputs"] and "three equal ones" in props["litefuse.colour"]
    assert props["litefuse.ir_norm"].startswith("range: ") and "65535" in props["litefuse.ir_norm"]
    assert "infrared-visible or A/B" in onnx.load(str(shipped)).doc_string  # the general network is not only infrared-visible
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")  # read through the (patched) metadata, never loaded here
    monkeypatch.setattr(registry, "weights_metadata", lambda path: {"ir_norm": "4095"})
    import litefuse.export as export

    graph = onnx.load_from_string(onnx.load(str(shipped)).SerializeToString())
    export._describe(graph, "aenetv2", weights)
    props = {p.key: p.value for p in graph.metadata_props}
    assert "these weights take the infrared divided by 4095, the sensor's peak" in props["litefuse.inputs"]
    assert "divided by 4095" in graph.doc_string and props["litefuse.ir_norm"].startswith("4095: ")
