r"""Saving and loading a model together with the configuration that rebuilds it.

A model file written by :func:`save_model` is a ``torch.save`` of one dictionary,

.. code-block:: python

    {"format": 1, "class": "ScoreMLP", "config": {"dim": 2, "hidden": 64, ...},
     "state_dict": {...}, "ssm_lib_version": "0.1.0"}

holding only plain Python values (``int``, ``float``, ``str``, ``bool``, ``None``, lists,
tuples, dictionaries with string keys) and tensors, so that :func:`load_model` reads it with
``torch.load(..., weights_only=True)``: loading a file never runs code from it.
:func:`load_model` looks the class up in a registry, rebuilds the model with
``cls.from_config(config)`` (or ``cls(**config)``), and puts the saved tensors in place, dtype
included: the loaded model computes the same outputs, bit for bit, as the saved one.

**Making a model class loadable** (the protocol):

1. give it a method ``config(self) -> dict`` returning the constructor's keyword arguments
   as plain values, such that ``cls(**model.config())`` builds a model with the same
   parameter names and shapes (a classmethod ``from_config(cls, config)`` replaces
   ``cls(**config)`` when the constructor needs more care);
2. register it: ``@register_model`` on the class (or ``register_model(cls)``; the name in
   the file is ``cls.__name__`` unless ``name=`` is given).

The library's :class:`~ssm_lib.models.ScoreMLP`, :class:`~ssm_lib.models.EnergyMLP` and
:class:`~ssm_lib.models.NoiseConditionalScoreMLP`, :class:`~ssm_lib.flows.NICE` and
:class:`~ssm_lib.dkef.DKEF` are registered.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import torch
from torch import nn

__all__ = ["FORMAT_VERSION", "MODEL_CLASSES", "load_model", "register_model", "save_model"]

#: The version of the file layout written by :func:`save_model`.
FORMAT_VERSION = 1

#: Registered model classes by the name written into model files. The library registers
#: ``DKEF``, ``EnergyMLP``, ``NICE``, ``NoiseConditionalScoreMLP`` and ``ScoreMLP``; add one
#: with :func:`register_model`.
#:
#: :meta hide-value:
MODEL_CLASSES: dict[str, type[nn.Module]] = {}

_KEYS = ("format", "class", "config", "state_dict", "ssm_lib_version")

M = TypeVar("M", bound=type)
PathLike = str | os.PathLike | BinaryIO


def register_model(cls: M | None = None, *, name: str | None = None) -> M | Callable[[M], M]:
    """Register the ``nn.Module`` class ``cls`` as loadable by :func:`load_model` under ``name``
    (default ``cls.__name__``). Usable as ``@register_model``, ``@register_model(name=...)`` or
    a plain call; returns the class. The class must define ``config()``. Registering another
    class under a taken name is a ``ValueError`` (re-registering the same class, or a reloaded
    class of the same module and name, replaces the entry)."""

    def add(klass: M) -> M:
        if not (isinstance(klass, type) and issubclass(klass, nn.Module)):
            raise ValueError(f"cls must be a torch.nn.Module subclass, got {klass!r}")
        if not callable(getattr(klass, "config", None)):
            raise ValueError(f"cls {klass.__name__} must define a method config() returning its "
                             "constructor's keyword arguments")
        key = klass.__name__ if name is None else name
        if not isinstance(key, str) or not key:
            raise ValueError(f"name must be a non-empty string, got {key!r}")
        old = MODEL_CLASSES.get(key)
        if old is not None and (old.__module__, old.__qualname__) != (klass.__module__, klass.__qualname__):
            raise ValueError(f"name {key!r} is already registered for {old.__module__}.{old.__qualname__}; "
                             "pass another name=")
        MODEL_CLASSES[key] = klass
        return klass

    return add if cls is None else add(cls)


def _class_name(model: nn.Module) -> str:
    for key, klass in MODEL_CLASSES.items():
        if type(model) is klass:
            return key
    known = ", ".join(sorted(MODEL_CLASSES))
    raise ValueError(f"model: {type(model).__name__} is not a registered model class (registered: {known}); "
                     "give it a config() method and register it with ssm_lib.register_model")


def _check_plain(value: object, where: str) -> None:
    """``value`` holds only values ``torch.load(weights_only=True)`` reads back as they were."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"model.config(){where} is {value!r}; only finite numbers can be saved")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"model.config(){where} has the key {key!r}; keys must be strings")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise ValueError(f"model.config(){where} is a {type(value).__name__} ({value!r}); a config holds only "
                     "int, float, str, bool, None and lists, tuples and dicts of them")


def _check_path(path: object) -> None:
    if isinstance(path, (str, os.PathLike)) or (hasattr(path, "read") or hasattr(path, "write")):
        return
    raise ValueError(f"path must be a file name (str or os.PathLike) or a binary file object, "
                     f"got {type(path).__name__}")


