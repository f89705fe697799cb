"""Saving and loading models with their configuration (``ssm_lib.save_model`` / ``load_model``):
round trips give the same outputs bit for bit, files are read with ``weights_only=True``, and
every bad file or model is a ``ValueError`` naming the argument."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import ssm_lib
from ssm_lib import EnergyMLP, NoiseConditionalScoreMLP, ScoreMLP, load_model, register_model, save_model
from ssm_lib.persistence import MODEL_CLASSES

F64 = torch.float64

# name -> (a model with non-default settings, its output on x as a function of the model)
MODELS = {
    "ScoreMLP": (lambda: ScoreMLP(3, hidden=7, depth=2, activation="tanh", fast_path=False),
                 lambda m, x: m(x)),
    "EnergyMLP": (lambda: EnergyMLP(3, hidden=6, depth=1, activation="softplus", confinement=0.3),
                  lambda m, x: torch.cat([m(x), m.score(x).flatten()])),
    "NoiseConditionalScoreMLP": (lambda: NoiseConditionalScoreMLP(3, hidden=5, depth=3, activation="gelu"),
                                 lambda m, x: m(x, 0.7)),
}


def _trained(name: str, dtype: torch.dtype) -> nn.Module:
    """A model whose weights are not its initialisation (so a load that re-initialises fails)."""
    torch.manual_seed(0)
    model = MODELS[name][0]().to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("name", list(MODELS))
def test_a_loaded_model_computes_the_same_outputs_bit_for_bit(name, dtype, tmp_path):
    model = _trained(name, dtype)
    path = tmp_path / "model.pt"
    save_model(model, path)
    torch.manual_seed(1)  # a different initialisation for the rebuilt model
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config() == model.config()
    assert next(loaded.parameters()).dtype == dtype
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=dtype)
    assert torch.equal(MODELS[name][1](loaded, x), MODELS[name][1](model, x))
    # the loaded parameters are trainable parameters
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in loaded.parameters())


@pytest.mark.parametrize("name", list(MODELS))
def test_from_config_rebuilds_the_architecture(name):
    model = _trained(name, torch.float32)
    fresh = type(model).from_config(model.config())
    assert {k: v.shape for k, v in fresh.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}
    assert fresh.config() == model.config()


def test_the_file_holds_plain_values_readable_with_weights_only(tmp_path):
    model = _trained("ScoreMLP", torch.float32)
    save_model(model, str(tmp_path / "m.pt"))  # a str path works as well as a Path
    content = torch.load(tmp_path / "m.pt", weights_only=True)
    assert content["class"] == "ScoreMLP" and content["format"] == 1
    assert content["config"] == {"dim": 3, "hidden": 7, "depth": 2, "activation": "tanh", "fast_path": False}
    assert content["ssm_lib_version"] == ssm_lib.__version__
    assert set(content["state_dict"]) == set(model.state_dict())


def test_a_file_object_works_and_the_model_is_not_changed():
    model = _trained("EnergyMLP", F64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    save_model(model, buffer)
    buffer.seek(0)
    loaded = load_model(buffer)
    with torch.no_grad():
        next(loaded.parameters()).add_(1.0)  # the copies are independent of the saved model
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


# ============================================================================ bad files, bad models
def _saved(tmp_path, edit=None):
    path = tmp_path / "model.pt"
    save_model(_trained("ScoreMLP", torch.float32), path)
    if edit is not None:
        content = torch.load(path, weights_only=True)
        edit(content)
        torch.save(content, path)
    return path


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"path '.*nothing\.pt': no such file"):
        load_model(tmp_path / "nothing.pt")


def test_an_unknown_class_is_named_with_the_registered_ones(tmp_path):
    path = _saved(tmp_path, lambda c: c.update({"class": "MyFancyNet"}))
    with pytest.raises(ValueError, match=r"class 'MyFancyNet', which is not registered "
                                         r"\(registered: .*ScoreMLP"):
        load_model(path)


@pytest.mark.parametrize("content", [
    "a text file",
    "a bare state_dict",
    "a dict without the class",
    "an unsafe pickle",
])
def test_a_file_that_is_not_a_model_file_says_so(content, tmp_path):
    path = tmp_path / "x.pt"
    model = _trained("ScoreMLP", torch.float32)
    if content == "a text file":
        path.write_text("hello\n")
    elif content == "a bare state_dict":
        torch.save(model.state_dict(), path)
    elif content == "a dict without the class":
        torch.save({"config": model.config(), "state_dict": model.state_dict()}, path)
    else:  # a complete model file plus a Python object, which unpickling would import
        save_model(model, path)
        torch.save({**torch.load(path, weights_only=True), "extra": print}, path)
    with pytest.raises(ValueError, match="is not a model file written by ssm_lib.save_model") as err:
        load_model(path)
    if content == "an unsafe pickle":
        assert "weights_only=True" in str(err.value)


def test_a_newer_file_format_is_refused(tmp_path):
    path = _saved(tmp_path, lambda c: c.update({"format": 99}))
    with pytest.raises(ValueError, match="format 99"):
        load_model(path)


def test_tensors_that_do_not_fit_the_config_are_named(tmp_path):
    path = _saved(tmp_path, lambda c: c["config"].update({"hidden": 8}))
    with pytest.raises(ValueError, match="the saved tensors do not fit the ScoreMLP"):
        load_model(path)
    path = _saved(tmp_path, lambda c: c["config"].update({"hidden": "eight"}))
    with pytest.raises(ValueError, match="the saved config of ScoreMLP does not build a model"):
        load_model(path)


def test_saving_needs_a_registered_model_class(tmp_path):
    class Wider(ScoreMLP):  # a subclass may change the architecture: not saved under its parent's name
        pass

    for model in (nn.Linear(2, 2), Wider(2, hidden=4)):
        with pytest.raises(ValueError, match=r"model: .* is not a registered model class"):
            save_model(model, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        save_model(lambda x: x, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="path must be a file name"):
        save_model(ScoreMLP(2, hidden=4), 3)
    with pytest.raises(ValueError, match="path must be a file name"):
        load_model(None)


# ============================================================================ the registry protocol
class _Quadratic(nn.Module):
    """A user's model: config() plus register_model is all it needs."""

    def __init__(self, dim: int, scale: float = 1.0, names: tuple[str, ...] = ("a",)):
        super().__init__()
        self.dim, self.scale, self.names = dim, scale, names
        self.a = nn.Parameter(torch.randn(dim, dim))

    def config(self):
        return {"dim": self.dim, "scale": self.scale, "names": self.names}

    def forward(self, x):
        return self.scale * x @ self.a


