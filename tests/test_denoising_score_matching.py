"""Denoising score matching against the closed form for N(0, I) data."""

from __future__ import annotations

import pytest
import torch

from ssm_lib import denoising_score_matching
from ssm_lib.losses import perturb

from .conftest import standard_error


@pytest.mark.parametrize("sigma", [0.1, 0.5, 2.0])
def test_loss_at_minimiser_matches_closed_form(sigma, gen):
    # N(0, I) data: q_sigma = N(0, (1 + sigma^2) I), minimiser s(x~) = -x~ / (1 + sigma^2), and
    # the loss there is d / (2 sigma^2 (1 + sigma^2)).
    d, n = 3, 200000
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    per = denoising_score_matching(lambda y: -y / (1 + sigma**2), x, sigma, generator=gen,
                                   reduction="none")
    expected = d / (2 * sigma**2 * (1 + sigma**2))
    assert abs(per.mean().item() - expected) < 4 * standard_error(per)


def test_minimiser_among_linear_scores(gen):
    # L(a) = d/2 [a^2 (1 + sigma^2) - 2a + 1/sigma^2] for s(x~) = -a x~; dL/da = d[a(1+sigma^2) - 1]
    sigma, d, n = 0.4, 2, 200000
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    z = torch.randn(n, d, generator=gen, dtype=torch.float64)
    for a0 in (0.3, 1.0 / (1 + sigma**2), 1.5):
        a = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
        per = denoising_score_matching(lambda y, a=a: -a * y, x, sigma, noise=z, reduction="none")
        (grad,) = torch.autograd.grad(per.mean(), a)
        expected = d * (a0 * (1 + sigma**2) - 1)
        per_grad = ((a0 * (x + sigma * z) - z / sigma) * (x + sigma * z)).sum(1)  # sample-wise dL/da
        assert abs(grad.item() - expected) < 4 * standard_error(per_grad)


def test_gradient_step_moves_wrong_model_toward_minimiser(gen):
    sigma = 0.5
    target = 1.0 / (1 + sigma**2)
    a = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([a], lr=0.1)
    start = abs(a.item() - target)
    for _ in range(30):
        x = torch.randn(512, 2, generator=gen, dtype=torch.float64)
        opt.zero_grad()
        denoising_score_matching(lambda y: -a * y, x, sigma, generator=gen).backward()
        opt.step()
    assert abs(a.item() - target) < 0.2 * start


def test_explicit_noise_weighting_and_per_sample_sigma(gen):
    x = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    z = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    sig = torch.tensor([0.1, 0.2, 0.5, 1.0], dtype=torch.float64)

    def model(y):
        return torch.sin(y)

    per = denoising_score_matching(model, x, sig, noise=z, reduction="none")
    # per-sample levels: sample i gets the loss of a one-sample batch at the number sig[i]
    # (the scalar-sigma loss is checked against closed forms above)
    alone = torch.cat([denoising_score_matching(model, x[i:i + 1], float(sig[i]), noise=z[i:i + 1],
                                                reduction="none") for i in range(4)])
    torch.testing.assert_close(per, alone, rtol=1e-14, atol=0)
    assert len(set(per.tolist())) == 4
    weighted = denoising_score_matching(model, x, sig, noise=z, reduction="none", sigma_weight_power=2)
    torch.testing.assert_close(weighted, per * sig**2)  # lambda(sigma) = sigma^p, p = 2
    # noise-conditional models receive sigma per sample
    seen = {}

    def cond(y, s):
        seen["sigma"] = s
        return model(y)

    torch.testing.assert_close(denoising_score_matching(cond, x, sig, noise=z, noise_conditional=True,
                                                        reduction="none"), per)
    torch.testing.assert_close(seen["sigma"], sig)


def test_perturb_uses_the_generator():
    x = torch.zeros(3, 2)
    a, za, _ = perturb(x, 0.5, generator=torch.Generator().manual_seed(0))
    b, zb, _ = perturb(x, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(a, 0.5 * za)
