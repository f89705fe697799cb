r"""The initialisation of DKEF's feature networks in the paper's code (Song et al. 2019,
official ``models/dkef.py``, class ``Kernel``): every weight and bias of a feature network drawn
from :math:`\mathcal N(0, 1/n_\text{out})`, :math:`n_\text{out}` the layer's output width
(``randn / sqrt(fan_out)``), where :class:`ssm_lib.dkef.DKEF` draws weights from
:math:`\mathcal N(0, 1/n_\text{in})`. For the first layer of an 11-column table and width 30 the
paper's weights are :math:`\sqrt{11/30} \approx 0.61` times ours in scale.
"""

from __future__ import annotations

import math

import torch

from ssm_lib.dkef import DKEF

__all__ = ["init_features_fan_out"]


def init_features_fan_out(model: DKEF, generator: torch.Generator | None = None) -> DKEF:
    """Redraw, in place, every parameter of ``model``'s feature networks (weights ``(out, in)``
    and biases ``(out,)``) as ``randn / sqrt(out)``, from ``generator``; returns ``model``."""
    if not isinstance(model, DKEF):
        raise TypeError(f"model must be a ssm_lib.dkef.DKEF, got {type(model).__name__}")
    with torch.no_grad():
        for p in model.features.parameters():
            fan_out = p.shape[0]
            dev = generator.device if generator is not None else torch.device("cpu")
            draw = torch.randn(p.shape, generator=generator, dtype=p.dtype, device=dev)
            p.copy_(draw.to(p.device) / math.sqrt(fan_out))
    return model
