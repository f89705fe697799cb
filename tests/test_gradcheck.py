"""gradcheck / gradgradcheck in float64 through every loss on a tiny network."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from ssm_lib import EnergyMLP, ScoreMLP, denoising_score_matching, exact_score_matching, sliced_score_matching
from ssm_lib.projections import sample_projections

torch.manual_seed(0)
NET = ScoreMLP(2, hidden=3, depth=1).double()
ENERGY = EnergyMLP(2, hidden=3, depth=1).double()
NAMES = [n for n, _ in NET.named_parameters()]
E_NAMES = [n for n, _ in ENERGY.named_parameters()]
X = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
V = sample_projections("gaussian", (2, 3, 2), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
Z = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

LOSSES = {
    "exact_loop": lambda f: exact_score_matching(f, X, method="loop"),
    "exact_vmap": lambda f: exact_score_matching(f, X, method="vmap"),
    "ssm": lambda f: sliced_score_matching(f, X, n_projections=2, directions=V),
    "ssm_vr": lambda f: sliced_score_matching(f, X, n_projections=2, directions=V, variance_reduction=True),
    "dsm": lambda f: denoising_score_matching(f, X, 0.5, noise=Z),
}


def loss_of_params(loss_name: str, energy: bool):
    module, names = (ENERGY, E_NAMES) if energy else (NET, NAMES)

    def fn(*params):
        pdict = dict(zip(names, params, strict=True))
        if energy:
            from ssm_lib import score_from_energy
            score = score_from_energy(lambda x: functional_call(module, pdict, (x,)))
        else:
            def score(x):
                return functional_call(module, pdict, (x,))
        return LOSSES[loss_name](score)

    params = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
    return fn, params


@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("energy", [False, True])
def test_gradcheck(loss_name, energy):
    fn, params = loss_of_params(loss_name, energy)
    if energy:  # the energy's output bias does not change the score: leave it out
        params_all = params

        def fn_wo_bias(*p):
            return fn(*p, params_all[-1])

        assert torch.autograd.gradcheck(fn_wo_bias, params[:-1])
    else:
        assert torch.autograd.gradcheck(fn, params)


@pytest.mark.parametrize("loss_name", ["exact_loop", "ssm", "dsm"])
def test_gradgradcheck(loss_name):
    fn, params = loss_of_params(loss_name, False)
    assert torch.autograd.gradgradcheck(fn, params)
