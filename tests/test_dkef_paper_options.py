"""DKEF options that reproduce the paper's code (issue 20): DSM with the sigma^4 weight, the
rows alpha is fitted on, the feature networks' initialisation.

The paper's code minimises (1/2) sigma^4 ||s(x~) + z/sigma||^2 and solves its ridge system as it
stands, (sigma^4 G + lambda I) alpha = -sigma^4 b, i.e. (G + lambda sigma^-4 I) alpha = -b. The
objective "dsm_sigma4" must give exactly that; "dsm" (no weight) gives (G + lambda I) alpha = -b.
Everything is float64 with sigma = 0.08 (where sigma^4 = 4.1e-5 is far from 1), and the oracle
builds G and b independently: kernel gradients by autograd through ``kernel_matrix``, the
official code's arrangement sigma^2 kappa^T (sigma^2 g0(x~) + sigma z).
"""

from __future__ import annotations

import torch

from ssm_lib.dkef import DKEF, dkef_loss
from ssm_lib.losses import OBJECTIVES

F64 = torch.float64
SIGMA = 0.08


def _model(dim=3, m=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(m, dim, generator=gen, dtype=F64)
    return DKEF(z, n_kernels=2, hidden=5, generator=gen)


def _x(n=40, dim=3, seed=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _official_system(model: DKEF, x: torch.Tensor, z: torch.Tensor, sigma: float):
    """(G, b) as the paper's code builds them for DSM: at x~ = x + sigma z, kappa_m = grad K(x~, z_m),
    G = sigma^4 E[kappa kappa^T], b = sigma^2 E[kappa^T (sigma^2 grad log q0(x~) + sigma z)]."""
    xt = (x + sigma * z).detach()
    rows = []
    for m in range(model.n_inducing):
        xr = xt.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model.kernel_matrix(xr)[:, m].sum(), xr)
        rows.append(g)
    kappa = torch.stack(rows, 1)  # (n, M, d)
    g0 = -xt / model.base_std**2
    G = sigma**4 * torch.einsum("nmd,nkd->mk", kappa, kappa) / x.shape[0]
    b = sigma**2 * torch.einsum("nmd,nd->nm", kappa, sigma**2 * g0 + sigma * z).mean(0)
    return G.detach(), b.detach()


def test_dsm_sigma4_solves_the_papers_ridge_system():
    """Mutant: the sigma^4 weight dropped from the quadratic (the plain system (G + lambda I),
    what "dsm" solves) or applied to G only. Oracle: alpha = -(sigma^4 G + lambda I)^{-1}
    sigma^4 b from the official arrangement, computed here; at lambda = 1e-2, sigma = 0.08 the
    plain solve is orders of magnitude larger."""
    model, x = _model(), _x()
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=F64)
    G_off, b_off = _official_system(model, x, z, SIGMA)
    lam = float(model.ridge().detach())
    eye = torch.eye(model.n_inducing, dtype=F64)
    want = -torch.linalg.solve(G_off + lam * eye, b_off)

    G, b, _ = model.alpha_system(x, "dsm_sigma4", sigma=SIGMA, generator=torch.Generator().manual_seed(7),
                                 create_graph=False)
    torch.testing.assert_close(G, G_off, rtol=1e-9, atol=1e-18)
    torch.testing.assert_close(b, b_off, rtol=1e-9, atol=1e-18)
    got = model.solve_alpha(G, b).detach()
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-14)
    # the same thing written as a rescaled ridge: (G/sigma^4 + lambda sigma^-4 I) alpha = -b/sigma^4
    G_plain, b_plain, _ = model.alpha_system(x, "dsm", sigma=SIGMA, create_graph=False,
                                             generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(model.solve_alpha(G_plain, b_plain, lam / SIGMA**4).detach(), want,
                               rtol=1e-8, atol=1e-14)
    # the plain form is a different estimator here, not a rounding away from it
    plain = model.solve_alpha(G_plain, b_plain).detach()
    assert plain.norm() > 10 * want.norm(), (plain.norm(), want.norm())


def test_dsm_sigma4_loss_is_sigma4_times_dsm_and_matches_its_quadratic():
    """Mutant: the registry entry without ``sigma_weight_power=4`` (loss unweighted while the
    quadratic is weighted), or a weight sigma^2. Oracle: sigma^4 times the plain DSM loss with the
    same draws, and the quadratic 1/2 a^T G a + b^T a + c of the same draws at a random alpha."""
    model, x = _model(), _x()
    alpha = torch.randn(model.n_inducing, generator=torch.Generator().manual_seed(3), dtype=F64)
    weighted = dkef_loss(model, x, "dsm_sigma4", alpha, sigma=SIGMA,
                         generator=torch.Generator().manual_seed(5))
    plain = dkef_loss(model, x, "dsm", alpha, sigma=SIGMA, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(weighted, SIGMA**4 * plain, rtol=1e-10, atol=0.0)
    G, b, c = model.alpha_system(x, "dsm_sigma4", sigma=SIGMA, generator=torch.Generator().manual_seed(5),
                                 create_graph=False)
    quad = 0.5 * alpha @ G @ alpha + b @ alpha + c
    torch.testing.assert_close(quad, weighted.detach(), rtol=1e-9, atol=1e-15)
    assert OBJECTIVES["dsm_sigma4"].options == {"sigma_weight_power": 4.0}


# ---------------------------------------------------------------------------- alpha's rows (paper's code)


def _trained_alpha_rows(resample, final_n_alpha, monkeypatch):
    from ssm_lib.dkef import train_dkef

    model = _model(dim=2, m=4)
    train, val = _x(30, dim=2, seed=2), _x(10, dim=2, seed=3)
    seen = []
    original = model.fit_alpha

    def spy(x, *args, **kwargs):
        seen.append(x.clone())
        return original(x, *args, **kwargs)

    monkeypatch.setattr(model, "fit_alpha", spy)
    train_dkef(model, train, val, "exact", steps=4, batch_size=8, val_every=1, n_alpha=6, lambda_steps=0,
               generator=torch.Generator().manual_seed(0), progress=False, resample_alpha_rows=resample,
               final_n_alpha=final_n_alpha)
    return model, train, seen


def test_validation_alpha_rows_are_fresh_only_when_asked(monkeypatch):
    """Mutant: ``resample_alpha_rows`` ignored (always the fixed subset) or always on. Oracle:
    the rows alpha is fitted on at each validation, recorded by a spy."""
    _, _, fixed = _trained_alpha_rows(False, None, monkeypatch)
    assert len(fixed) == 4 and all(torch.equal(fixed[0], rows) for rows in fixed)
    _, _, fresh = _trained_alpha_rows(True, None, monkeypatch)
    assert len(fresh) == 4 and all(rows.shape == (6, 2) for rows in fresh)
    assert sum(not torch.equal(fresh[0], rows) for rows in fresh[1:]) >= 2


def test_final_alpha_from_all_training_rows(monkeypatch):
    """Mutant: ``final_n_alpha`` ignored (final alpha from the validation subset). Oracle: the
    exact-SM quadratic over all 30 training rows, solved here (exact SM is deterministic, so only
    the rows matter); the 6-row subset's solve differs."""
    model, train, seen = _trained_alpha_rows(False, 10**6, monkeypatch)
    G, b = model.accumulate_system(train, "exact")
    want = model.solve_alpha(G, b).detach()
    torch.testing.assert_close(model.alpha, want, rtol=1e-9, atol=1e-12)
    G6, b6 = model.accumulate_system(seen[0], "exact")
    assert (model.solve_alpha(G6, b6).detach() - want).abs().max() > 1e-6


def test_fan_out_initialisation_scales_by_the_output_width():
    """Mutant: dividing by sqrt(fan_in) (the library's own rule) or not at all. Oracle: the
    same standard-normal draws, divided here by sqrt(rows) of each parameter; a 3 -> 5 layer
    tells fan-in (3) from fan-out (5)."""
    import math

    from paper_recipes.dkef_init import init_features_fan_out

    model = _model(dim=3)
    init_features_fan_out(model, torch.Generator().manual_seed(11))
    gen = torch.Generator().manual_seed(11)
    for p in model.features.parameters():
        want = torch.randn(p.shape, generator=gen, dtype=F64) / math.sqrt(p.shape[0])
        torch.testing.assert_close(p.detach(), want, rtol=0, atol=0)
    first = next(model.features[0].parameters())
    assert first.shape == (5, 3)


def test_the_new_options_refuse_bad_input_by_name():
    """A non-bool ``resample_alpha_rows``, a ``final_n_alpha`` below 1 and a model that is not a
    DKEF are named in the error, before any training step."""
    import pytest

    from paper_recipes.dkef_init import init_features_fan_out
    from ssm_lib.dkef import train_dkef

    model, x = _model(dim=2, m=4), _x(20, dim=2)
    with pytest.raises(TypeError, match="resample_alpha_rows"):
        train_dkef(model, x, x, "exact", steps=1, resample_alpha_rows=1, progress=False)
    with pytest.raises(ValueError, match="final_n_alpha"):
        train_dkef(model, x, x, "exact", steps=1, final_n_alpha=0, progress=False)
    with pytest.raises(TypeError, match="DKEF"):
        init_features_fan_out(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="sigma"):
        model.alpha_system(x, "dsm_sigma4")
