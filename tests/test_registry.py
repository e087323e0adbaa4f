"""The contract every registered method keeps, checked over :func:`litefuse.list_models`.

``forward(ir, vi)`` on ``(B, 1, H, W)`` float32 in ``[0, 1]`` returns the same shape and dtype in
``[0, 1]``, at odd sizes too; gradients reach a trainable network's parameters; a state dict
written as safetensors and loaded back gives the same outputs; and the registry's facts about
each method are complete (an objective and a packaged config that load, a default rank).
A new method gets all of this by registering.
"""

from __future__ import annotations

import pytest
import torch

import litefuse
from litefuse.tasks import TASKS, default_model, default_rank
from litefuse.registry import get_model_info, list_models, load_model
from litefuse.train import Objective, TrainConfig, default_config_path, get_objective

pytestmark = pytest.mark.usefixtures("one_thread")

ALL = [m.name for m in list_models()]
NETWORKS = [m.name for m in list_models("network")]
SIZES = [(37, 53), (16, 21)]  # odd and small: no method may assume a multiple of its stride


def _inputs(h: int, w: int, seed: int = 0, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, h, w, generator=g), torch.rand(batch, 1, h, w, generator=g)


def _model(name: str) -> torch.nn.Module:
    """The shipped method, or a random start for a network that ships no weights yet."""
    return load_model(name, pretrained=get_model_info(name).has_weights)


@pytest.fixture(scope="module", params=ALL)
def method(request) -> tuple[str, torch.nn.Module]:
    return request.param, _model(request.param)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_output_shape_range_dtype(method, size):
    name, model = method
    ir, vi = _inputs(*size, batch=2)
    with torch.no_grad():
        out = model(ir, vi)
    assert out.shape == ir.shape, name
    assert out.dtype == torch.float32, name
    assert torch.isfinite(out).all(), name
    assert out.min() >= 0.0 and out.max() <= 1.0, (name, out.min().item(), out.max().item())


@pytest.mark.parametrize("name", NETWORKS)
def test_gradients_reach_every_parameter(name):
    """Through the path the network is trained on: ``reconstruct`` for an auto-encoder (its fusion
    rule is a test-time step between encoder and decoder), else ``forward``."""
    model = _model(name).train()
    ir, vi = _inputs(37, 53, seed=1, batch=2)
    out = model.reconstruct(ir) if get_objective(name).data == "grey" else model(ir, vi)
    out.mean().backward()
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    assert params, f"{name} has no trainable parameter"
    missing = [k for k, p in params.items() if p.grad is None]
    assert not missing, f"{name}: no gradient reaches {missing[:3]}"
    assert all(torch.isfinite(p.grad).all() for p in params.values()), name
    assert any(p.grad.abs().sum() > 0 for p in params.values()), name


@pytest.mark.parametrize("name", NETWORKS)
def test_state_dict_round_trip_gives_identical_outputs(name, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = load_model(name, pretrained=False)
    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path), metadata={"model": name})
    torch.manual_seed(1)  # another random start: only the file can make the outputs agree
    loaded = load_model(name, weights=path)
    ir, vi = _inputs(37, 53, seed=2)
    with torch.no_grad():
        assert torch.equal(source.eval()(ir, vi), loaded(ir, vi)), name
    info = get_model_info(name)
    if info.checkpoint_filter is not None:  # a native state dict passes the filter unchanged
        state = source.state_dict()
        assert info.checkpoint_filter(source, state).keys() == state.keys()


@pytest.mark.parametrize("name", NETWORKS)
def test_network_facts_are_complete(name):
    info = get_model_info(name)
    assert info.description and info.tasks and set(info.tasks) <= set(TASKS), name
    assert info.default_rank is not None, f"{name}: no default_rank"
    # its objective loads and accepts its packaged config
    objective = get_objective(name)
    assert issubclass(objective, Objective), name
    path = default_config_path(name)
    assert path is not None and path == info.config_path, f"{name}: no packaged config"
    cfg = TrainConfig.load(path)
    assert cfg.model == name, f"{path} is a config for {cfg.model!r}"
    objective_cls = get_objective(cfg.objective_name or name)
    model = load_model(name, pretrained=False, **cfg.model_kwargs)
    objective_cls().build(model, cfg)  # checks [objective] keys, stage rows and freeze prefixes


def test_registry_facts_are_consistent():
    infos = list_models()
    assert len({m.name for m in infos}) == len(infos)
    for task in TASKS:  # per task, no two methods share a place among the defaults
        ranks = [r for m in infos if (r := default_rank(m, task)) is not None]
        assert len(ranks) == len(set(ranks)), f"two methods share a default_rank for {task}"
    for m in list_models("classical"):
        assert m.objective is None and m.config is None and m.checkpoint_filter is None, m.name
    for task in TASKS:  # every task has a default that runs as shipped
        info = get_model_info(default_model(task))
        assert info.has_weights and default_rank(info, task) is not None, task
    assert {m.name for m in litefuse.list_models()} == set(ALL)


def test_weights_holding_nan_are_refused_at_load(tmp_path):
    from safetensors.torch import save_file

    from litefuse.errors import ModelError

    state = load_model("aenetv2").state_dict()
    key = next(k for k in state if k.endswith("bias"))
    state[key] = state[key].clone().fill_(float("nan"))
    save_file(state, str(tmp_path / "nan.safetensors"), metadata={"model": "aenetv2"})
    with pytest.raises(ModelError, match=rf"nan.safetensors: weights hold NaN or infinite values \({key}\)"):
        load_model("aenetv2", weights=tmp_path / "nan.safetensors")


def test_list_models_refuses_an_unknown_kind():
    from litefuse.errors import OptionError

    assert {m.kind for m in list_models("classical")} == {"classical"}
    with pytest.raises(OptionError, match="'networks'"):
        list_models("networks")  # a typo, not "no such methods"


def test_constructor_arguments_that_do_not_fit_are_an_option_error():
    """A keyword the factory does not take, or a value it refuses, names the model (was a bare
    TypeError / ValueError from the constructor)."""
    from litefuse.errors import OptionError

    with pytest.raises(OptionError, match=r"aenetv2: .*unexpected keyword argument 'foo'"):
        load_model("aenetv2", pretrained=False, foo=1)
    with pytest.raises(OptionError, match=r"aenetv2: unknown fusion 'nope'"):
        load_model("aenetv2", pretrained=False, fusion="nope")


def test_load_model_takes_weights_that_name_their_model(tmp_path):
    """``load_model(weights=FILE)`` was a TypeError (``name`` missing), though a Fuser works the
    model out from the same file."""
    from safetensors.torch import save_file

    import litefuse
    from litefuse.errors import ModelError, OptionError

    shipped = litefuse.load_model("aenetv2-ivif")
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in shipped.state_dict().items()}, str(path),
              metadata={"model": "aenetv2-ivif", "model_kwargs": "{}"})
    again = litefuse.load_model(weights=path)
    assert type(again) is type(shipped) and all(torch.equal(v, again.state_dict()[k]) for k, v in shipped.state_dict().items())
    with pytest.raises(ModelError, match="weights of 'aenetv2-ivif', not 'densefuse'; load it as aenetv2-ivif"):
        litefuse.load_model("densefuse", weights=path)
    with pytest.raises(OptionError, match="needs a model name"):
        litefuse.load_model()