def save_model(model: nn.Module, path: PathLike) -> None:
    """Write ``model``'s class name, ``model.config()``, its ``state_dict()`` (tensors as they
    are: dtype and device kept) and the library version to ``path`` (a file name or a binary
    file object, not a folder), readable by :func:`load_model`. The model must be of a
    registered class."""
    from . import __version__

    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_path(path)
    if isinstance(path, (str, os.PathLike)) and Path(path).is_dir():
        raise ValueError(f"path {os.fspath(path)!r} is a folder; give a file name inside it "
                         "(e.g. 'model.pt')")
    if isinstance(path, (str, os.PathLike)) and not Path(path).parent.is_dir():
        raise ValueError(f"path {os.fspath(path)!r}: the folder {os.fspath(Path(path).parent)!r} "
                         "does not exist")
    key = _class_name(model)
    config = model.config()
    if not isinstance(config, dict):
        raise ValueError(f"model.config() must return a dict, got {type(config).__name__}")
    _check_plain(config, "")
    state = {name: t.detach() for name, t in model.state_dict().items()}
    torch.save({"format": FORMAT_VERSION, "class": key, "config": config, "state_dict": state,
                "ssm_lib_version": __version__}, path)


def _describe(path: PathLike) -> str:
    return f"path {os.fspath(path)!r}" if isinstance(path, (str, os.PathLike)) else "path"


def _read(path: PathLike, map_location: Any) -> Mapping[str, Any]:
    what = _describe(path)
    if isinstance(path, (str, os.PathLike)) and not Path(path).is_file():
        raise ValueError(f"{what}: no such file")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{what} is not a model file written by ssm_lib.save_model: it holds objects other "
                         "than tensors and plain values, which safe loading (weights_only=True) refuses "
                         "(a whole model saved with torch.save(model)?)") from None
    except Exception as err:  # noqa: BLE001 - a damaged or foreign file fails anywhere inside the unpickler
        detail = (str(err).splitlines() or [""])[0][:200]
        raise ValueError(f"{what} is not a model file written by ssm_lib.save_model: torch cannot read it "
                         f"({type(err).__name__}: {detail})") from None
    if not (isinstance(content, dict) and all(k in content for k in _KEYS)):
        got = sorted(map(str, content)) if isinstance(content, dict) else type(content).__name__
        raise ValueError(f"{what} is not a model file written by ssm_lib.save_model: it holds {got}, not a "
                         f"dictionary with the keys {list(_KEYS)} (a bare state_dict? load it into a model "
                         "with model.load_state_dict)")
    if content["format"] != FORMAT_VERSION:
        raise ValueError(f"{what} has the model-file format {content['format']!r}; this version of ssm_lib "
                         f"reads format {FORMAT_VERSION}")
    return content


def _check_map_location(map_location: object) -> None:
    """``None``, a device (a name or a ``torch.device``) that exists on this machine, or what
    ``torch.load`` also takes: a dict of device names or a callable."""
    if map_location is None or isinstance(map_location, dict) or callable(map_location):
        return
    if not isinstance(map_location, (str, torch.device)):
        raise ValueError(f"map_location must be a device such as 'cpu' or 'cuda', a torch.device or None, "
                         f"got {map_location!r}")
    try:
        dev = torch.device(map_location)
    except (RuntimeError, TypeError):
        raise ValueError(f"map_location must be a device such as 'cpu' or 'cuda', a torch.device or None, "
                         f"got {map_location!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"map_location={map_location!r} was requested but CUDA is not available on this "
                         "machine; use map_location='cpu'")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"map_location={map_location!r} was requested but MPS is not available")


def load_model(path: PathLike, *, map_location: str | torch.device | None = "cpu") -> nn.Module:
    """The model saved by :func:`save_model` at ``path``: rebuilt from its configuration with
    its class's ``from_config`` (or constructor), holding the saved tensors (their dtype kept;
    their device ``map_location``, default CPU; ``None`` keeps the saved device). Read with
    ``weights_only=True``. The model is returned in training mode, as a new module is.

    Raises ``ValueError`` naming ``path`` when there is no such file, the file is not a model
    file, its class is not registered (import the module that registers it first), or its
    tensors do not fit the model its configuration builds; naming ``map_location`` when it is
    not a device (a name, a ``torch.device``, a dict or a callable, as ``torch.load`` takes) or
    names one this machine lacks."""
    _check_path(path)
    _check_map_location(map_location)
    what = _describe(path)
    content = _read(path, map_location)
    key = content["class"]
    klass = MODEL_CLASSES.get(key)
    if klass is None:
        known = ", ".join(sorted(MODEL_CLASSES))
        raise ValueError(f"{what} holds a model of class {key!r}, which is not registered "
                         f"(registered: {known}); import the module that defines it and call "
                         "ssm_lib.register_model on the class")
    config = content["config"]
    build = getattr(klass, "from_config", None)
    try:
        model = build(config) if callable(build) else klass(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: the saved config of {key} does not build a model ({err})") from err
    try:
        model.load_state_dict(content["state_dict"], strict=True, assign=True)
    except RuntimeError as err:
        raise ValueError(f"{what}: the saved tensors do not fit the {key} built from the saved config "
                         f"({str(err).splitlines()[0]} ...)") from err
    return model
