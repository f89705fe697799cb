"""Shared set-up for the experiment notebooks: profile, device, seed, output folder, and the
saving of figures (PNG) and numbers (JSON), plus checked claims.

A notebook's parameters cell (papermill) holds ``profile``, ``device``, ``seed`` and
``output_dir``; its next cell calls :func:`setup` and uses what it returns everywhere::

    exp = setup("score_fields", profile=profile, device=device, seed=seed, output_dir=output_dir)
    exp.save_figure(fig, "mixture_score")       # output_dir/figures/score_fields/mixture_score.png
    exp.record(fisher=0.123)                    # output_dir/results/score_fields.json
    exp.check(slope > 0.7, f"exact-SM slope {slope:.2f} should exceed 0.7")
"""

from __future__ import annotations

import json
import math
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ssm_lib.devices import make_generator, resolve_device

PROFILES = ("quick", "full")


class ClaimFailed(AssertionError):
    """A claim that an experiment's figure is meant to show did not hold."""


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: tensors and numpy values become numbers or lists, and a
    non-finite number becomes the string ``"nan"``, ``"inf"`` or ``"-inf"`` (JSON has none)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    elif callable(getattr(value, "tolist", None)):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass
class Experiment:
    """Handle returned by :func:`setup`."""

    name: str
    profile: str
    device: torch.device
    seed: int
    output_dir: Path
    results: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def quick(self) -> bool:
        return self.profile == "quick"

    def pick(self, quick: Any, full: Any) -> Any:
        """The quick-profile or the full-profile value of a setting."""
        return quick if self.quick else full

    def generator(self, offset: int = 0, device: torch.device | str | None = None) -> torch.Generator:
        """A fresh generator seeded with ``seed + offset`` (on the experiment's device)."""
        return make_generator(self.seed + offset, device or self.device)

    @property
    def figure_dir(self) -> Path:
        path = self.output_dir / "figures" / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_figure(self, fig, key: str, *, dpi: int = 150) -> Path:
        """Write ``fig`` to ``figures/<name>/<key>.png``; chapters show it with the MyST
        ``{figure}`` directive (``../experiments/figures/<name>/<key>.png``)."""
        path = self.figure_dir / f"{key}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return path

    def glue_value(self, key: str, value: Any) -> None:
        """Glue a number or string for inline use in the chapters (``{glue:text}``)."""
        try:
            from myst_nb import glue as nb_glue
        except ImportError:  # pragma: no cover
            return
        nb_glue(key, value, display=False)

    def record(self, **values: Any) -> None:
        """Add numbers to ``results/<name>.json`` (rewritten on every call)."""
        self.results.update(_jsonable(values))
        path = self.output_dir / "results"
        path.mkdir(parents=True, exist_ok=True)
        meta = {"notebook": self.name, "profile": self.profile, "device": str(self.device),
                "seed": self.seed, "torch": torch.__version__}
        text = json.dumps({"meta": meta, **self.results}, indent=2, sort_keys=True, allow_nan=False)
        (path / f"{self.name}.json").write_text(text)

    def check(self, condition: bool, message: str) -> None:
        """Assert a claim of the experiment; the message says what was expected and measured."""
        status = "PASS" if condition else "FAIL"
        # wrapped to the book's ~85-character output width; the results file keeps one line
        print(textwrap.fill(f"[{status}] {message}", width=85, subsequent_indent=" " * 7,
                            break_long_words=False, break_on_hyphens=False))
        self.results.setdefault("checks", {})[message] = bool(condition)
        self.record()  # keep the JSON file in step with the checks made so far
        if not condition:
            raise ClaimFailed(message)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def check_parameters(profile: str, device: str, seed: int) -> torch.device:
    """Validate a notebook's papermill parameters; returns the device they name.

    Raises ``ValueError`` for an unknown ``profile``, a ``device`` that is not there or a
    ``seed`` that is not an integer. ``tools/reproduce.py`` calls it before starting a kernel.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return resolve_device(device)


def setup(name: str, *, profile: str = "quick", device: str = "auto", seed: int = 0,
          output_dir: str | Path = "experiments") -> Experiment:
    """Validate the papermill parameters (:func:`check_parameters`), seed torch's global
    generator with ``seed`` and prepare the output folder."""
    dev = check_parameters(profile, device, seed)
    torch.manual_seed(seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Experiment(name=name, profile=profile, device=dev, seed=seed, output_dir=out)