@pytest.fixture
def registry():
    saved = dict(MODEL_CLASSES)
    yield MODEL_CLASSES
    MODEL_CLASSES.clear()
    MODEL_CLASSES.update(saved)


def test_a_user_class_joins_with_config_and_register_model(registry, tmp_path):
    assert register_model(_Quadratic) is _Quadratic
    model = _Quadratic(3, scale=2.5, names=("a", "b"))
    save_model(model, tmp_path / "q.pt")
    loaded = load_model(tmp_path / "q.pt")
    x = torch.randn(4, 3)
    assert torch.equal(loaded(x), model(x)) and loaded.names == ("a", "b")


def test_the_registry_refuses_clashes_and_classes_without_config(registry):
    with pytest.raises(ValueError, match="'ScoreMLP' is already registered"):
        register_model(_Quadratic, name="ScoreMLP")
    with pytest.raises(ValueError, match="must define a method config"):
        register_model(nn.Linear)
    with pytest.raises(ValueError, match="cls must be a torch.nn.Module subclass"):
        register_model(int)
    register_model(ScoreMLP)  # registering the same class again is harmless
    assert registry["ScoreMLP"] is ScoreMLP


def test_a_config_that_weights_only_loading_would_refuse_is_refused_when_saving(registry, tmp_path):
    register_model(_Quadratic)
    for bad in (torch.tensor(2.0), float("nan"), {1: 2}, object()):
        model = _Quadratic(2)
        model.scale = bad
        with pytest.raises(ValueError, match=r"model.config\(\)\['scale'\]"):
            save_model(model, tmp_path / "q.pt")
